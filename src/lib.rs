//! graphsec: a self-hosted, Graph-compatible server for Microsoft Graph's legacy Security API
//! (`/beta/security/alerts`, `cloudAppSecurityProfiles`, `tiIndicators`, … the whole family).
//!
//! A reading tour, in the order data flows:

/// HTTP: routes (the only place paths appear), request context, thin handlers, OData envelope.
pub mod api;
/// Bearer-token authentication (dev keys, JWKS), permissions per operation, tenants.
pub mod auth;
/// Command-line flags and their defaults.
pub mod config;
/// The one error enum that reaches the wire.
pub mod error;
/// The data explorer: HTML pages over the same store, validation and actions as the API.
pub mod explorer;
/// The entity table and everything derived from it: Edm types, values, validation.
pub mod model;
/// Change notifications: subscriptions' bodies, receiver policy and handshake, the dispatcher
/// that delivers the store's outbox.
pub mod notify;
/// The OData query engine: `$filter` grammar, type checking, system query options (pure).
pub mod odata;
/// Operator tools: probes, metrics, the admin API, NDJSON export/import.
pub mod ops;
/// `--https-proxy` (development mode): CONNECT tunnels for Microsoft's identity and Graph hosts,
/// served by graphsec with certificates of its development CA.
pub mod proxy;
/// The accept loop: connection limits and a graceful shutdown bounded in time.
pub mod serve;
/// Startup, listening, graceful shutdown.
pub mod server;
/// Persistence behind a tenant-scoped trait; the SQL schema derived from the entity table.
pub mod store;
/// HTTPS: certificate files or a generated self-signed certificate, and the TLS listener.
pub mod tls;
