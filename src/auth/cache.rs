//! A bounded cache of verified tokens, so that a client sending the same bearer token on every
//! request pays for one signature check, not one per request.
//!
//! Keyed by the SHA-256 of the token (the token itself is a credential and is never kept), valid
//! until the token's own `exp`. Only successful verifications are cached: a rejected token is
//! re-examined each time, which keeps the error messages exact and the cache free of junk that an
//! attacker could use to flush it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::digest;

use super::Principal;

/// The cache key: SHA-256 of the raw token text.
pub(crate) type TokenHash = [u8; 32];

pub(crate) fn hash_token(token: &str) -> TokenHash {
    let d = digest::digest(&digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

struct Entry {
    principal: Principal,
    expires_at: i64,
}

pub(crate) struct TokenCache {
    capacity: usize,
    entries: Mutex<HashMap<TokenHash, Entry>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        TokenCache {
            capacity,
            entries: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cached principal for a token hash, if present and not expired at `now`.
    pub(crate) fn get(&self, key: &TokenHash, now: i64) -> Option<Principal> {
        if self.capacity == 0 {
            return None;
        }
        // A poisoned lock only means another thread panicked mid-update of a plain map; the map
        // is still usable, so carry on rather than failing every later request.
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let found = match map.get(key) {
            Some(e) if now < e.expires_at => Some(e.principal.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        };
        drop(map);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub(crate) fn insert(&self, key: TokenHash, principal: Principal, expires_at: i64, now: i64) {
        if self.capacity == 0 || expires_at <= now {
            return;
        }
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.capacity && !map.contains_key(&key) {
            map.retain(|_, e| now < e.expires_at);
            if map.len() >= self.capacity {
                // Still full of live tokens: drop an eighth. HashMap's iteration order is
                // randomised per process, so this is a cheap random eviction; a flood of distinct
                // tokens cannot pin a chosen entry.
                let drop_n = (self.capacity / 8).max(1);
                let victims: Vec<TokenHash> = map.keys().take(drop_n).copied().collect();
                for v in victims {
                    map.remove(&v);
                }
            }
        }
        map.insert(
            key,
            Entry {
                principal,
                expires_at,
            },
        );
    }

    /// (hits, misses) since start; for tests and metrics.
    pub(crate) fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::PrincipalKind;

    fn principal(t: &str) -> Principal {
        Principal {
            tenant: t.to_owned(),
            app: None,
            subject: None,
            kind: PrincipalKind::Delegated {
                scopes: vec!["x".into()],
            },
            expires_at: None,
        }
    }

    #[test]
    fn expiry_and_bounds() {
        let c = TokenCache::new(16);
        let k = hash_token("a.b.c");
        c.insert(k, principal("t1"), 100, 50);
        assert_eq!(c.get(&k, 99).map(|p| p.tenant), Some("t1".into()));
        assert!(c.get(&k, 100).is_none(), "valid only until exp");
        assert_eq!(c.len(), 0, "expired entry removed on lookup");
        // Already-expired tokens are not stored.
        c.insert(k, principal("t1"), 10, 50);
        assert_eq!(c.len(), 0);
        // Never grows past capacity.
        for i in 0..100 {
            c.insert(hash_token(&format!("tok{i}")), principal("t"), 1000, 0);
            assert!(c.len() <= 16);
        }
        assert_eq!(c.stats(), (1, 1));
        // Capacity 0 disables caching.
        let off = TokenCache::new(0);
        off.insert(k, principal("t"), 1000, 0);
        assert!(off.get(&k, 1).is_none());
    }
}
