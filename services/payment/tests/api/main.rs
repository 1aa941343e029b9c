//! Integration tests against a real PostgreSQL (a fresh database per test) and, for the
//! service test, a real RabbitMQ. One test binary (faster to build than one per file);
//! the modules group them by concern.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod confirm;
mod events;
mod helpers;
mod ledger;
mod paypal;
mod recovery;
mod service;
mod stripe;
