//! shopctl: runs a Shopstack shop on a Docker engine.
//!
//! Commands (thin, in `commands`) load the shop (`shop`), ask the `planner` what to do,
//! and let the `engine` adapter do it. Progress and results go through `output`.

pub mod admin;
pub mod commands;
pub mod compose;
pub mod desired;
pub mod discovery;
pub mod doctor;
pub mod down;
pub mod engine;
pub mod events;
pub mod gateway;
pub mod images;
pub mod init;
pub mod keys;
pub mod logging;
pub mod logs;
pub mod notifications;
pub mod output;
pub mod planner;
pub mod ports;
pub mod reconcile;
pub mod shop;
pub mod status;
