//! Integration tests: the providers against local servers that speak their documented
//! wire formats and check every request; the delivery worker against a real PostgreSQL
//! (a fresh database per test) with a scripted provider; the event handler through
//! shopkit's inbox; the HTTP API with `oneshot`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api;
mod contract;
mod delivery;
mod events;
mod helpers;
