//! The merchant admin at `/admin` (role `admin`): create products, import CSV (row
//! errors shown), adjust inventory, and act on orders (fulfil, cancel, refund). The
//! services check the role again on every call; this only hides the pages.
//!
//! Not here: a customer list (the user service has no endpoint listing accounts) and
//! parked messages (no service exposes them over HTTP; `shopctl events` reads them).

use axum::Extension;
use axum::Form;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{FormData, check_csrf, field, redirect, require_auth};
use crate::api::{Cred, Service};
use crate::error::{PageError, PageResult};
use crate::session::{Auth, SessionHandle};
use crate::startup::AppState;
use crate::views;

async fn admin(
    state: &AppState,
    session: &SessionHandle,
    next: &str,
) -> Result<Result<Auth, axum::response::Response>, PageError> {
    match require_auth(state, session, next).await? {
        Ok(auth) if auth.roles.iter().any(|r| r == "admin") => Ok(Ok(auth)),
        Ok(_) => Err(PageError::Forbidden),
        Err(redirect) => Ok(Err(redirect)),
    }
}

fn flatten(tree: &[super::shop::NavCategory], depth: usize, out: &mut Vec<Value>) {
    for c in tree {
        out.push(json!({"slug": c.slug, "name": format!("{}{}", "— ".repeat(depth), c.name)}));
        flatten(&c.children, depth + 1, out);
    }
}

async fn index_page(state: &AppState, session: &SessionHandle, results: &Value) -> PageResult {
    let tree = state
        .api()
        .get(Service::Catalog, "/categories", Cred::none())
        .await?;
    let mut categories = Vec::new();
    flatten(&super::shop::nav(&tree.body), 0, &mut categories);
    let mut ctx = state.context(session);
    ctx.insert("categories", &categories);
    ctx.insert("result", results);
    state.render("admin/index.html", &ctx)
}

pub async fn index(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
) -> PageResult {
    if let Err(redirect) = admin(&state, &session, "/admin").await? {
        return Ok(redirect);
    }
    index_page(&state, &session, &Value::Null).await
}

fn outcome(reply: &crate::api::Reply, ok: &str) -> Value {
    if reply.ok() {
        json!({"ok": true, "message": ok, "errors": []})
    } else {
        json!({"ok": false, "message": reply.problem_text(), "errors": reply.field_errors()})
    }
}

pub async fn create_product(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Form(form): Form<FormData>,
) -> PageResult {
    check_csrf(&session, &form)?;
    let auth = match admin(&state, &session, "/admin").await? {
        Ok(auth) => auth,
        Err(redirect) => return Ok(redirect),
    };
    let Ok(price) = views_price(field(&form, "price")) else {
        let result = json!({"ok": false, "message": "The price must be like 19.99.", "errors": []});
        return index_page(&state, &session, &result).await;
    };
    let on_hand: i64 = field(&form, "on_hand").parse().unwrap_or(0);
    let attributes: serde_json::Map<String, Value> = field(&form, "attributes")
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), Value::String(v.trim().to_owned())))
        .collect();
    let body = json!({
        "name": field(&form, "name"),
        "category": field(&form, "category"),
        "description": field(&form, "description"),
        "status": if field(&form, "status") == "draft" { "draft" } else { "published" },
        "variants": [{
            "sku": field(&form, "sku").to_ascii_uppercase(),
            "attributes": attributes,
            "price_minor": price,
            "currency": field(&form, "currency").to_ascii_uppercase(),
            "on_hand": on_hand,
        }],
    });
    let reply = state
        .api()
        .post(
            Service::Catalog,
            "/admin/products",
            Cred::bearer(&auth),
            &body,
        )
        .await?;
    let mut result = outcome(&reply, "Product created.");
    if reply.ok() {
        result["link"] = json!(format!("/p/{}", reply.body["slug"].as_str().unwrap_or("")));
    }
    index_page(&state, &session, &result).await
}

/// `19.99` → 1999; whole units allowed (`20`); never through a float.
fn views_price(text: &str) -> Result<i64, ()> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 2
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return Err(());
    }
    let whole: i64 = whole.parse().map_err(|_| ())?;
    let frac: i64 = format!("{frac:0<2}").parse().map_err(|_| ())?;
    whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(frac))
        .ok_or(())
}

pub async fn import(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Form(form): Form<FormData>,
) -> PageResult {
    check_csrf(&session, &form)?;
    let auth = match admin(&state, &session, "/admin").await? {
        Ok(auth) => auth,
        Err(redirect) => return Ok(redirect),
    };
    let csv = form.get("csv").cloned().unwrap_or_default();
    let reply = state
        .api()
        .post_csv("/admin/import", Cred::bearer(&auth), csv)
        .await?;
    let n = |k: &str| reply.body[k].as_u64().unwrap_or(0);
    let ok = format!(
        "Imported {} rows: {} products created, {} updated; {} variants created, {} updated.",
        n("rows"),
        n("products_created"),
        n("products_updated"),
        n("variants_created"),
        n("variants_updated")
    );
    index_page(&state, &session, &outcome(&reply, &ok)).await
}

pub async fn adjust(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Form(form): Form<FormData>,
) -> PageResult {
    check_csrf(&session, &form)?;
    let auth = match admin(&state, &session, "/admin").await? {
        Ok(auth) => auth,
        Err(redirect) => return Ok(redirect),
    };
    let sku = field(&form, "sku").to_ascii_uppercase();
    if sku.is_empty() || !sku.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        let result =
            json!({"ok": false, "message": "Enter a SKU (letters, digits, -).", "errors": []});
        return index_page(&state, &session, &result).await;
    }
    let Ok(delta) = field(&form, "delta").parse::<i64>() else {
        let result = json!({"ok": false, "message": "The change must be a whole number such as 5 or -2.", "errors": []});
        return index_page(&state, &session, &result).await;
    };
    let reason = match field(&form, "reason") {
        "" => "adjusted in the admin",
        r => r,
    };
    let reply = state
        .api()
        .post(
            Service::Catalog,
            &format!("/admin/inventory/{sku}/adjust"),
            Cred::bearer(&auth),
            &json!({"delta": delta, "reason": reason}),
        )
        .await?;
    let ok = format!(
        "{sku}: {} on hand, {} available.",
        reply.body["on_hand"].as_i64().unwrap_or(0),
        reply.body["available"].as_i64().unwrap_or(0)
    );
    index_page(&state, &session, &outcome(&reply, &ok)).await
}

#[derive(Debug, Deserialize)]
pub struct OrdersQuery {
    status: Option<String>,
    cursor: Option<String>,
}

pub async fn orders(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Query(q): Query<OrdersQuery>,
) -> PageResult {
    let auth = match admin(&state, &session, "/admin/orders").await? {
        Ok(auth) => auth,
        Err(redirect) => return Ok(redirect),
    };
    let mut query = vec![("limit".to_owned(), "50".to_owned())];
    if let Some(status) = q.status.as_ref().filter(|s| !s.is_empty()) {
        query.push(("status".into(), status.clone()));
    }
    if let Some(cursor) = q.cursor.as_ref().filter(|s| !s.is_empty()) {
        query.push(("cursor".into(), cursor.clone()));
    }
    let reply = state
        .api()
        .get_query(Service::Order, "/admin/orders", &query, Cred::bearer(&auth))
        .await?;
    if !reply.ok() {
        return Err(anyhow::anyhow!("order /admin/orders: {}", reply.status).into());
    }
    let list: Vec<views::OrderView> = reply.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(views::order_view)
        .collect();
    let mut ctx = state.context(&session);
    ctx.insert("orders", &list);
    ctx.insert("status", &q.status.unwrap_or_default());
    ctx.insert("next_cursor", &reply.body["next_cursor"].as_str());
    state.render("admin/orders.html", &ctx)
}

pub async fn order_action(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Path((id, action)): Path<(uuid::Uuid, String)>,
    Form(form): Form<FormData>,
) -> PageResult {
    check_csrf(&session, &form)?;
    let auth = match admin(&state, &session, "/admin/orders").await? {
        Ok(auth) => auth,
        Err(redirect) => return Ok(redirect),
    };
    let (path, done) = match action.as_str() {
        "fulfil" => ("fulfil", "marked fulfilled"),
        "cancel" => ("cancel", "cancelled"),
        "refund" => ("refund", "refund requested"),
        _ => return Err(PageError::NotFound),
    };
    let reply = state
        .api()
        .post(
            Service::Order,
            &format!("/admin/orders/{id}/{path}"),
            Cred::bearer(&auth),
            &json!({}),
        )
        .await?;
    let message = if reply.ok() {
        format!("Order {id}: {done}.")
    } else {
        format!("Order {id}: {}", reply.problem_text())
    };
    session.update(|s| s.flash = Some(message));
    Ok(redirect("/admin/orders"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_read_without_floats() {
        assert_eq!(views_price("19.99"), Ok(1999));
        assert_eq!(views_price("20"), Ok(2000));
        assert_eq!(views_price("0.5"), Ok(50));
        assert!(views_price("1.999").is_err());
        assert!(views_price("-1").is_err());
        assert!(views_price("abc").is_err());
        assert!(views_price("").is_err());
    }
}
