//! Graph's throttling of slow notification endpoints (`shared/spec/change-notifications.md`,
//! rule 21, from "Receive change notifications through webhooks"): per receiver, over a window
//! of ten minutes, more than 10% of answers slower than the first-attempt timeout (3 s) mark
//! the endpoint **slow**: its new notifications wait ten minutes; more than 15% slower than the
//! retry timeout (10 s) mark it **drop**: its notifications are dropped for ten minutes.
//!
//! Kept per node, in memory, keyed by the receiver's origin (scheme, host, port), as Graph
//! keys it by endpoint. A few answers say little, so a verdict needs [`MIN_SAMPLES`] answers in
//! the window.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Answers in a window before the endpoint can be judged.
pub const MIN_SAMPLES: u32 = 10;
/// Over this share of slow answers (percent), the endpoint is slow.
const SLOW_PERCENT: u32 = 10;
/// Over this share of answers past the retry timeout (percent), the endpoint is dropped.
const DROP_PERCENT: u32 = 15;

/// What the dispatcher does with an endpoint's notifications now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Deliver,
    /// New notifications wait until then.
    Delay(Instant),
    /// Notifications are dropped until then.
    Drop(Instant),
}

#[derive(Debug)]
struct Window {
    since: Instant,
    answers: u32,
    slow: u32,
    very_slow: u32,
    /// The current verdict and how long it lasts.
    verdict: Verdict,
}

/// The endpoints' windows (one per receiver origin).
#[derive(Debug)]
pub struct Endpoints {
    windows: Mutex<HashMap<String, Window>>,
    window: Duration,
    penalty: Duration,
    slow_after: Duration,
    drop_after: Duration,
}

/// The origin of a URL (`https://host:port`), the key of its endpoint.
pub fn origin(url: &str) -> String {
    match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            url[..i + 3 + end].to_ascii_lowercase()
        }
        None => url.to_ascii_lowercase(),
    }
}

impl Endpoints {
    /// `slow_after`/`drop_after`: the first-attempt and retry timeouts; `window` and `penalty`:
    /// ten minutes on Graph.
    pub fn new(
        window: Duration,
        penalty: Duration,
        slow_after: Duration,
        drop_after: Duration,
    ) -> Endpoints {
        Endpoints {
            windows: Mutex::new(HashMap::new()),
            window,
            penalty,
            slow_after,
            drop_after,
        }
    }

    /// The verdict on `url`'s endpoint now.
    pub fn verdict(&self, url: &str) -> Verdict {
        let now = Instant::now();
        let Ok(mut map) = self.windows.lock() else {
            return Verdict::Deliver;
        };
        match map.get_mut(&origin(url)) {
            Some(w) => match w.verdict {
                Verdict::Delay(until) | Verdict::Drop(until) if until <= now => {
                    // The penalty is over: judged afresh.
                    *w = Window::fresh(now);
                    Verdict::Deliver
                }
                v => v,
            },
            None => Verdict::Deliver,
        }
    }

    /// Records one answer (or the lack of one: `took` is then the timeout that ran out) and
    /// returns the verdict it leads to.
    pub fn record(&self, url: &str, took: Duration) -> Verdict {
        let now = Instant::now();
        let Ok(mut map) = self.windows.lock() else {
            return Verdict::Deliver;
        };
        if map.len() > 10_000 {
            map.retain(|_, w| now.duration_since(w.since) < self.window);
        }
        let w = map.entry(origin(url)).or_insert_with(|| Window::fresh(now));
        if now.duration_since(w.since) >= self.window && w.verdict == Verdict::Deliver {
            *w = Window::fresh(now);
        }
        w.answers += 1;
        if took >= self.slow_after {
            w.slow += 1;
        }
        if took >= self.drop_after {
            w.very_slow += 1;
        }
        if w.verdict == Verdict::Deliver && w.answers >= MIN_SAMPLES {
            if w.very_slow * 100 > w.answers * DROP_PERCENT {
                w.verdict = Verdict::Drop(now + self.penalty);
            } else if w.slow * 100 > w.answers * SLOW_PERCENT {
                w.verdict = Verdict::Delay(now + self.penalty);
            }
        }
        w.verdict
    }
}

impl Window {
    fn fresh(now: Instant) -> Window {
        Window {
            since: now,
            answers: 0,
            slow: 0,
            very_slow: 0,
            verdict: Verdict::Deliver,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> Endpoints {
        Endpoints::new(
            Duration::from_secs(600),
            Duration::from_secs(600),
            Duration::from_secs(3),
            Duration::from_secs(10),
        )
    }

    #[test]
    fn slow_and_drop_as_graph_counts_them() {
        let e = endpoints();
        let url = "https://Hooks.example.com:8443/a?x=1";
        assert_eq!(origin(url), "https://hooks.example.com:8443");
        // Nine quick answers and one slow: 10%, not over it.
        for _ in 0..9 {
            assert_eq!(e.record(url, Duration::from_millis(50)), Verdict::Deliver);
        }
        assert_eq!(e.record(url, Duration::from_secs(4)), Verdict::Deliver);
        // One more slow: 2 of 11, over 10%: delayed.
        assert!(matches!(
            e.record(url, Duration::from_secs(4)),
            Verdict::Delay(_)
        ));
        assert!(matches!(
            e.verdict("https://hooks.example.com:8443/other"),
            Verdict::Delay(_)
        ));
        // Another endpoint is judged on its own.
        assert_eq!(e.verdict("https://other.example.com/a"), Verdict::Deliver);
        // Past the retry timeout often: dropped.
        let e = endpoints();
        let url = "https://slow.example.com/";
        for i in 0..10 {
            let took = if i < 2 {
                Duration::from_secs(11)
            } else {
                Duration::from_millis(10)
            };
            e.record(url, took);
        }
        assert!(
            matches!(e.verdict(url), Verdict::Drop(_)),
            "2 of 10 past 10 s is over 15%"
        );
        // A few answers decide nothing.
        let e = endpoints();
        for _ in 0..MIN_SAMPLES - 1 {
            assert_eq!(
                e.record("https://x/", Duration::from_secs(20)),
                Verdict::Deliver
            );
        }
    }

    #[test]
    fn the_penalty_ends() {
        let e = Endpoints::new(
            Duration::from_secs(600),
            Duration::from_millis(1),
            Duration::from_secs(3),
            Duration::from_secs(10),
        );
        for _ in 0..MIN_SAMPLES {
            e.record("https://x/", Duration::from_secs(20));
        }
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(e.verdict("https://x/"), Verdict::Deliver);
    }
}
