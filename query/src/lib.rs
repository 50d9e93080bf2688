//! Reading a tenant's events safely, shared by the HTTP API and the export processor: the
//! analyst SQL check and tenant rewrite with ClickHouse's confirmation of the final text
//! ([`sql`], docs/security.md), and event scopes, the time windows and exact-match filters of
//! legal holds and exports ([`scope`]).

pub mod scope;
pub mod sql;
