//! The one integration-test binary: every test talks HTTP to a real `graphsec serve` process on
//! 127.0.0.1:0 with its own store.

mod actions;
mod auth;
mod batch;
mod bounded;
mod browser;
mod cluster;
mod conformance;
mod documented;
mod documents;
mod durability;
mod etag;
mod explorer;
mod family;
mod fidelity;
mod notifications;
mod onboarding;
mod ops;
mod perf;
mod pg;
mod proxy;
mod query;
mod resilience;
mod resource;
mod spec_pages;
mod support;
mod versions;
mod wire;
