//! Shopstack's storefront and merchant admin: server-rendered pages (axum + tera) over
//! the services' HTTP APIs. It owns no database: sessions live in an encrypted cookie,
//! everything else is asked of catalog, user, cart, order and payment with the
//! customer's own bearer token.

pub mod api;
pub mod cli;
pub mod config;
pub mod error;
pub mod pages;
pub mod session;
pub mod startup;
pub mod theme;
pub mod views;

pub use config::Config;
pub use startup::{AppState, Application, router};
