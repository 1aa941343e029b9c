//! View models: the services' JSON turned into what the templates show. Pure functions,
//! unit-tested without a network.

use serde::Serialize;
use serde_json::Value;

/// `1299, "USD"` → `$12.99`. Minor units stay integers all the way.
pub fn money(minor: i64, currency: &str) -> String {
    let (symbol, exponent) = match currency {
        "USD" => ("$", 2),
        "EUR" => ("€", 2),
        "GBP" => ("£", 2),
        "JPY" => ("¥", 0),
        _ => ("", 2),
    };
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let amount = if exponent == 0 {
        abs.to_string()
    } else {
        format!("{}.{:02}", abs / 100, abs % 100)
    };
    if symbol.is_empty() {
        format!("{sign}{amount} {currency}")
    } else {
        format!("{sign}{symbol}{amount}")
    }
}

fn str_of(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or("").to_owned()
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CartLine {
    pub sku: String,
    pub name: String,
    pub slug: String,
    pub attributes: String,
    pub quantity: i64,
    pub unit_price: String,
    pub line_total: String,
    pub available: i64,
    pub insufficient_stock: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct CartView {
    pub id: String,
    pub version: i64,
    pub lines: Vec<CartLine>,
    pub count: i64,
    pub total: String,
    pub empty: bool,
    /// Some line holds more than the stock: checkout is not offered until it is fixed.
    pub blocked: bool,
}

/// `{"color": "blue", "size": "M"}` → `color: blue, size: M` (names sorted).
pub fn attributes_text(attributes: &Value) -> String {
    let mut pairs: Vec<(String, String)> = attributes
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The cart service's cart as the cart page and the badge show it.
pub fn cart_view(cart: &Value) -> CartView {
    let currency = cart["currency"].as_str().unwrap_or("USD");
    let lines: Vec<CartLine> = cart["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let line_currency = l["currency"].as_str().unwrap_or(currency);
            CartLine {
                sku: str_of(l, "sku"),
                name: l["product_name"]
                    .as_str()
                    .unwrap_or_else(|| l["sku"].as_str().unwrap_or(""))
                    .to_owned(),
                slug: str_of(l, "product_slug"),
                attributes: attributes_text(&l["attributes"]),
                quantity: l["quantity"].as_i64().unwrap_or(0),
                unit_price: money(l["unit_price_minor"].as_i64().unwrap_or(0), line_currency),
                line_total: money(l["line_total_minor"].as_i64().unwrap_or(0), line_currency),
                available: l["available"].as_i64().unwrap_or(0),
                insufficient_stock: l["insufficient_stock"].as_bool().unwrap_or(false),
            }
        })
        .collect();
    CartView {
        id: str_of(cart, "id"),
        version: cart["version"].as_i64().unwrap_or(0),
        count: lines.iter().map(|l| l.quantity).sum(),
        total: money(cart["total_minor"].as_i64().unwrap_or(0), currency),
        empty: lines.is_empty(),
        blocked: lines.iter().any(|l| l.insufficient_stock),
        lines,
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProductCard {
    pub slug: String,
    pub name: String,
    pub price: String,
    pub in_stock: bool,
    pub initial: String,
}

pub fn product_cards(items: &Value) -> Vec<ProductCard> {
    items
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let name = str_of(p, "name");
            ProductCard {
                slug: str_of(p, "slug"),
                price: money(
                    p["price_from"]["amount_minor"].as_i64().unwrap_or(0),
                    p["price_from"]["currency"].as_str().unwrap_or("USD"),
                ),
                in_stock: p["in_stock"].as_bool().unwrap_or(false),
                initial: name
                    .chars()
                    .next()
                    .map(|c| c.to_uppercase().to_string())
                    .unwrap_or_default(),
                name,
            }
        })
        .collect()
}

/// One checkbox of the facet form.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FacetValue {
    pub value: String,
    pub label: String,
    pub count: i64,
    pub checked: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FacetGroup {
    /// The query parameter (`attr.color`, `price`).
    pub param: String,
    pub title: String,
    pub values: Vec<FacetValue>,
}

/// The listing's query as the storefront receives it (`?q=&sort=&attr.color=…`), kept as
/// pairs because attribute filters repeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListingQuery {
    pub pairs: Vec<(String, String)>,
}

impl ListingQuery {
    pub fn parse(raw: &str) -> Self {
        ListingQuery {
            pairs: serde_urlencoded::from_str::<Vec<(String, String)>>(raw).unwrap_or_default(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str, value: &str) -> bool {
        self.pairs.iter().any(|(k, v)| k == name && v == value)
    }

    /// What is passed on to the catalog: its own parameters only, empty values dropped,
    /// a price band (`price=1000-2500`) split into `min_price`/`max_price`.
    pub fn catalog_params(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (k, v) in &self.pairs {
            if v.is_empty() {
                continue;
            }
            match k.as_str() {
                "q" | "sort" | "cursor" | "in_stock" => out.push((k.clone(), v.clone())),
                "price" => {
                    let (min, max) = v.split_once('-').unwrap_or((v, ""));
                    if min.parse::<u64>().is_ok() {
                        out.push(("min_price".into(), min.into()));
                    }
                    if max.parse::<u64>().is_ok() {
                        out.push(("max_price".into(), max.into()));
                    }
                }
                name if name.starts_with("attr.") => out.push((k.clone(), v.clone())),
                _ => {}
            }
        }
        out.push(("limit".into(), "24".into()));
        out
    }

    /// The same query with a different cursor (the next page link).
    pub fn with_cursor(&self, cursor: &str) -> String {
        let mut pairs: Vec<(String, String)> = self
            .pairs
            .iter()
            .filter(|(k, _)| k != "cursor")
            .cloned()
            .collect();
        pairs.push(("cursor".into(), cursor.into()));
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// The catalog's facets as checkbox groups, with the query's choices checked. Values
/// without products are left out unless chosen (so a choice can always be undone).
pub fn facet_groups(facets: &Value, query: &ListingQuery, currency: &str) -> Vec<FacetGroup> {
    let mut groups = Vec::new();
    let mut names: Vec<&String> = facets["attributes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .collect();
    names.sort();
    for name in names {
        let param = format!("attr.{name}");
        let values = facets["attributes"][name]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                let value = str_of(v, "value");
                FacetValue {
                    checked: query.has(&param, &value),
                    label: value.clone(),
                    value,
                    count: v["count"].as_i64().unwrap_or(0),
                }
            })
            .filter(|v| v.count > 0 || v.checked)
            .collect::<Vec<_>>();
        if !values.is_empty() {
            let mut title = name.replace('_', " ");
            if let Some(first) = title.get(0..1) {
                title = format!("{}{}", first.to_uppercase(), &title[1..]);
            }
            groups.push(FacetGroup {
                param,
                title,
                values,
            });
        }
    }
    let prices = facets["price"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|band| {
            let min = band["min_minor"].as_i64().unwrap_or(0);
            let max = band["max_minor"].as_i64();
            let value = match max {
                Some(max) => format!("{min}-{max}"),
                None => format!("{min}-"),
            };
            let label = match max {
                Some(max) => format!("{} – {}", money(min, currency), money(max, currency)),
                None => format!("{} and up", money(min, currency)),
            };
            FacetValue {
                checked: query.has("price", &value),
                value,
                label,
                count: band["count"].as_i64().unwrap_or(0),
            }
        })
        .filter(|v| v.count > 0 || v.checked)
        .collect::<Vec<_>>();
    if !prices.is_empty() {
        groups.push(FacetGroup {
            param: "price".into(),
            title: "Price".into(),
            values: prices,
        });
    }
    groups
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VariantView {
    pub sku: String,
    pub label: String,
    pub price: String,
    pub available: i64,
    pub stock: String,
    pub in_stock: bool,
}

/// `in stock`, `only 3 left`, `out of stock`.
pub fn stock_text(available: i64) -> String {
    match available {
        n if n <= 0 => "Out of stock".into(),
        n if n <= 5 => format!("Only {n} left"),
        _ => "In stock".into(),
    }
}

pub fn variants(product: &Value) -> Vec<VariantView> {
    product["variants"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let available = v["available"].as_i64().unwrap_or(0);
            let attributes = attributes_text(&v["attributes"]);
            VariantView {
                sku: str_of(v, "sku"),
                label: if attributes.is_empty() {
                    str_of(v, "sku")
                } else {
                    attributes
                },
                price: money(
                    v["price"]["amount_minor"].as_i64().unwrap_or(0),
                    v["price"]["currency"].as_str().unwrap_or("USD"),
                ),
                available,
                stock: stock_text(available),
                in_stock: available > 0,
            }
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OrderView {
    pub id: String,
    pub short_id: String,
    pub status: String,
    pub status_text: String,
    pub total: String,
    pub created_at: String,
    pub lines: Vec<OrderLine>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OrderLine {
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    pub line_total: String,
}

pub fn status_text(status: &str) -> &'static str {
    match status {
        "pending" => "Reserving your items",
        "awaiting_payment" => "Awaiting payment",
        "paid" => "Paid",
        "fulfilled" => "Shipped",
        "cancelled" => "Cancelled",
        "refunded" => "Refunded",
        _ => "Unknown",
    }
}

pub fn order_view(order: &Value) -> OrderView {
    let currency = order["currency"].as_str().unwrap_or("USD");
    let id = str_of(order, "id");
    OrderView {
        short_id: id
            .chars()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect(),
        status_text: status_text(order["status"].as_str().unwrap_or("")).into(),
        status: str_of(order, "status"),
        total: money(order["total_minor"].as_i64().unwrap_or(0), currency),
        created_at: str_of(order, "created_at").chars().take(10).collect(),
        lines: order["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| OrderLine {
                sku: str_of(l, "sku"),
                name: str_of(l, "product_name"),
                quantity: l["quantity"].as_i64().unwrap_or(0),
                line_total: money(l["line_total_minor"].as_i64().unwrap_or(0), currency),
            })
            .collect(),
        id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn money_is_formatted_from_minor_units() {
        assert_eq!(money(1299, "USD"), "$12.99");
        assert_eq!(money(5, "EUR"), "€0.05");
        assert_eq!(money(500, "JPY"), "¥500");
        assert_eq!(money(-250, "CHF"), "-2.50 CHF");
    }

    #[test]
    fn the_cart_view_counts_units_and_blocks_checkout_on_short_stock() {
        let cart = json!({"id": "c1", "version": 4, "currency": "USD", "total_minor": 3897,
            "lines": [{"sku": "MUG-BLU", "quantity": 3, "unit_price_minor": 1299, "currency": "USD",
                       "line_total_minor": 3897, "product_name": "Blue Mug", "product_slug": "blue-mug",
                       "attributes": {"size": "L", "color": "blue"}, "available": 2, "insufficient_stock": true}]});
        let view = cart_view(&cart);
        assert_eq!(view.count, 3);
        assert_eq!(view.total, "$38.97");
        assert_eq!(view.lines[0].attributes, "color: blue, size: L");
        assert!(view.blocked && !view.empty);
        let empty = cart_view(&json!({"id": "c2", "lines": []}));
        assert!(empty.empty && !empty.blocked && empty.count == 0);
    }

    #[test]
    fn facets_keep_choices_checked_and_drop_empty_values() {
        let facets = json!({
            "attributes": {"color": [{"value": "blue", "count": 3}, {"value": "red", "count": 0}, {"value": "green", "count": 0}]},
            "price": [{"min_minor": 0, "max_minor": 2500, "count": 2}, {"min_minor": 20000, "max_minor": null, "count": 1}]
        });
        let query = ListingQuery::parse("attr.color=green&price=0-2500");
        let groups = facet_groups(&facets, &query, "USD");
        assert_eq!(groups[0].param, "attr.color");
        let colors: Vec<_> = groups[0]
            .values
            .iter()
            .map(|v| (v.value.as_str(), v.checked))
            .collect();
        assert_eq!(
            colors,
            [("blue", false), ("green", true)],
            "red has none; green is chosen"
        );
        assert_eq!(groups[1].values[0].label, "$0.00 – $25.00");
        assert!(groups[1].values[0].checked);
        assert_eq!(groups[1].values[1].label, "$200.00 and up");
    }

    #[test]
    fn the_listing_query_passes_only_catalog_parameters() {
        let query = ListingQuery::parse(
            "q=shirt&sort=price_asc&attr.size=M&price=1000-2500&evil=1&cursor=",
        );
        let params = query.catalog_params();
        assert!(params.contains(&("min_price".into(), "1000".into())));
        assert!(params.contains(&("max_price".into(), "2500".into())));
        assert!(params.contains(&("attr.size".into(), "M".into())));
        assert!(
            !params
                .iter()
                .any(|(k, _)| k == "evil" || k == "cursor" || k == "price")
        );
        assert_eq!(
            query.with_cursor("abc"),
            "q=shirt&sort=price_asc&attr.size=M&price=1000-2500&evil=1&cursor=abc"
        );
    }

    #[test]
    fn stock_states() {
        assert_eq!(stock_text(0), "Out of stock");
        assert_eq!(stock_text(3), "Only 3 left");
        assert_eq!(stock_text(40), "In stock");
    }
}
