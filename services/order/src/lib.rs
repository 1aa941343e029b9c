//! The order service (being built; see docs/checkout.md).
