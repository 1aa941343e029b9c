//! The payment service (being built; see docs/checkout.md).
