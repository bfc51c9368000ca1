//! The operator's and the test suite's tools around the Graph API: probes, Prometheus metrics,
//! the admin API (reset, info), NDJSON export/import (also behind `serve --seed`) and, in
//! development mode, the Entra ID-compatible token service (`sts`).
//!
//! They live apart from `api/` so the Graph router's rules (every request needs a Graph token)
//! stay simple: operator endpoints have their own router with their own (or no) authentication.

pub mod commands;
pub mod http;
pub mod metrics;
pub mod sts;
pub mod transfer;

/// What the Graph dispatcher learned about a request, handed to the access log and the request
/// metrics through the response's extensions.
#[derive(Debug, Clone, Default)]
pub struct RequestTag {
    /// The route template's operation (`list`, `get`, `create`, ...), `None` when the request
    /// never reached a route (refused token, unknown path).
    pub operation: Option<&'static str>,
    /// The authenticated tenant.
    pub tenant: Option<String>,
    /// The entity set the path addresses (also for refused requests), for the access log.
    pub set: Option<&'static str>,
}
