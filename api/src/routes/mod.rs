//! One module per group of routes.

pub mod health;
pub mod query;
