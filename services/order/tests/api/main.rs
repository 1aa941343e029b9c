//! Integration tests against a real PostgreSQL, a fresh database per test, with the cart
//! and the catalog faked on a local port. One test binary (faster to build than one per
//! file); the modules group them by concern.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod checkout;
mod events;
mod helpers;
mod idempotency;
mod reads;
mod service;
