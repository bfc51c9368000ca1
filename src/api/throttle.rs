//! Throttling per (tenant, app id), as Graph does (CONTRACT §8): a keyed GCRA limiter from
//! `governor` (lock-free per key), checked in the per-request dispatch path right after
//! authentication, so `$batch` sub-requests dispatched through the same path count one by one.
//!
//! Buckets live in a concurrent map keyed by a hash of (tenant, app). A housekeeping task
//! ([`Throttle::housekeep`], every [`HOUSEKEEPING_EVERY`]) drops every bucket that has refilled
//! completely (a full bucket is indistinguishable from a fresh one), so memory follows the number
//! of callers active in the last period, not the number ever seen.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::error::GraphError;
use crate::model::entity::{EntityType, RateLimit};

/// How often full buckets are dropped.
pub const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(10);

/// Graph's general figure for the legacy security family: 150 requests per minute per app per
/// tenant. Under `--throttle graph` it applies to requests that address no entity set and to
/// sets the model gives no figures of their own (`Rules::graph_throttle`).
pub const GRAPH_PROFILE: &str = "150/1m";
/// The default: 20,000 requests per second sustained, bursts of 40,000, per (tenant, app). Above
/// what one caller reaches on a small node (docs/PERFORMANCE.md measured about 6,000 durable
/// creates/s on 2 cores), so it never gets in the way of normal use, test suites or benchmarks;
/// on a large node it stops one runaway loop from taking every core. Overload of a small node
/// is the concurrency cap's job (`--max-concurrent-requests`).
pub const DEFAULT_PROFILE: &str = "20000/1s,burst=40000";

/// A parsed `--throttle` value: `off`, `graph`, or `RATE/PERIOD[,burst=N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleSpec {
    Off,
    /// Graph's documented figures, per entity set (the model's `Rules::graph_throttle`), each
    /// set its own bucket per (tenant, app).
    Graph,
    /// `rate` requests per `period`, at most `burst` at once.
    Limit {
        rate: NonZeroU32,
        period: Duration,
        burst: NonZeroU32,
    },
}

/// Parses a duration with a unit: `500ms`, `10s`, `1m`, `1h` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 500ms, 10s, 1m, 1h)"))?;
    let millis = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1_000),
        "m" | "min" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(format!("unknown unit in '{s}' (use ms, s, m or h)")),
    };
    // Timers add a duration to the current instant, which overflows (a panic) past a few
    // hundred years: nothing graphsec times needs more than a year.
    match millis {
        Some(ms) if ms <= MAX_DURATION_MS => Ok(Duration::from_millis(ms)),
        _ => Err(format!(
            "'{s}' is longer than a year, the longest duration graphsec takes"
        )),
    }
}

/// The longest duration [`parse_duration`] accepts: 366 days, in milliseconds.
const MAX_DURATION_MS: u64 = 366 * 24 * 3_600_000;

impl std::str::FromStr for ThrottleSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s {
            "off" | "none" => return Ok(ThrottleSpec::Off),
            "graph" => return Ok(ThrottleSpec::Graph),
            _ => {}
        }
        let bad = || format!("--throttle '{s}': expected off, graph or RATE/PERIOD[,burst=N]");
        let (limit, burst) = match s.split_once(',') {
            Some((l, b)) => (l, Some(b.trim().strip_prefix("burst=").ok_or_else(bad)?)),
            None => (s, None),
        };
        let (rate, period) = limit.split_once('/').ok_or_else(bad)?;
        let rate: NonZeroU32 = rate.trim().parse().map_err(|_| bad())?;
        let period = parse_duration(period)?;
        if period.is_zero() {
            return Err(bad());
        }
        let burst = match burst {
            Some(b) => b.parse().map_err(|_| bad())?,
            None => rate,
        };
        Ok(ThrottleSpec::Limit {
            rate,
            period,
            burst,
        })
    }
}

/// The keyed limiter. Generic over the clock so unit tests can move time by hand.
pub struct Throttle<C: Clock = DefaultClock> {
    limiter: RateLimiter<u64, DashMapStateStore<u64>, C, NoOpMiddleware<C::Instant>>,
    hasher: RandomState,
}

impl Throttle<DefaultClock> {
    /// `None` for [`ThrottleSpec::Off`].
    pub fn new(spec: ThrottleSpec) -> Option<Throttle> {
        Self::with_clock(spec, DefaultClock::default())
    }
}

impl<C: Clock> Throttle<C> {
    /// `None` for [`ThrottleSpec::Off`] and [`ThrottleSpec::Graph`] (see [`Throttles`]).
    pub fn with_clock(spec: ThrottleSpec, clock: C) -> Option<Throttle<C>> {
        let ThrottleSpec::Limit {
            rate,
            period,
            burst,
        } = spec
        else {
            return None;
        };
        // One cell every period/rate; never zero (governor refuses a zero period).
        let cell = (period / rate.get()).max(Duration::from_nanos(1));
        let quota = Quota::with_period(cell)?.allow_burst(burst);
        Some(Throttle {
            limiter: RateLimiter::dashmap_with_clock(quota, clock),
            hasher: RandomState::new(),
        })
    }

    /// Takes one request from the bucket of (tenant, app, scope), or says how long to wait.
    /// `scope` separates buckets of one caller (an entity set's name under `--throttle graph`;
    /// empty otherwise).
    pub fn check(&self, tenant: &str, app: Option<&str>, scope: &str) -> Result<(), GraphError> {
        // A 64-bit hash instead of the strings: no allocation per request, and a collision
        // (odds about 2^-64 per pair) would only make two callers share a bucket.
        let key = self.hasher.hash_one((tenant, app.unwrap_or(""), scope));
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            // Whole seconds, rounded up, at least 1: waiting that long always succeeds.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            GraphError::TooManyRequests {
                message: format!(
                    "Too many requests for this application in this tenant. Retry after {} second(s).",
                    secs.max(1)
                ),
                retry_after_secs: secs.max(1),
            }
        })
    }

    /// Drops buckets that have refilled completely (and gives their memory back).
    pub fn housekeep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Buckets currently held.
    pub fn buckets(&self) -> usize {
        self.limiter.len()
    }
}

/// The throttle of a running server: one limit for every request, or Graph's per-set figures.
pub enum Throttles {
    Uniform(Throttle),
    /// `--throttle graph`: a set with figures of its own is checked against each of them (all
    /// must pass), in buckets keyed by (tenant, app, set); anything else against the family's
    /// general figure ([`GRAPH_PROFILE`]).
    PerSet {
        general: Throttle,
        by_limit: HashMap<RateLimit, Throttle>,
    },
}

impl Throttles {
    /// `None` for [`ThrottleSpec::Off`]. `sets` are the served entity sets (their
    /// `rules.graph_throttle` figures are read once, here).
    pub fn new(spec: ThrottleSpec, sets: &[&'static EntityType]) -> Option<Throttles> {
        match spec {
            ThrottleSpec::Off => None,
            ThrottleSpec::Limit { .. } => Throttle::new(spec).map(Throttles::Uniform),
            ThrottleSpec::Graph => {
                let general = Throttle::new(GRAPH_PROFILE.parse().ok()?)?;
                let mut by_limit = HashMap::new();
                for limit in sets.iter().flat_map(|e| e.rules.graph_throttle) {
                    if by_limit.contains_key(limit) {
                        continue;
                    }
                    let (Some(rate), false) = (NonZeroU32::new(limit.requests), limit.seconds == 0)
                    else {
                        continue; // refused by the catalog's load already
                    };
                    let spec = ThrottleSpec::Limit {
                        rate,
                        period: Duration::from_secs(limit.seconds.into()),
                        burst: rate,
                    };
                    by_limit.insert(*limit, Throttle::new(spec)?);
                }
                Some(Throttles::PerSet { general, by_limit })
            }
        }
    }

    /// Takes one request of `tenant`'s `app` addressed to `set` (none: `$batch` itself, an
    /// unknown path), or says how long to wait.
    pub fn check(
        &self,
        tenant: &str,
        app: Option<&str>,
        set: Option<&EntityType>,
    ) -> Result<(), GraphError> {
        match self {
            Throttles::Uniform(t) => t.check(tenant, app, ""),
            Throttles::PerSet { general, by_limit } => {
                let scope = set.map_or("", |e| e.collection);
                let limits = set.map_or(&[][..], |e| e.rules.graph_throttle);
                if limits.is_empty() {
                    return general.check(tenant, app, scope);
                }
                for limit in limits {
                    if let Some(t) = by_limit.get(limit) {
                        t.check(tenant, app, scope)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Drops buckets that have refilled completely.
    pub fn housekeep(&self) {
        match self {
            Throttles::Uniform(t) => t.housekeep(),
            Throttles::PerSet { general, by_limit } => {
                general.housekeep();
                by_limit.values().for_each(Throttle::housekeep);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn parses_profiles_and_rates() {
        assert_eq!("off".parse::<ThrottleSpec>(), Ok(ThrottleSpec::Off));
        assert_eq!("graph".parse::<ThrottleSpec>(), Ok(ThrottleSpec::Graph));
        let nz = |n| NonZeroU32::new(n).unwrap();
        assert_eq!(
            GRAPH_PROFILE.parse::<ThrottleSpec>(),
            Ok(ThrottleSpec::Limit {
                rate: nz(150),
                period: Duration::from_secs(60),
                burst: nz(150)
            })
        );
        assert_eq!(
            "10/500ms,burst=3".parse::<ThrottleSpec>(),
            Ok(ThrottleSpec::Limit {
                rate: nz(10),
                period: Duration::from_millis(500),
                burst: nz(3)
            })
        );
        for bad in [
            "",
            "10",
            "0/1s",
            "10/0s",
            "10/1x",
            "10/1s,bust=3",
            "10/1s,burst=0",
        ] {
            assert!(bad.parse::<ThrottleSpec>().is_err(), "{bad}");
        }
        assert!(DEFAULT_PROFILE.parse::<ThrottleSpec>().is_ok());
    }

    /// Units, a bare number as seconds, and no overflow (a panic at startup before) for
    /// absurd values: an error naming the limit.
    #[test]
    fn durations_parse_and_refuse_what_would_overflow() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(
            parse_duration("366d").map(|_| ()),
            Err("unknown unit in '366d' (use ms, s, m or h)".into())
        );
        assert_eq!(
            parse_duration("8784h"),
            Ok(Duration::from_secs(8784 * 3600))
        );
        for huge in [
            "8785h",
            "9999999999999999h",
            "18446744073709551615s",
            "99999999999999999999s",
        ] {
            let e = parse_duration(huge).unwrap_err();
            assert!(
                e.contains("longer than a year") || e.contains("not a duration"),
                "{huge}: {e}"
            );
        }
    }

    #[test]
    fn separate_buckets_and_retry_after_from_the_bucket() {
        let clock = FakeRelativeClock::default();
        let t = Throttle::with_clock("2/1m".parse().unwrap(), clock.clone()).unwrap();
        assert!(t.check("t1", Some("app"), "").is_ok());
        assert!(t.check("t1", Some("app"), "").is_ok());
        let Err(GraphError::TooManyRequests {
            retry_after_secs, ..
        }) = t.check("t1", Some("app"), "")
        else {
            panic!("third request passed")
        };
        // One cell every 30 s.
        assert_eq!(retry_after_secs, 30);
        // Other tenant, other app: their own buckets.
        assert!(t.check("t2", Some("app"), "").is_ok());
        assert!(t.check("t1", Some("other"), "").is_ok());
        assert!(t.check("t1", None, "").is_ok());
        clock.advance(Duration::from_secs(29));
        assert!(t.check("t1", Some("app"), "").is_err());
        clock.advance(Duration::from_secs(1));
        assert!(t.check("t1", Some("app"), "").is_ok());
    }

    #[test]
    fn graph_profile_applies_each_sets_documented_figures_in_its_own_buckets() {
        let catalog = crate::model::catalog();
        let set = |n: &str| catalog.set(n).unwrap();
        let t = Throttles::new(ThrottleSpec::Graph, catalog.sets()).unwrap();
        let spend = |set: Option<&EntityType>, n: usize| {
            (0..n)
                .take_while(|_| t.check("t1", Some("app"), set).is_ok())
                .count()
        };
        // alerts: 150 a minute; tiIndicators: 1,000 a minute, in buckets of their own.
        assert_eq!(spend(Some(set("alerts")), 200), 150);
        assert_eq!(spend(Some(set("tiIndicators")), 1200), 1000);
        // secureScores: 150 a minute (and 10,000 per 10 minutes); secureScoreControlProfiles:
        // only 10,000 per 10 minutes.
        assert_eq!(spend(Some(set("secureScores")), 200), 150);
        assert_eq!(spend(Some(set("secureScoreControlProfiles")), 2000), 2000);
        // A set without figures of its own, and requests addressing no set: the general 150.
        assert_eq!(spend(Some(set("cloudAppSecurityProfiles")), 200), 150);
        assert_eq!(spend(None, 200), 150);
        // Another caller is untouched.
        assert!(t.check("t2", Some("app"), Some(set("alerts"))).is_ok());
    }

    #[test]
    fn a_hundred_thousand_tenants_do_not_stay_in_memory() {
        let clock = FakeRelativeClock::default();
        let t = Throttle::with_clock("150/1m".parse().unwrap(), clock.clone()).unwrap();
        for i in 0..100_000 {
            assert!(t.check(&format!("tenant-{i}"), Some("app"), "").is_ok());
        }
        assert_eq!(t.buckets(), 100_000);
        // Still inside the period: the buckets are not full again, so they are kept.
        t.housekeep();
        assert_eq!(t.buckets(), 100_000);
        clock.advance(Duration::from_secs(1));
        // One refilled cell (400 ms) is enough: each bucket spent 1 of 150.
        t.housekeep();
        assert_eq!(t.buckets(), 0);
        // A caller still spending keeps its bucket.
        for _ in 0..10 {
            assert!(t.check("busy", None, "").is_ok());
        }
        t.housekeep();
        assert_eq!(t.buckets(), 1);
    }
}
