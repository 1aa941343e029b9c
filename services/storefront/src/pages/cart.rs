//! The cart: adding, changing, the cart page (and its fragment for live updates), and
//! the live stream relayed from the cart service.

use axum::Extension;
use axum::Form;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use reqwest::Method;
use serde_json::{Value, json};

use super::{FormData, auth, check_csrf, field, redirect};
use crate::api::{Cred, Service};
use crate::error::{PageError, PageResult};
use crate::session::{Auth, CartRef, SessionHandle};
use crate::startup::AppState;
use crate::views;

/// The visitor's cart: a signed-in customer's own (created on first use), else the
/// anonymous cart this session holds a token for. `None`: no cart yet.
pub async fn current(
    state: &AppState,
    session: &SessionHandle,
    auth: Option<&Auth>,
) -> Result<Option<(CartRef, Value)>, PageError> {
    if let Some(auth) = auth {
        let reply = state
            .api()
            .get(Service::Cart, "/carts/mine", Cred::bearer(auth))
            .await?;
        if !reply.ok() {
            return Err(anyhow::anyhow!("cart /carts/mine: {}", reply.status).into());
        }
        let cart = CartRef {
            id: reply.body["id"].as_str().unwrap_or("").to_owned(),
            token: None,
        };
        remember(session, &cart, &reply.body);
        return Ok(Some((cart, reply.body)));
    }
    let Some(cart) = session.get().cart.filter(|c| c.token.is_some()) else {
        return Ok(None);
    };
    let reply = state
        .api()
        .get(
            Service::Cart,
            &format!("/carts/{}", cart.id),
            Cred::of(None, Some(&cart)),
        )
        .await?;
    if reply.status == StatusCode::NOT_FOUND || reply.status == StatusCode::UNAUTHORIZED {
        session.update(|s| {
            s.cart = None;
            s.cart_count = 0;
        });
        return Ok(None);
    }
    if !reply.ok() {
        return Err(anyhow::anyhow!("cart /carts/{}: {}", cart.id, reply.status).into());
    }
    remember(session, &cart, &reply.body);
    Ok(Some((cart, reply.body)))
}

/// Keeps the cart's reference and unit count in the session (the header badge).
fn remember(session: &SessionHandle, cart: &CartRef, body: &Value) {
    let count = views::cart_view(body).count;
    let current = session.get();
    if current.cart.as_ref() != Some(cart) || current.cart_count != count {
        session.update(|s| {
            s.cart = Some(cart.clone());
            s.cart_count = count;
        });
    }
}

/// The visitor's cart, made when there is none (an anonymous one for a guest).
async fn ensure(
    state: &AppState,
    session: &SessionHandle,
    auth: Option<&Auth>,
) -> Result<CartRef, PageError> {
    if let Some((cart, _)) = current(state, session, auth).await? {
        return Ok(cart);
    }
    let reply = state
        .api()
        .post(Service::Cart, "/carts", Cred::none(), &json!({}))
        .await?;
    if !reply.ok() {
        return Err(anyhow::anyhow!("cart POST /carts: {}", reply.status).into());
    }
    let cart = CartRef {
        id: reply.body["id"].as_str().unwrap_or("").to_owned(),
        token: reply.body["token"].as_str().map(str::to_owned),
    };
    remember(session, &cart, &reply.body);
    Ok(cart)
}

fn cart_context(state: &AppState, session: &SessionHandle, cart: Option<&Value>) -> tera::Context {
    let mut ctx = state.context(session);
    ctx.insert("cart", &views::cart_view(cart.unwrap_or(&Value::Null)));
    ctx
}

pub async fn page(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
) -> PageResult {
    let auth = auth(&state, &session).await?;
    let cart = current(&state, &session, auth.as_ref()).await?;
    let ctx = cart_context(&state, &session, cart.as_ref().map(|(_, c)| c));
    state.render("cart.html", &ctx)
}

/// The cart's lines alone: what the page's script swaps in when the cart changed in
/// another tab.
pub async fn lines(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
) -> PageResult {
    let auth = auth(&state, &session).await?;
    let cart = current(&state, &session, auth.as_ref()).await?;
    let ctx = cart_context(&state, &session, cart.as_ref().map(|(_, c)| c));
    state.render("cart_lines.html", &ctx)
}

/// A refused change, as the customer reads it.
fn refusal(reply: &crate::api::Reply) -> String {
    let kind = reply.body["type"].as_str().unwrap_or("");
    if kind.ends_with("out-of-stock") {
        let available = reply.body["available"].as_i64().unwrap_or(0);
        return format!("Sorry, only {available} left in stock.");
    }
    let errors = reply.field_errors();
    if errors.is_empty() {
        reply.problem_text()
    } else {
        errors.join("; ")
    }
}

pub async fn add(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Form(form): Form<FormData>,
) -> PageResult {
    check_csrf(&session, &form)?;
    let sku = field(&form, "sku");
    if sku.is_empty() {
        return Err(PageError::BadRequest("Choose a variant first.".into()));
    }
    let quantity: i64 = field(&form, "quantity").parse().unwrap_or(1);
    let auth = auth(&state, &session).await?;
    let cart = ensure(&state, &session, auth.as_ref()).await?;
    let reply = state
        .api()
        .post(
            Service::Cart,
            &format!("/carts/{}/items", cart.id),
            Cred::of(auth.as_ref(), Some(&cart)),
            &json!({"sku": sku, "quantity": quantity}),
        )
        .await?;
    if reply.ok() {
        remember(&session, &cart, &reply.body);
        session.update(|s| s.flash = Some("Added to your cart.".into()));
        Ok(redirect("/cart"))
    } else if reply.status.is_client_error() {
        session.update(|s| s.flash = Some(refusal(&reply)));
        let back = field(&form, "back");
        Ok(redirect(if back.starts_with("/p/") {
            back
        } else {
            "/cart"
        }))
    } else {
        Err(anyhow::anyhow!("cart add: {}", reply.status).into())
    }
}

/// A quantity change (`quantity=0` or the remove button removes the line).
pub async fn update(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Path(sku): Path<String>,
    Form(form): Form<FormData>,
) -> PageResult {
    check_csrf(&session, &form)?;
    let auth = auth(&state, &session).await?;
    let Some((cart, _)) = current(&state, &session, auth.as_ref()).await? else {
        return Ok(redirect("/cart"));
    };
    let quantity: i64 = if field(&form, "remove").is_empty() {
        field(&form, "quantity")
            .parse()
            .map_err(|_| PageError::BadRequest("The quantity must be a whole number.".into()))?
    } else {
        0
    };
    let path = format!("/carts/{}/items/{}", cart.id, sku);
    let reply = state
        .api()
        .send_json(
            Method::PATCH,
            Service::Cart,
            &path,
            Cred::of(auth.as_ref(), Some(&cart)),
            &json!({"quantity": quantity}),
            None,
        )
        .await?;
    if reply.ok() {
        remember(&session, &cart, &reply.body);
    } else if reply.status.is_client_error() {
        session.update(|s| s.flash = Some(refusal(&reply)));
    } else {
        return Err(anyhow::anyhow!("cart update: {}", reply.status).into());
    }
    Ok(redirect("/cart"))
}

/// `GET /cart/events`: the cart's Server-Sent Events, relayed. A browser's EventSource
/// cannot send the bearer token; the session cookie can, and the storefront adds it.
pub async fn events(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
) -> PageResult {
    let auth = auth(&state, &session).await?;
    let Some((cart, _)) = current(&state, &session, auth.as_ref()).await? else {
        // No cart yet: 204 tells EventSource not to reconnect.
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let upstream = state
        .api()
        .cart_events(&cart, Cred::of(auth.as_ref(), Some(&cart)))
        .await?;
    if !upstream.status().is_success() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let mut response = Response::new(Body::from_stream(upstream.bytes_stream()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Proxies (the gateway) must pass events on as they come.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_sentences() {
        let reply = crate::api::Reply {
            status: StatusCode::CONFLICT,
            body: json!({"type": "https://shopstack.dev/problems/out-of-stock", "available": 2}),
        };
        assert_eq!(refusal(&reply), "Sorry, only 2 left in stock.");
    }
}
