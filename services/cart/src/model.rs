//! What the API reads and writes, and the request checks that need no database.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{CartError, CartResult};

/// The most of one SKU a cart line holds.
pub const MAX_QUANTITY: i64 = 99;
/// SKUs are what the catalog accepts: upper-case letters, digits and dashes, 1–64 long.
const MAX_SKU_CHARS: usize = 64;

/// A cart as every reader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CartView {
    pub id: Uuid,
    /// The owner; `null` for an anonymous cart.
    pub user_id: Option<Uuid>,
    /// `open`, or `merged` once an anonymous cart was folded into a user's cart.
    pub status: String,
    pub lines: Vec<LineView>,
    /// Σ quantity × unit price, in minor units of `currency`.
    pub total_minor: i64,
    /// The currency of every line; `null` while the cart is empty.
    pub currency: Option<String>,
    /// Goes up by one with every change (also the `ETag`; send it as `If-Match` to make a
    /// change only if nothing changed since).
    pub version: i64,
}

/// One SKU in a cart, with the catalog's facts as of its last change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LineView {
    pub sku: String,
    pub quantity: i64,
    /// The catalog's current price (updated when the catalog changes it).
    pub unit_price_minor: i64,
    pub currency: String,
    pub line_total_minor: i64,
    pub product_name: String,
    pub product_slug: String,
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
    /// The stock the catalog last reported.
    pub available: i64,
    /// `quantity > available`: checkout would fail until the quantity is lowered.
    pub insufficient_stock: bool,
}

/// `POST /carts`: the new anonymous cart and its token (shown only here).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedCart {
    /// Send it as `X-Cart-Token` (browsers get the same value as the `cart_token`
    /// cookie). It is stored only as a hash: a lost token cannot be recovered.
    pub token: String,
    #[serde(flatten)]
    pub cart: CartView,
}

/// `POST /carts/{id}/items`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct AddItem {
    pub sku: String,
    /// 1 to 99; added to the line's quantity when the SKU is already in the cart.
    pub quantity: i64,
}

/// `PATCH /carts/{id}/items/{sku}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct SetQuantity {
    /// 0 to 99; 0 removes the line.
    pub quantity: i64,
}

/// `POST /carts/mine/merge`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct MergeRequest {
    /// The anonymous cart to fold into the caller's cart.
    pub cart_id: Uuid,
    /// Its token; when absent, the `X-Cart-Token` header or the `cart_token` cookie.
    #[serde(default)]
    pub cart_token: Option<String>,
}

/// What a merge did beyond adding quantities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MergeAdjustment {
    pub sku: String,
    /// What the two carts held together.
    pub requested: i64,
    /// What the merged line holds (0: not taken over).
    pub quantity: i64,
    /// `capped` (availability or the per-line limit), `unavailable` (not sold any more
    /// or out of stock), `currency` (priced in another currency than the user's cart).
    pub reason: String,
}

/// `POST /carts/mine/merge`: the user's cart after the merge.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MergeResult {
    #[serde(flatten)]
    pub cart: CartView,
    /// Lines that were not taken over whole; empty when the merge had already happened.
    pub adjustments: Vec<MergeAdjustment>,
}

/// A quantity for `POST …/items`: 1 to 99.
pub fn check_add_quantity(quantity: i64) -> CartResult<i32> {
    if (1..=MAX_QUANTITY).contains(&quantity) {
        Ok(to_i32(quantity))
    } else {
        Err(CartError::invalid(
            "quantity",
            format!("must be between 1 and {MAX_QUANTITY}"),
        ))
    }
}

/// A quantity for `PATCH …/items/{sku}`: 0 (remove) to 99.
pub fn check_set_quantity(quantity: i64) -> CartResult<i32> {
    if (0..=MAX_QUANTITY).contains(&quantity) {
        Ok(to_i32(quantity))
    } else {
        Err(CartError::invalid(
            "quantity",
            format!("must be between 0 (remove the line) and {MAX_QUANTITY}"),
        ))
    }
}

fn to_i32(quantity: i64) -> i32 {
    i32::try_from(quantity).unwrap_or(i32::MAX)
}

/// A SKU of the catalog's shape; anything else cannot be for sale (422 naming it).
pub fn check_sku(sku: &str) -> CartResult<()> {
    let well_formed = !sku.is_empty()
        && sku.len() <= MAX_SKU_CHARS
        && sku
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
    if well_formed {
        Ok(())
    } else {
        Err(CartError::UnknownSku(sku.chars().take(80).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_bounded() {
        assert!(check_add_quantity(0).is_err());
        assert!(check_add_quantity(-1).is_err());
        assert!(check_add_quantity(100).is_err());
        assert_eq!(check_add_quantity(99).unwrap(), 99);
        assert_eq!(check_set_quantity(0).unwrap(), 0);
        assert!(check_set_quantity(-3).is_err());
        assert!(check_set_quantity(i64::MAX).is_err());
    }

    #[test]
    fn skus_have_the_catalogs_shape() {
        assert!(check_sku("MUG-BLU-2").is_ok());
        for bad in ["", "mug", "MUG BLU", &"A".repeat(65)] {
            assert!(
                matches!(check_sku(bad), Err(CartError::UnknownSku(_))),
                "{bad}"
            );
        }
    }
}
