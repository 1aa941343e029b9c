//! The cart service (being built; see docs/checkout.md).
