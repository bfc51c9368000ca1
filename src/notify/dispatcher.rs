//! The dispatcher: delivers the store's outbox to the receivers, on every node.
//!
//! Each tick it leases subscriptions with due notifications (on PostgreSQL with
//! `FOR UPDATE SKIP LOCKED`, so nodes take different ones; a dead node's lease runs out and
//! another node takes its work over) and hands each to a delivery task, at most
//! `--notify-concurrency` at once. A task POSTs the subscription's oldest pending
//! notifications as one `changeNotificationCollection`; a 2xx within the timeout (3 s first,
//! 10 s on retries) deletes them, anything else schedules a retry of the same notifications
//! with exponential backoff, so delivery is at least once and in commit order per
//! subscription. Notifications older than `--notify-max-age-secs` (4 h) are dropped and
//! counted. A slow receiver holds one task slot and its own queue, never a write.
//!
//! The same loop sweeps expired subscriptions and queues `reauthorizationRequired` lifecycle
//! notifications for subscriptions close to expiry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json, json};
use tokio::sync::Semaphore;

use super::{Notifier, TICKS_PER_SEC};
use crate::model::edm::{format_datetime, now_ticks};
use crate::ops::metrics as m;
use crate::store::Store;
use crate::store::notify::{DeliveryLog, OutboxRow, Outcome, Pending};

/// Notifications per POST at most.
const BATCH: usize = 50;
/// The longest delay between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30 * 60);
/// How often expired subscriptions are swept and lifecycle challenges queued.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// How often the outbox gauges are refreshed.
const STATS_EVERY: Duration = Duration::from_secs(2);

/// Starts the dispatcher on this node; it runs until the process ends.
pub fn spawn(store: Arc<dyn Store>, notifier: Arc<Notifier>) {
    let node = format!("graphsec-{}", uuid::Uuid::new_v4());
    tracing::info!(node = %node, "notification dispatcher started");
    tokio::spawn(run(store, notifier, node));
}

async fn run(store: Arc<dyn Store>, notifier: Arc<Notifier>, node: String) {
    let args = &notifier.args;
    let slots = Arc::new(Semaphore::new(args.notify_concurrency.max(1)));
    let poll = Duration::from_millis(args.notify_poll_ms.max(10));
    let lease = i64::try_from(args.notify_lease_secs.max(1)).unwrap_or(60) * TICKS_PER_SEC;
    let reauth_before =
        i64::try_from(args.notify_reauthorize_before_secs).unwrap_or(600) * TICKS_PER_SEC;
    let mut last_sweep: Option<Instant> = None;
    let mut last_stats: Option<Instant> = None;
    loop {
        let now = now_ticks();
        if last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY) {
            last_sweep = Some(Instant::now());
            match store.notify().sweep(now, now + reauth_before).await {
                Ok(s) if s.expired > 0 || s.challenged > 0 => tracing::info!(
                    expired = s.expired,
                    challenged = s.challenged,
                    "swept subscriptions"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "subscription sweep failed"),
            }
        }
        if last_stats.is_none_or(|t| t.elapsed() >= STATS_EVERY) {
            last_stats = Some(Instant::now());
            if let Ok((pending, oldest)) = store.notify().outbox_stats().await {
                metrics::gauge!(m::NOTIFY_PENDING).set(pending as f64);
                let age = oldest.map_or(0.0, |t| ((now - t).max(0) as f64) / TICKS_PER_SEC as f64);
                metrics::gauge!(m::NOTIFY_OLDEST_AGE).set(age);
            }
        }
        let free = slots.available_permits();
        if free > 0 {
            match store.notify().claim(&node, now, now + lease, free).await {
                Ok(claimed) => {
                    for (tenant, id) in claimed {
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            return;
                        };
                        let (store, notifier) = (store.clone(), notifier.clone());
                        tokio::spawn(async move {
                            deliver(&*store, &notifier, &tenant, &id).await;
                            drop(permit);
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not claim notifications"),
            }
        }
        // The next poll, or sooner when a write on this node queued something.
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            () = notifier.woken() => {}
        }
    }
}

/// A stable notification id per queued row: a retry carries the same id, so receivers can
/// drop repeats.
fn notification_id(subscription: &str, seq: i64) -> String {
    // FNV-1a of the subscription id, then the sequence number.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in subscription.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    uuid::Uuid::from_u64_pair(h, seq as u64).to_string()
}

/// The `changeNotificationCollection` of a run of rows of one kind.
pub fn payload(p: &Pending, rows: &[OutboxRow]) -> Json {
    let s = &p.subscription;
    let items: Vec<Json> = rows
        .iter()
        .map(|r| {
            let mut item = Map::new();
            item.insert("id".into(), json!(notification_id(&s.id, r.seq)));
            item.insert("subscriptionId".into(), json!(s.id));
            item.insert(
                "subscriptionExpirationDateTime".into(),
                json!(format_datetime(s.expiration)),
            );
            if let Some(c) = &s.client_state {
                item.insert("clientState".into(), json!(c));
            }
            if r.kind == "lifecycle" {
                item.insert("lifecycleEvent".into(), json!(r.event));
            } else {
                let set = r.set_name.as_deref().unwrap_or_else(|| {
                    crate::store::notify::subscribable_set(crate::model::catalog())
                        .map_or("", |e| e.collection)
                });
                let id = r.resource_id.as_deref().unwrap_or("");
                let resource = format!("security/{set}/{id}");
                // Graph writes the resource's type as `#Microsoft.Graph.{type}`.
                let ty = crate::model::catalog()
                    .set(set)
                    .map_or(String::new(), |e| format!("#Microsoft.Graph.{}", e.name));
                item.insert("changeType".into(), json!(r.event));
                item.insert("resource".into(), json!(resource));
                item.insert(
                    "resourceData".into(),
                    json!({
                        "@odata.type": ty,
                        "@odata.id": resource,
                        "id": id,
                    }),
                );
            }
            item.insert("tenantId".into(), json!(s.tenant));
            Json::Object(item)
        })
        .collect();
    json!({ "value": items })
}

/// Delivers one leased subscription's oldest pending run and records the outcome.
async fn deliver(store: &dyn Store, notifier: &Notifier, tenant: &str, id: &str) {
    let args = &notifier.args;
    let pending = match store.notify().pending(tenant, id, BATCH).await {
        Ok(p) => p,
        // Deleted meanwhile: its notifications went with it.
        Err(crate::store::StoreError::NotFound) => return,
        Err(e) => {
            tracing::warn!(error = %e, subscription = id, "could not read pending notifications");
            return;
        }
    };
    let Some(first) = pending.rows.first() else {
        let _ = store
            .notify()
            .finish(tenant, id, Outcome::Delivered(Vec::new()), None)
            .await;
        return;
    };
    let kind = first.kind.clone();
    let run: Vec<OutboxRow> = pending
        .rows
        .iter()
        .take_while(|r| r.kind == kind)
        .cloned()
        .collect();
    let now = now_ticks();
    let max_age =
        i64::try_from(args.notify_max_age_secs).unwrap_or(i64::MAX / TICKS_PER_SEC) * TICKS_PER_SEC;
    let sub = &pending.subscription;
    let url = if kind == "lifecycle" {
        sub.lifecycle_url.clone()
    } else {
        Some(sub.notification_url.clone())
    };
    let stale: Vec<i64> = run
        .iter()
        .filter(|r| now - r.created > max_age)
        .map(|r| r.seq)
        .collect();
    if !stale.is_empty() || url.is_none() {
        let seqs = if url.is_none() {
            run.iter().map(|r| r.seq).collect()
        } else {
            stale
        };
        let n = seqs.len() as u64;
        metrics::counter!(m::NOTIFY_DROPPED).increment(n);
        tracing::warn!(
            target: "graphsec::notify",
            tenant, subscription = id, notifications = n,
            "dropped notifications that could not be delivered within the retry window"
        );
        let log = log_entry(
            &kind,
            pending.attempts + 1,
            n as i64,
            None,
            "dropped",
            Some("older than the retry window".into()),
        );
        if let Err(e) = store
            .notify()
            .finish(tenant, id, Outcome::Dropped(seqs), Some(log))
            .await
        {
            tracing::warn!(error = %e, "could not record dropped notifications");
        }
        return;
    }
    let Some(url) = url else { return };
    // Graph's verdict on a slow receiver (rule 21): dropped, or its new notifications delayed.
    let seqs: Vec<i64> = run.iter().map(|r| r.seq).collect();
    let n = run.len() as i64;
    let penalty = match notifier.endpoints.verdict(&url) {
        super::endpoint::Verdict::Deliver => None,
        super::endpoint::Verdict::Drop(_) => {
            metrics::counter!(m::NOTIFY_DROPPED).increment(n as u64);
            let why = "the endpoint is dropped: over 15% of its answers in the window took longer than the retry timeout (Graph's throttling of slow endpoints)";
            tracing::warn!(
                target: "graphsec::notify",
                tenant, subscription = id, url = %super::redacted(&url), notifications = n,
                "dropped notifications: {why}"
            );
            Some((
                Outcome::Dropped(seqs.clone()),
                log_entry(
                    &kind,
                    pending.attempts + 1,
                    n,
                    None,
                    "dropped",
                    Some(why.into()),
                ),
            ))
        }
        super::endpoint::Verdict::Delay(until) if pending.attempts == 0 => {
            let wait = until.saturating_duration_since(Instant::now());
            let why = "the endpoint is slow: over 10% of its answers in the window took longer than the first-attempt timeout; new notifications wait (Graph's throttling of slow endpoints)";
            tracing::info!(
                target: "graphsec::notify",
                tenant, subscription = id, url = %super::redacted(&url), notifications = n,
                delay_ms = wait.as_millis() as u64, "delayed notifications: {why}"
            );
            Some((
                Outcome::Retry {
                    next_attempt: now_ticks()
                        + i64::try_from(wait.as_micros()).unwrap_or(i64::MAX / 20) * 10,
                    attempts: 0,
                },
                log_entry(
                    &kind,
                    pending.attempts + 1,
                    n,
                    None,
                    "delayed",
                    Some(why.into()),
                ),
            ))
        }
        super::endpoint::Verdict::Delay(_) => None,
    };
    if let Some((outcome, log)) = penalty {
        if let Err(e) = store.notify().finish(tenant, id, outcome, Some(log)).await {
            tracing::warn!(error = %e, subscription = id, "could not record a delivery outcome");
        }
        return;
    }
    let body = payload(&pending, &run);
    let timeout = Duration::from_millis(if pending.attempts == 0 {
        args.notify_timeout_ms
    } else {
        args.notify_retry_timeout_ms
    });
    let started = Instant::now();
    let attempt = pending.attempts + 1;
    let sent = notifier
        .client()
        .post(&url)
        .header(
            http::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )
        .timeout(timeout)
        .body(body.to_string())
        .send();
    let result = match tokio::time::timeout(timeout, sent).await {
        Err(_) => Err((None, "timed out".to_string())),
        Ok(Err(e)) if e.is_timeout() => Err((None, "timed out".to_string())),
        Ok(Err(e)) => Err((None, super::short(e))),
        Ok(Ok(resp)) if resp.status().is_success() => Ok(resp.status().as_u16()),
        Ok(Ok(resp)) => Err((
            Some(resp.status().as_u16()),
            format!("answered {}", resp.status().as_u16()),
        )),
    };
    let took = started.elapsed();
    notifier.endpoints.record(&url, took);
    let ms = took.as_millis() as u64;
    let (outcome, log) = match result {
        Ok(status) => {
            metrics::counter!(m::NOTIFY_DELIVERED).increment(n as u64);
            tracing::info!(
                target: "graphsec::notify",
                tenant, subscription = id, kind = %kind, url = %super::redacted(&url),
                attempt, notifications = n, status, ms, outcome = "delivered",
                "delivery attempt"
            );
            (
                Outcome::Delivered(seqs),
                log_entry(
                    &kind,
                    attempt,
                    n,
                    Some(i64::from(status)),
                    "delivered",
                    None,
                ),
            )
        }
        Err((status, why)) => {
            metrics::counter!(m::NOTIFY_RETRIED).increment(n as u64);
            let delay = backoff(args.notify_retry_base_ms, pending.attempts);
            tracing::info!(
                target: "graphsec::notify",
                tenant, subscription = id, kind = %kind, url = %super::redacted(&url),
                attempt, notifications = n, status, ms, outcome = "retry",
                retry_in_ms = delay.as_millis() as u64, error = %why,
                "delivery attempt"
            );
            (
                Outcome::Retry {
                    next_attempt: now_ticks()
                        + i64::try_from(delay.as_micros()).unwrap_or(i64::MAX / 20) * 10,
                    attempts: attempt,
                },
                log_entry(&kind, attempt, n, status.map(i64::from), "retry", Some(why)),
            )
        }
    };
    if let Err(e) = store.notify().finish(tenant, id, outcome, Some(log)).await {
        // The lease runs out and the notifications are delivered again: at least once.
        tracing::warn!(error = %e, subscription = id, "could not record a delivery attempt");
    }
}

/// `base * 2^(failures)`, at most [`MAX_BACKOFF`].
fn backoff(base_ms: u64, failures: i64) -> Duration {
    let shift = u32::try_from(failures.clamp(0, 20)).unwrap_or(20);
    Duration::from_millis(base_ms.saturating_mul(1u64 << shift)).min(MAX_BACKOFF)
}

fn log_entry(
    kind: &str,
    attempt: i64,
    notifications: i64,
    status: Option<i64>,
    outcome: &str,
    error: Option<String>,
) -> DeliveryLog {
    DeliveryLog {
        at: now_ticks(),
        kind: kind.into(),
        attempt,
        notifications,
        status,
        outcome: outcome.into(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(100, 0), Duration::from_millis(100));
        assert_eq!(backoff(100, 3), Duration::from_millis(800));
        assert_eq!(backoff(10_000, 40), MAX_BACKOFF);
    }

    #[test]
    fn notification_ids_are_stable_per_row() {
        assert_eq!(notification_id("s", 7), notification_id("s", 7));
        assert_ne!(notification_id("s", 7), notification_id("s", 8));
        assert_ne!(notification_id("s", 7), notification_id("t", 7));
    }
}
