//! Checkout: address and shipping, the order (idempotent), payment through the
//! configured provider, and the order's confirmation page.
//!
//! The order service keeps no address or shipping lines yet: the address goes to the
//! customer's address book (user service), the shipping choice is one of free options
//! shown on the confirmation. The amount paid is the order's total.

use std::time::Duration;

use axum::Extension;
use axum::Form;
use axum::extract::{Path, State};
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use super::{FormData, check_csrf, field, redirect, require_auth};
use crate::api::{Cred, Service};
use crate::error::{PageError, PageResult};
use crate::session::{Auth, SessionHandle, random_token};
use crate::startup::AppState;
use crate::views;

/// How long a page waits for the checkout's events (stock reserved, intent created)
/// before it answers with a page that refreshes itself.
const EVENT_WAIT: Duration = Duration::from_secs(4);
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Shipping {
    pub code: &'static str,
    pub label: &'static str,
    pub days: &'static str,
}

/// The shipping choices (free while the order service has no shipping lines).
pub const SHIPPING: [Shipping; 2] = [
    Shipping {
        code: "standard",
        label: "Standard delivery — free",
        days: "3–5 working days",
    },
    Shipping {
        code: "pickup",
        label: "Collect in store — free",
        days: "ready tomorrow",
    },
];

/// A new address from the checkout form, as the user service's address book takes it;
/// or the fields the customer must still fill in.
pub fn address_from_form(form: &FormData) -> Result<Value, Vec<String>> {
    let mut missing = Vec::new();
    for (name, label) in [
        ("name", "Full name"),
        ("line1", "Address"),
        ("city", "City"),
        ("postal_code", "Postal code"),
        ("country", "Country"),
    ] {
        if field(form, name).is_empty() {
            missing.push(format!("{label} is required."));
        }
    }
    let country = field(form, "country").to_ascii_uppercase();
    if !country.is_empty()
        && (country.len() != 2 || !country.chars().all(|c| c.is_ascii_alphabetic()))
    {
        missing.push("Country must be a two-letter code such as US or DE.".into());
    }
    if !missing.is_empty() {
        return Err(missing);
    }
    let optional = |name: &str| {
        let v = field(form, name);
        if v.is_empty() {
            Value::Null
        } else {
            Value::String(v.to_owned())
        }
    };
    Ok(json!({
        "kind": "shipping",
        "name": field(form, "name"),
        "line1": field(form, "line1"),
        "line2": optional("line2"),
        "city": field(form, "city"),
        "region": optional("region"),
        "postal_code": field(form, "postal_code"),
        "country": country,
        "phone": optional("phone"),
    }))
}

#[derive(Debug, Clone, Serialize)]
struct AddressView {
    id: String,
    text: String,
}

fn address_views(list: &Value) -> Vec<AddressView> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let parts: Vec<&str> = ["name", "line1", "line2", "city", "postal_code", "country"]
                .iter()
                .filter_map(|k| a[*k].as_str())
                .filter(|s| !s.is_empty())
                .collect();
            AddressView {
                id: a["id"].as_str().unwrap_or("").to_owned(),
                text: parts.join(", "),
            }
        })
        .collect()
}

async fn checkout_page(
    state: &AppState,
    session: &SessionHandle,
    auth: &Auth,
    errors: &[String],
    form: &FormData,
) -> PageResult {
    let Some((_, cart)) = super::cart::current(state, session, Some(auth)).await? else {
        return Ok(redirect("/cart"));
    };
    let cart = views::cart_view(&cart);
    if cart.empty {
        return Ok(redirect("/cart"));
    }
    let addresses = state
        .api()
        .get(Service::User, "/me/addresses?limit=20", Cred::bearer(auth))
        .await?;
    let mut ctx = state.context(session);
    ctx.insert("cart", &cart);
    ctx.insert("addresses", &address_views(&addresses.body));
    ctx.insert("shipping", &SHIPPING);
    ctx.insert("errors", errors);
    ctx.insert("form", form);
    ctx.insert("key", &random_token());
    state.render("checkout.html", &ctx)
}

pub async fn form(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
) -> PageResult {
    let auth = match require_auth(&state, &session, "/checkout").await? {
        Ok(auth) => auth,
        Err(redirect) => return Ok(redirect),
    };
    checkout_page(&state, &session, &auth, &[], &FormData::new()).await
}

pub async fn place(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Form(form): Form<FormData>,
) -> PageResult {
    check_csrf(&session, &form)?;
    let auth = match require_auth(&state, &session, "/checkout").await? {
        Ok(auth) => auth,
        Err(redirect) => return Ok(redirect),
    };
    if !SHIPPING.iter().any(|s| s.code == field(&form, "shipping")) {
        return checkout_page(
            &state,
            &session,
            &auth,
            &["Choose a shipping option.".into()],
            &form,
        )
        .await;
    }
    let chosen = field(&form, "address_id");
    if chosen.is_empty() || chosen == "new" {
        let address = match address_from_form(&form) {
            Ok(address) => address,
            Err(errors) => return checkout_page(&state, &session, &auth, &errors, &form).await,
        };
        let saved = state
            .api()
            .post(
                Service::User,
                "/me/addresses",
                Cred::bearer(&auth),
                &address,
            )
            .await?;
        if saved.status.is_client_error() {
            let mut errors = saved.field_errors();
            if errors.is_empty() {
                errors.push(saved.problem_text());
            }
            return checkout_page(&state, &session, &auth, &errors, &form).await;
        }
        if !saved.ok() {
            return Err(anyhow::anyhow!("user POST /me/addresses: {}", saved.status).into());
        }
    }
    let Some((cart, _)) = super::cart::current(&state, &session, Some(&auth)).await? else {
        return Ok(redirect("/cart"));
    };
    let key = field(&form, "key");
    if key.is_empty() {
        return Err(PageError::BadRequest(
            "The checkout form is incomplete; reload it.".into(),
        ));
    }
    let placed = state
        .api()
        .send_json(
            reqwest::Method::POST,
            Service::Order,
            "/orders",
            Cred::bearer(&auth),
            &json!({"cart_id": cart.id}),
            Some(key),
        )
        .await?;
    if placed.ok() {
        let id = placed.body["id"].as_str().unwrap_or("");
        let shipping = field(&form, "shipping");
        return Ok(redirect(&format!("/checkout/pay/{id}?shipping={shipping}")));
    }
    if placed.status.is_client_error() {
        let message = if placed.status == StatusCode::CONFLICT {
            "Some items are no longer in stock in that quantity; your cart shows what is left."
                .to_owned()
        } else {
            placed.problem_text()
        };
        session.update(|s| s.flash = Some(message));
        return Ok(redirect("/cart"));
    }
    Err(anyhow::anyhow!("order POST /orders: {}", placed.status).into())
}

async fn order(state: &AppState, auth: &Auth, id: &str) -> Result<Value, PageError> {
    let reply = state
        .api()
        .get(Service::Order, &format!("/orders/{id}"), Cred::bearer(auth))
        .await?;
    if reply.status == StatusCode::NOT_FOUND || reply.status == StatusCode::BAD_REQUEST {
        return Err(PageError::NotFound);
    }
    if !reply.ok() {
        return Err(anyhow::anyhow!("order /orders/{id}: {}", reply.status).into());
    }
    Ok(reply.body)
}

/// The order, once it has left `pending` (or as it is after [`EVENT_WAIT`]).
async fn order_settled(state: &AppState, auth: &Auth, id: &str) -> Result<Value, PageError> {
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    loop {
        let current = order(state, auth, id).await?;
        if current["status"] != "pending" || tokio::time::Instant::now() > deadline {
            return Ok(current);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The order's payment intent, once the payment service has made it.
async fn payment_of(
    state: &AppState,
    auth: &Auth,
    order_id: &str,
) -> Result<Option<Value>, PageError> {
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    loop {
        let reply = state
            .api()
            .get(
                Service::Payment,
                &format!("/payments?order_id={order_id}"),
                Cred::bearer(auth),
            )
            .await?;
        if !reply.ok() {
            return Err(anyhow::anyhow!("payment /payments: {}", reply.status).into());
        }
        if let Some(payment) = reply.body["items"].as_array().and_then(|i| i.first()) {
            return Ok(Some(payment.clone()));
        }
        if tokio::time::Instant::now() > deadline {
            return Ok(None);
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn pay_view(
    state: &AppState,
    session: &SessionHandle,
    auth: &Auth,
    id: &str,
    error: Option<String>,
) -> PageResult {
    let current = order_settled(state, auth, id).await?;
    let status = current["status"].as_str().unwrap_or("");
    if status != "pending" && status != "awaiting_payment" {
        return Ok(redirect(&format!("/orders/{id}")));
    }
    let payment = if status == "awaiting_payment" {
        payment_of(state, auth, id).await?
    } else {
        None
    };
    if payment.as_ref().is_some_and(|p| p["status"] == "succeeded") {
        return Ok(redirect(&format!("/orders/{id}")));
    }
    let mut ctx = state.context(session);
    ctx.insert("order", &views::order_view(&current));
    ctx.insert("preparing", &payment.is_none());
    ctx.insert(
        "payment_id",
        &payment.as_ref().and_then(|p| p["id"].as_str()),
    );
    ctx.insert(
        "provider",
        &payment
            .as_ref()
            .and_then(|p| p["provider"].as_str())
            .unwrap_or("test"),
    );
    ctx.insert(
        "publishable_key",
        &payment.as_ref().and_then(|p| {
            p["client"]["publishable_key"]
                .as_str()
                .or_else(|| p["publishable_key"].as_str())
                .or_else(|| p["client_id"].as_str())
        }),
    );
    ctx.insert(
        "requires_action",
        &payment
            .as_ref()
            .is_some_and(|p| p["status"] == "requires_action"),
    );
    ctx.insert("error", &error);
    ctx.insert("key", &random_token());
    state.render("pay.html", &ctx)
}

pub async fn pay_page(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Path(id): Path<String>,
) -> PageResult {
    let auth = match require_auth(&state, &session, &format!("/checkout/pay/{id}")).await? {
        Ok(auth) => auth,
        Err(redirect) => return Ok(redirect),
    };
    pay_view(&state, &session, &auth, &id, None).await
}

/// `4242 4242 4242 4242`, `12/34` → the payment service's card.
pub fn card_from_form(form: &FormData) -> Result<Value, String> {
    let number: String = field(form, "number")
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if number.len() < 12 || !number.chars().all(|c| c.is_ascii_digit()) {
        return Err("Enter the card number (digits only).".into());
    }
    let expiry = field(form, "expiry");
    let (month, year) = expiry
        .split_once('/')
        .ok_or("Enter the expiry date as MM/YY.")?;
    let month: i64 = month
        .trim()
        .parse()
        .map_err(|_| "Enter the expiry month as MM.")?;
    let mut year: i64 = year
        .trim()
        .parse()
        .map_err(|_| "Enter the expiry year as YY.")?;
    if year < 100 {
        year += 2000;
    }
    let cvc = field(form, "cvc");
    if !(3..=4).contains(&cvc.len()) || !cvc.chars().all(|c| c.is_ascii_digit()) {
        return Err("Enter the 3 or 4 digit security code.".into());
    }
    Ok(
        json!({"payment_method": {"type": "card", "number": number, "exp_month": month, "exp_year": year, "cvc": cvc}}),
    )
}

fn failure_text(reason: Option<&str>) -> String {
    match reason {
        Some("card_declined") => "Your card was declined. Try another card.".into(),
        Some("insufficient_funds") => "Your card has insufficient funds. Try another card.".into(),
        Some("authentication_failed") => {
            "The card could not be authenticated. Try again or use another card.".into()
        }
        _ => "The payment did not go through. Try another card.".into(),
    }
}

async fn after_payment(
    state: &AppState,
    session: &SessionHandle,
    auth: &Auth,
    id: &str,
    reply: &crate::api::Reply,
) -> PageResult {
    if reply.ok() {
        return match reply.body["status"].as_str() {
            Some("succeeded" | "processing") => {
                session.update(|s| s.cart_count = 0);
                Ok(redirect(&format!("/orders/{id}?confirming=1")))
            }
            Some("requires_action") => pay_view(state, session, auth, id, None).await,
            _ => {
                pay_view(
                    state,
                    session,
                    auth,
                    id,
                    Some(failure_text(reply.body["failure_reason"].as_str())),
                )
                .await
            }
        };
    }
    if reply.status.is_client_error() {
        let errors = reply.field_errors();
        let text = if errors.is_empty() {
            reply.problem_text()
        } else {
            errors.join("; ")
        };
        return pay_view(state, session, auth, id, Some(text)).await;
    }
    Err(anyhow::anyhow!("payment confirm: {}", reply.status).into())
}

pub async fn pay(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Path(id): Path<String>,
    Form(form): Form<FormData>,
) -> PageResult {
    check_csrf(&session, &form)?;
    let auth = match require_auth(&state, &session, &format!("/checkout/pay/{id}")).await? {
        Ok(auth) => auth,
        Err(redirect) => return Ok(redirect),
    };
    let card = match card_from_form(&form) {
        Ok(card) => card,
        Err(message) => return pay_view(&state, &session, &auth, &id, Some(message)).await,
    };
    let payment = field(&form, "payment_id");
    let key = field(&form, "key");
    if payment.is_empty() || key.is_empty() || payment.contains('/') {
        return Err(PageError::BadRequest(
            "The payment form is incomplete; reload it.".into(),
        ));
    }
    let reply = state
        .api()
        .send_json(
            reqwest::Method::POST,
            Service::Payment,
            &format!("/payments/{payment}/confirm"),
            Cred::bearer(&auth),
            &card,
            Some(key),
        )
        .await?;
    after_payment(&state, &session, &auth, &id, &reply).await
}

/// The test gateway's 3-D Secure step: approve or deny.
pub async fn authenticate(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Path(id): Path<String>,
    Form(form): Form<FormData>,
) -> PageResult {
    check_csrf(&session, &form)?;
    let auth = match require_auth(&state, &session, &format!("/checkout/pay/{id}")).await? {
        Ok(auth) => auth,
        Err(redirect) => return Ok(redirect),
    };
    let payment = field(&form, "payment_id");
    let outcome = if field(&form, "outcome") == "approve" {
        "approve"
    } else {
        "deny"
    };
    if payment.is_empty() || payment.contains('/') {
        return Err(PageError::BadRequest(
            "The form is incomplete; reload it.".into(),
        ));
    }
    let reply = state
        .api()
        .post(
            Service::Payment,
            &format!("/payments/{payment}/authenticate"),
            Cred::bearer(&auth),
            &json!({"outcome": outcome}),
        )
        .await?;
    after_payment(&state, &session, &auth, &id, &reply).await
}

#[derive(Debug, serde::Deserialize)]
pub struct OrderQuery {
    confirming: Option<String>,
}

pub async fn order_page(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<OrderQuery>,
) -> PageResult {
    let auth = match require_auth(&state, &session, &format!("/orders/{id}")).await? {
        Ok(auth) => auth,
        Err(redirect) => return Ok(redirect),
    };
    let current = order(&state, &auth, &id).await?;
    let view = views::order_view(&current);
    let mut ctx = state.context(&session);
    // Paid is announced by an event a moment after the card was accepted: the page looks
    // again by itself until the order has moved on.
    ctx.insert(
        "refresh",
        &(q.confirming.is_some() && matches!(view.status.as_str(), "pending" | "awaiting_payment")),
    );
    ctx.insert("order", &view);
    state.render("order.html", &ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormData {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_card_form_becomes_the_payment_method() {
        let card = card_from_form(&form(&[
            ("number", "4242 4242 4242 4242"),
            ("expiry", "12/34"),
            ("cvc", "123"),
        ]))
        .unwrap();
        assert_eq!(card["payment_method"]["number"], "4242424242424242");
        assert_eq!(card["payment_method"]["exp_year"], 2034);
        assert_eq!(card["payment_method"]["exp_month"], 12);
        assert!(
            card_from_form(&form(&[
                ("number", "4242"),
                ("expiry", "12/34"),
                ("cvc", "123")
            ]))
            .is_err()
        );
        assert!(
            card_from_form(&form(&[
                ("number", "4242424242424242"),
                ("expiry", "1234"),
                ("cvc", "123")
            ]))
            .is_err()
        );
        assert!(
            card_from_form(&form(&[
                ("number", "4242424242424242"),
                ("expiry", "12/34"),
                ("cvc", "1")
            ]))
            .is_err()
        );
    }

    #[test]
    fn an_address_needs_its_fields_and_a_country_code() {
        let errors =
            address_from_form(&form(&[("name", "Ada"), ("country", "Germany")])).unwrap_err();
        assert!(errors.iter().any(|e| e.starts_with("Address")));
        assert!(errors.iter().any(|e| e.contains("two-letter")));
        let ok = address_from_form(&form(&[
            ("name", "Ada"),
            ("line1", "1 Main St"),
            ("city", "Berlin"),
            ("postal_code", "10115"),
            ("country", "de"),
        ]))
        .unwrap();
        assert_eq!(ok["country"], "DE");
        assert_eq!(ok["line2"], Value::Null);
    }
}
