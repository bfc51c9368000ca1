//! Fault injection for rehearsing a client's resilience (in the spirit of Dev Proxy), off by
//! default: a share of requests (`--fault-rate`) gets an error status drawn from
//! `--fault-statuses` instead of reaching its handler, and `--latency` delays requests. Faults
//! are decided after authentication (so `--fault-tenant` can confine them to one tenant) and
//! before the handler, so an injected fault never changes stored data. Every injected response
//! carries `x-graphsec-fault: injected`; injected 429 and 503 carry `Retry-After`.
//!
//! The draws come from one seeded generator (`--fault-seed`): the same seed and the same
//! sequence of requests give the same sequence of faults.

use std::sync::Mutex;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode};

use crate::error::GraphError;

/// The header on every injected response.
pub const FAULT_HEADER: &str = "x-graphsec-fault";

/// One `--fault-statuses` entry: a status, for every method or for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultStatus {
    pub method: Option<Method>,
    pub status: StatusCode,
}

/// Parses `429,500,503` or `PATCH=503,GET=429,500`.
pub fn parse_statuses(s: &str) -> Result<Vec<FaultStatus>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (method, status) = match part.split_once('=') {
                Some((m, st)) => (
                    Some(
                        Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes())
                            .map_err(|_| format!("'{m}' is not an HTTP method"))?,
                    ),
                    st,
                ),
                None => (None, part),
            };
            let status = status
                .trim()
                .parse::<u16>()
                .ok()
                .and_then(|n| StatusCode::from_u16(n).ok())
                .filter(|s| s.is_client_error() || s.is_server_error())
                .ok_or_else(|| format!("'{status}' is not an error status (400-599)"))?;
            Ok(FaultStatus { method, status })
        })
        .collect()
}

/// Parses `--latency MIN..MAX` (milliseconds; a single number means exactly that).
pub fn parse_latency(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("--latency '{s}': expected MIN..MAX in milliseconds, e.g. 50..200");
    let (min, max) = match s.split_once("..") {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (s.trim(), s.trim()),
    };
    let (min, max): (u64, u64) = (
        min.parse().map_err(|_| bad())?,
        max.parse().map_err(|_| bad())?,
    );
    if min > max {
        return Err(bad());
    }
    Ok((min, max))
}

/// The configured fault profile.
pub struct Faults {
    rate: f64,
    statuses: Vec<FaultStatus>,
    latency: Option<(u64, u64)>,
    tenant: Option<String>,
    retry_after_secs: u64,
    rng: Mutex<fastrand::Rng>,
}

/// What to do with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub delay: Option<Duration>,
    pub fault: Option<StatusCode>,
}

impl Faults {
    /// `None` when nothing would ever be injected (no rate and no latency).
    pub fn new(
        rate: f64,
        statuses: Vec<FaultStatus>,
        latency: Option<(u64, u64)>,
        seed: Option<u64>,
        tenant: Option<String>,
        retry_after_secs: u64,
    ) -> Option<Faults> {
        if rate <= 0.0 && latency.is_none() {
            return None;
        }
        let rng = match seed {
            Some(s) => fastrand::Rng::with_seed(s),
            None => fastrand::Rng::new(),
        };
        Some(Faults {
            rate,
            statuses,
            latency,
            tenant,
            retry_after_secs,
            rng: Mutex::new(rng),
        })
    }

    /// Decides the fate of one request of `tenant` with `method`.
    pub fn decide(&self, tenant: &str, method: &Method) -> Decision {
        let none = Decision {
            delay: None,
            fault: None,
        };
        if self.tenant.as_deref().is_some_and(|t| t != tenant) {
            return none;
        }
        // Entries for this method win over the method-less ones.
        let for_method: Vec<StatusCode> = self
            .statuses
            .iter()
            .filter(|f| f.method.as_ref() == Some(method))
            .map(|f| f.status)
            .collect();
        let candidates = if for_method.is_empty() {
            self.statuses
                .iter()
                .filter(|f| f.method.is_none())
                .map(|f| f.status)
                .collect()
        } else {
            for_method
        };
        // A poisoned lock only means another request panicked mid-draw; the generator is fine.
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let delay = self
            .latency
            .map(|(min, max)| Duration::from_millis(rng.u64(min..=max)));
        let fault = (!candidates.is_empty() && rng.f64() < self.rate)
            .then(|| candidates[rng.usize(..candidates.len())]);
        Decision { delay, fault }
    }

    /// The response of an injected fault: the Graph error for its status, marked as injected.
    pub fn response(&self, status: StatusCode) -> Response {
        let message = format!("Fault injected by graphsec (--fault-rate): {status}.");
        let retry_after_secs = self.retry_after_secs;
        let error = match status {
            StatusCode::TOO_MANY_REQUESTS => GraphError::TooManyRequests {
                message,
                retry_after_secs,
            },
            StatusCode::SERVICE_UNAVAILABLE => GraphError::ServiceUnavailable {
                message,
                retry_after_secs,
            },
            other => GraphError::from_status(other),
        };
        let mut resp = error.into_response();
        // `from_status` maps unusual statuses to the nearest Graph code; the status stays the
        // one asked for.
        *resp.status_mut() = status;
        resp.headers_mut()
            .insert(FAULT_HEADER, HeaderValue::from_static("injected"));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_statuses_and_latency() {
        let s = parse_statuses("429, PATCH=503,500").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].method, Some(Method::PATCH));
        assert_eq!(s[1].status, StatusCode::SERVICE_UNAVAILABLE);
        for bad in ["200", "abc", "PATCH=", "999"] {
            assert!(parse_statuses(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_latency("50..200"), Ok((50, 200)));
        assert_eq!(parse_latency("7"), Ok((7, 7)));
        assert!(parse_latency("9..1").is_err());
    }

    #[test]
    fn per_method_statuses_win_and_tenant_confines() {
        let f = Faults::new(
            1.0,
            parse_statuses("429,PATCH=503").unwrap(),
            None,
            Some(1),
            Some("chaos".into()),
            1,
        )
        .unwrap();
        for _ in 0..20 {
            assert_eq!(
                f.decide("chaos", &Method::PATCH).fault,
                Some(StatusCode::SERVICE_UNAVAILABLE)
            );
            assert_eq!(
                f.decide("chaos", &Method::GET).fault,
                Some(StatusCode::TOO_MANY_REQUESTS)
            );
            assert_eq!(f.decide("calm", &Method::GET).fault, None);
        }
        let r = f.response(StatusCode::BAD_GATEWAY);
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(r.headers()[FAULT_HEADER], "injected");
    }
}
