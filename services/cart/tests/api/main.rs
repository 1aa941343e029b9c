//! Integration tests against a real PostgreSQL, a fresh database per test. One test
//! binary (faster to build than one per file); the modules group them by concern.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod carts;
mod events;
mod helpers;
mod live;
mod merge;
mod service;
