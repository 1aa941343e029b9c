//! The customer's account: sign up, sign in (merging the guest cart), sign out, orders,
//! addresses, and a link to notification preferences when that service is configured.

use axum::Extension;
use axum::Form;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::json;

use super::{FormData, check_csrf, field, redirect, require_auth, safe_next};
use crate::api::{Cred, Service};
use crate::error::{PageError, PageResult};
use crate::session::{Auth, SessionHandle};
use crate::startup::AppState;
use crate::views;

#[derive(Debug, Deserialize)]
pub struct Next {
    next: Option<String>,
}

fn form_page(
    state: &AppState,
    session: &SessionHandle,
    template: &str,
    next: &str,
    email: &str,
    error: Option<&str>,
) -> PageResult {
    let mut ctx = state.context(session);
    ctx.insert("next", safe_next(next));
    ctx.insert("form_email", email);
    ctx.insert("error", &error);
    state.render(template, &ctx)
}

pub async fn signin_form(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Query(q): Query<Next>,
) -> PageResult {
    form_page(
        &state,
        &session,
        "signin.html",
        q.next.as_deref().unwrap_or("/account"),
        "",
        None,
    )
}

pub async fn signup_form(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Query(q): Query<Next>,
) -> PageResult {
    form_page(
        &state,
        &session,
        "signup.html",
        q.next.as_deref().unwrap_or("/account"),
        "",
        None,
    )
}

/// Signs in: the token pair goes into the session, and a guest cart is folded into
/// the customer's own.
async fn start_session(
    state: &AppState,
    session: &SessionHandle,
    auth: Auth,
) -> Result<(), PageError> {
    let guest = session.get().cart.filter(|c| c.token.is_some());
    if let Some(guest) = guest {
        let reply = state
            .api()
            .post(
                Service::Cart,
                "/carts/mine/merge",
                Cred::bearer(&auth),
                &json!({"cart_id": guest.id, "cart_token": guest.token}),
            )
            .await?;
        if !reply.ok() && !reply.status.is_client_error() {
            return Err(anyhow::anyhow!("cart merge: {}", reply.status).into());
        }
    }
    session.update(|s| {
        s.auth = Some(auth);
        s.cart = None;
        // A new token as the visitor's privilege changes.
        s.csrf = crate::session::random_token();
    });
    super::cart::current(state, session, session.get().auth.as_ref()).await?;
    Ok(())
}

pub async fn signin(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Form(form): Form<FormData>,
) -> PageResult {
    check_csrf(&session, &form)?;
    let email = field(&form, "email");
    let next = field(&form, "next");
    match state
        .api()
        .login(email, form.get("password").map_or("", String::as_str))
        .await?
    {
        Ok(auth) => {
            start_session(&state, &session, auth).await?;
            session.update(|s| s.flash = Some("You are signed in.".into()));
            Ok(redirect(safe_next(next)))
        }
        Err(reply) if reply.status == reqwest::StatusCode::TOO_MANY_REQUESTS => form_page(
            &state,
            &session,
            "signin.html",
            next,
            email,
            Some("Too many attempts. Try again later or reset your password."),
        ),
        Err(reply) if reply.status.is_client_error() => form_page(
            &state,
            &session,
            "signin.html",
            next,
            email,
            Some("That email and password do not match an account."),
        ),
        Err(reply) => Err(anyhow::anyhow!("user /login: {}", reply.status).into()),
    }
}

pub async fn signup(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Form(form): Form<FormData>,
) -> PageResult {
    check_csrf(&session, &form)?;
    let email = field(&form, "email");
    let next = field(&form, "next");
    let password = form.get("password").map_or("", String::as_str);
    if password != form.get("password_again").map_or("", String::as_str) {
        return form_page(
            &state,
            &session,
            "signup.html",
            next,
            email,
            Some("The two passwords differ."),
        );
    }
    let reply = state
        .api()
        .post(
            Service::User,
            "/register",
            Cred::none(),
            &json!({"email": email, "password": password}),
        )
        .await?;
    if reply.status.is_client_error() {
        let errors = reply.field_errors();
        let text = if errors.is_empty() {
            reply.problem_text()
        } else {
            errors.join(" ")
        };
        return form_page(&state, &session, "signup.html", next, email, Some(&text));
    }
    if !reply.ok() {
        return Err(anyhow::anyhow!("user /register: {}", reply.status).into());
    }
    // The same answer whether or not the email had an account: signing in tells.
    match state.api().login(email, password).await? {
        Ok(auth) => {
            start_session(&state, &session, auth).await?;
            session.update(|s| s.flash = Some("Welcome! Your account is ready.".into()));
            Ok(redirect(safe_next(next)))
        }
        Err(_) => form_page(
            &state,
            &session,
            "signin.html",
            next,
            email,
            Some("That email already has an account: sign in, or reset the password."),
        ),
    }
}

pub async fn signout(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Form(form): Form<FormData>,
) -> PageResult {
    check_csrf(&session, &form)?;
    if let Some(auth) = session.get().auth {
        // Ends the refresh token's session at the user service too.
        let _ = state
            .api()
            .post(
                Service::User,
                "/logout",
                Cred::none(),
                &json!({"refresh_token": auth.refresh_token}),
            )
            .await;
    }
    session.update(|s| {
        *s = crate::session::Session::fresh();
        s.flash = Some("You are signed out.".into());
    });
    Ok(redirect("/"))
}

pub async fn page(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
) -> PageResult {
    let auth = match require_auth(&state, &session, "/account").await? {
        Ok(auth) => auth,
        Err(redirect) => return Ok(redirect),
    };
    let (orders, addresses) = tokio::join!(
        state
            .api()
            .get(Service::Order, "/orders?limit=20", Cred::bearer(&auth)),
        state
            .api()
            .get(Service::User, "/me/addresses?limit=50", Cred::bearer(&auth)),
    );
    let orders = orders?;
    let addresses = addresses?;
    let preferences = if state.api().upstreams.notification.is_some() {
        let reply = state
            .api()
            .get(
                Service::Notification,
                "/preferences/me",
                Cred::bearer(&auth),
            )
            .await;
        reply.ok().filter(crate::api::Reply::ok).map(|r| r.body)
    } else {
        None
    };
    if !orders.ok() {
        return Err(anyhow::anyhow!("order /orders: {}", orders.status).into());
    }
    let mut ctx = state.context(&session);
    let list: Vec<views::OrderView> = orders.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(views::order_view)
        .collect();
    ctx.insert("orders", &list);
    ctx.insert(
        "addresses",
        &addresses.body["items"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    );
    ctx.insert("preferences", &preferences);
    state.render("account.html", &ctx)
}

/// Email and text notifications (the notification service's `/preferences/me`).
pub async fn notifications(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Form(form): Form<FormData>,
) -> PageResult {
    check_csrf(&session, &form)?;
    let auth = match require_auth(&state, &session, "/account").await? {
        Ok(auth) => auth,
        Err(redirect) => return Ok(redirect),
    };
    if state.api().upstreams.notification.is_none() {
        return Err(PageError::NotFound);
    }
    let phone = field(&form, "phone");
    let body = json!({
        "email": form.contains_key("email"),
        "sms": form.contains_key("sms"),
        "phone": if phone.is_empty() { serde_json::Value::Null } else { json!(phone) },
    });
    let reply = state
        .api()
        .send_json(
            reqwest::Method::PUT,
            Service::Notification,
            "/preferences/me",
            Cred::bearer(&auth),
            &body,
            None,
        )
        .await?;
    let message = if reply.ok() {
        "Notification preferences saved.".to_owned()
    } else {
        let errors = reply.field_errors();
        if errors.is_empty() {
            reply.problem_text()
        } else {
            errors.join("; ")
        }
    };
    session.update(|s| s.flash = Some(message));
    Ok(redirect("/account#notifications"))
}

pub async fn add_address(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Form(form): Form<FormData>,
) -> PageResult {
    check_csrf(&session, &form)?;
    let auth = match require_auth(&state, &session, "/account").await? {
        Ok(auth) => auth,
        Err(redirect) => return Ok(redirect),
    };
    match super::checkout::address_from_form(&form) {
        Ok(address) => {
            let reply = state
                .api()
                .post(
                    Service::User,
                    "/me/addresses",
                    Cred::bearer(&auth),
                    &address,
                )
                .await?;
            let message = if reply.ok() {
                "Address saved.".to_owned()
            } else {
                let errors = reply.field_errors();
                if errors.is_empty() {
                    reply.problem_text()
                } else {
                    errors.join("; ")
                }
            };
            session.update(|s| s.flash = Some(message));
        }
        Err(errors) => session.update(|s| s.flash = Some(errors.join(" "))),
    }
    Ok(redirect("/account#addresses"))
}

pub async fn delete_address(
    State(state): State<AppState>,
    Extension(session): Extension<SessionHandle>,
    Path(id): Path<uuid::Uuid>,
    Form(form): Form<FormData>,
) -> PageResult {
    check_csrf(&session, &form)?;
    let auth = match require_auth(&state, &session, "/account").await? {
        Ok(auth) => auth,
        Err(redirect) => return Ok(redirect),
    };
    state
        .api()
        .delete(
            Service::User,
            &format!("/me/addresses/{id}"),
            Cred::bearer(&auth),
        )
        .await?;
    session.update(|s| s.flash = Some("Address removed.".into()));
    Ok(redirect("/account#addresses"))
}
