//! Admission of an authenticated request: the per-(tenant, app) throttle, then fault injection.
//! [`Admission::admit`] is called once per request in the dispatch path (after
//! authentication, before the handler), so `$batch` sub-requests dispatched through the same
//! path are throttled and faulted one by one.
//!
//! [`record`] is the one place a refusal is reported (a `tracing` event on the target
//! `graphsec::admission`); a metrics counter of throttled requests and injected faults belongs
//! there.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use clap::Args;
use http::Method;

use super::faults::{self, Faults};
use super::throttle::{self, ThrottleSpec, Throttles};
use crate::auth::Principal;
use crate::model::entity::EntityType;

/// Throttling and fault-injection flags.
#[derive(Debug, Clone, Args)]
pub struct AdmissionArgs {
    /// Throttle per (tenant, app id): `off`, `graph` (Graph's documented figures per resource
    /// and per (tenant, app): 1,000 requests a minute on tiIndicators; 150 a minute and 10,000
    /// per 10 minutes on secureScores; 10,000 per 10 minutes on secureScoreControlProfiles; 150
    /// a minute on every other set) or `RATE/PERIOD[,burst=N]` with PERIOD like 500ms, 10s, 1m,
    /// 1h (one bucket per caller for everything). Throttled requests get 429 TooManyRequests
    /// with Retry-After.
    #[arg(long, env = "GRAPHSEC_THROTTLE", default_value = throttle::DEFAULT_PROFILE)]
    pub throttle: ThrottleSpec,

    /// Share of requests (0 to 1) answered with an injected error instead of reaching their
    /// handler (fault injection; 0 = off). Injected responses carry `x-graphsec-fault: injected`.
    #[arg(long, env = "GRAPHSEC_FAULT_RATE", default_value_t = 0.0)]
    pub fault_rate: f64,

    /// Statuses to inject, drawn at random: `429,500,503`, or per method: `PATCH=503,GET=429`
    /// (entries for the request's method win over method-less ones).
    #[arg(long, env = "GRAPHSEC_FAULT_STATUSES", default_value = "429,500,503")]
    pub fault_statuses: String,

    /// Delay every request by a random MIN..MAX milliseconds (e.g. 50..200) before its handler.
    #[arg(long, env = "GRAPHSEC_LATENCY")]
    pub latency: Option<String>,

    /// Seed of the fault generator: the same seed and request sequence give the same faults.
    /// [default: random]
    #[arg(long, env = "GRAPHSEC_FAULT_SEED")]
    pub fault_seed: Option<u64>,

    /// Inject faults and latency only into requests of this tenant. [default: every tenant]
    #[arg(long, env = "GRAPHSEC_FAULT_TENANT")]
    pub fault_tenant: Option<String>,

    /// Retry-After (seconds) on injected 429 and 503 responses.
    #[arg(long, env = "GRAPHSEC_FAULT_RETRY_AFTER", default_value_t = 1)]
    pub fault_retry_after: u64,
}

/// Why a request was not admitted (for logs and the `graphsec_refused_requests_total` metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 429 from the per-(tenant, app) throttle.
    Throttled,
    /// An injected fault with this status.
    InjectedFault(u16),
    /// 503 from the concurrency cap (`--max-concurrent-requests`); no tenant known yet.
    Overloaded,
    /// 408 from `--request-timeout`.
    TimedOut,
    /// 503 from the budget of unsent response bytes (`--max-unsent-bytes`, per process or per
    /// connection).
    Unsent,
}

/// The hook for counting refusals: every throttled request, injected fault, concurrency-cap 503,
/// unsent-bytes 503 and request timeout passes here (the tenant when it is known).
pub fn record(refusal: Refusal, tenant: Option<&str>) {
    tracing::debug!(target: "graphsec::admission", ?refusal, tenant, "request not admitted");
    let (reason, status) = match refusal {
        Refusal::Throttled => ("throttled", 429),
        Refusal::InjectedFault(status) => ("injected_fault", status),
        Refusal::Overloaded => ("overloaded", 503),
        Refusal::TimedOut => ("timed_out", 408),
        Refusal::Unsent => ("unsent_bytes", 503),
    };
    crate::ops::metrics::request_refused(reason, status);
}

/// The throttle and fault profile of a running server.
pub struct Admission {
    throttle: Option<Arc<Throttles>>,
    faults: Option<Faults>,
}

impl Admission {
    pub fn from_args(args: &AdmissionArgs) -> Result<Admission, String> {
        if !(0.0..=1.0).contains(&args.fault_rate) {
            return Err(format!(
                "--fault-rate {} must be between 0 and 1",
                args.fault_rate
            ));
        }
        let statuses = faults::parse_statuses(&args.fault_statuses)
            .map_err(|e| format!("--fault-statuses: {e}"))?;
        let latency = args
            .latency
            .as_deref()
            .map(faults::parse_latency)
            .transpose()?;
        Ok(Admission {
            throttle: Throttles::new(args.throttle, crate::model::catalog().sets()).map(Arc::new),
            faults: Faults::new(
                args.fault_rate,
                statuses,
                latency,
                args.fault_seed,
                args.fault_tenant.clone(),
                args.fault_retry_after,
            ),
        })
    }

    /// No throttle, no faults (for embedding and tests).
    pub fn open() -> Admission {
        Admission {
            throttle: None,
            faults: None,
        }
    }

    /// One line for the startup log.
    pub fn describe(args: &AdmissionArgs) -> String {
        let throttle = match args.throttle {
            ThrottleSpec::Off => "throttle off".to_string(),
            ThrottleSpec::Graph => {
                "throttle per Graph's documented figures per entity set, tenant and app".to_string()
            }
            ThrottleSpec::Limit {
                rate,
                period,
                burst,
            } => format!("throttle {rate} per {period:?} (burst {burst}) per tenant and app"),
        };
        if args.fault_rate > 0.0 || args.latency.is_some() {
            format!(
                "{throttle}; FAULT INJECTION on (rate {}, statuses {}, latency {:?}, tenant {:?})",
                args.fault_rate, args.fault_statuses, args.latency, args.fault_tenant
            )
        } else {
            throttle
        }
    }

    /// Starts the task that drops full throttle buckets, so memory stays bounded with many
    /// tenants. Call once, inside the runtime.
    pub fn spawn_housekeeping(&self) {
        if let Some(t) = &self.throttle {
            let t = Arc::downgrade(t);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(throttle::HOUSEKEEPING_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    match t.upgrade() {
                        Some(t) => t.housekeep(),
                        None => break,
                    }
                }
            });
        }
    }

    /// Throttle, then faults: `Err` is the response to send instead of running the handler.
    /// `set` is the entity set the request addresses, if any (per-set figures of `--throttle
    /// graph`).
    pub async fn admit(
        &self,
        principal: &Principal,
        method: &Method,
        set: Option<&EntityType>,
    ) -> Result<(), Response> {
        if let Some(t) = &self.throttle
            && let Err(e) = t.check(&principal.tenant, principal.app.as_deref(), set)
        {
            record(Refusal::Throttled, Some(&principal.tenant));
            return Err(e.into_response());
        }
        let Some(f) = &self.faults else {
            return Ok(());
        };
        let decision = f.decide(&principal.tenant, method);
        if let Some(delay) = decision.delay.filter(|d| !d.is_zero()) {
            tokio::time::sleep(delay).await;
        }
        match decision.fault {
            Some(status) => {
                record(
                    Refusal::InjectedFault(status.as_u16()),
                    Some(&principal.tenant),
                );
                Err(f.response(status))
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: AdmissionArgs,
    }

    fn from(argv: &[&str]) -> Result<Admission, String> {
        let cli = Cli::try_parse_from(std::iter::once("x").chain(argv.iter().copied()))
            .map_err(|e| e.to_string())?;
        Admission::from_args(&cli.args)
    }

    #[test]
    fn defaults_throttle_and_inject_nothing() {
        let a = from(&[]).unwrap();
        assert!(a.throttle.is_some());
        assert!(a.faults.is_none());
        assert!(from(&["--throttle", "off"]).unwrap().throttle.is_none());
    }

    #[test]
    fn bad_fault_flags_are_refused_at_startup() {
        for argv in [
            &["--fault-rate", "1.5"][..],
            &["--fault-rate", "0.1", "--fault-statuses", "200"],
            &["--latency", "10..5"],
            &["--throttle", "fast"],
        ] {
            assert!(from(argv).is_err(), "{argv:?}");
        }
        assert!(
            from(&["--fault-rate", "0.1", "--latency", "1..5"])
                .unwrap()
                .faults
                .is_some()
        );
    }
}
