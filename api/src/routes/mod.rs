//! One module per group of routes.

mod event_json;
pub mod events;
pub mod health;
pub mod proof;
pub mod query;
