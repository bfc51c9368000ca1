//! Token verification keys: JWK parsing, the `--jwks-file` / `--jwks-url` sources, and the
//! refresh-on-unknown-`kid` logic.
//!
//! Security rules that live here:
//! - the signing algorithm is a property of the KEY (from the JWK's `kty`/`crv`/`alg`), never of
//!   the token header; only RS256 (RSA, at least 2048 bits) and ES256 (P-256) keys are loaded;
//! - symmetric (`oct`) keys are never loaded, so an HS256 token can never be checked against a
//!   public key used as an HMAC secret (the classic key-confusion attack);
//! - a miss on `kid` triggers at most one JWKS refresh per `min_refresh` interval, so a flood
//!   of tokens naming random `kid`s cannot turn the server into a JWKS-fetching amplifier.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

/// Largest JWKS document we accept (Entra's is a few KiB).
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Timeout for one JWKS fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// One verification key, with the algorithm it is pinned to.
pub(crate) struct VerifyingKey {
    pub(crate) kid: Option<String>,
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
}

/// A JWK as found in a JWK Set; only the members we use. Unknown members (`x5c`, `x5t`,
/// `issuer`, ... which Entra sends) are ignored.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

fn b64_len(s: &str) -> Option<usize> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
        .map(|v| {
            // Leading zero bytes do not count towards an RSA modulus size.
            v.iter().skip_while(|b| **b == 0).count()
        })
}

impl RawJwk {
    /// The key, or why it was skipped.
    fn into_key(self) -> Result<VerifyingKey, String> {
        if let Some(u) = &self.use_
            && u != "sig"
        {
            return Err(format!("use {u:?} is not \"sig\""));
        }
        let (alg, key) = match self.kty.as_str() {
            "RSA" => {
                if !matches!(self.alg.as_deref(), None | Some("RS256")) {
                    return Err(format!("unsupported alg {:?}", self.alg));
                }
                let (Some(n), Some(e)) = (&self.n, &self.e) else {
                    return Err("RSA key without n/e".into());
                };
                // 2048 bits minimum, 8192 maximum: what aws-lc verifies for RS256 anyway, but
                // checking here turns a bad key into a load-time message, not a runtime 401.
                match (b64_len(n), b64_len(e)) {
                    (Some(nl), Some(el)) if (256..=1024).contains(&nl) && (1..=8).contains(&el) => {
                    }
                    _ => return Err("RSA key with an invalid or too small modulus".into()),
                }
                let key = DecodingKey::from_rsa_components(n, e).map_err(|e| e.to_string())?;
                (Algorithm::RS256, key)
            }
            "EC" => {
                if !matches!(self.alg.as_deref(), None | Some("ES256")) {
                    return Err(format!("unsupported alg {:?}", self.alg));
                }
                if self.crv.as_deref() != Some("P-256") {
                    return Err(format!("unsupported curve {:?}", self.crv));
                }
                let (Some(x), Some(y)) = (&self.x, &self.y) else {
                    return Err("EC key without x/y".into());
                };
                let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).ok().filter(|v| v.len() == 32);
                if decode(x).is_none() || decode(y).is_none() {
                    return Err("EC key with invalid x/y".into());
                }
                let key = DecodingKey::from_ec_components(x, y).map_err(|e| e.to_string())?;
                (Algorithm::ES256, key)
            }
            "oct" => return Err("symmetric keys are never accepted".into()),
            other => return Err(format!("unsupported kty {other:?}")),
        };
        Ok(VerifyingKey {
            kid: self.kid,
            alg,
            key,
        })
    }
}

/// Parses a JWK Set (`{"keys": [...]}`) or a single JWK. Unusable keys are skipped with a
/// warning (Entra's set may one day hold key types we do not support); a document with no usable
/// key at all is an error.
pub(crate) fn parse_jwks(text: &[u8], origin: &str) -> Result<Vec<Arc<VerifyingKey>>, String> {
    let doc: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| format!("{origin}: not JSON: {e}"))?;
    let raw_keys = match doc.get("keys") {
        Some(serde_json::Value::Array(keys)) => keys.clone(),
        Some(_) => return Err(format!("{origin}: \"keys\" is not an array")),
        None if doc.get("kty").is_some() => vec![doc],
        None => return Err(format!("{origin}: not a JWK Set (no \"keys\")")),
    };
    let mut out = Vec::new();
    for (i, raw) in raw_keys.into_iter().enumerate() {
        let parsed = serde_json::from_value::<RawJwk>(raw)
            .map_err(|e| e.to_string())
            .and_then(RawJwk::into_key);
        match parsed {
            Ok(k) => out.push(Arc::new(k)),
            Err(why) => tracing::warn!("{origin}: skipping key #{i}: {why}"),
        }
    }
    if out.is_empty() {
        return Err(format!("{origin}: no usable RS256 or ES256 signing key"));
    }
    Ok(out)
}

/// Why a key lookup failed (mapped to 401 messages by the caller).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LookupError {
    UnknownKid,
    NoKid,
}

#[derive(Default)]
struct Loaded {
    file: Vec<Arc<VerifyingKey>>,
    url: Vec<Arc<VerifyingKey>>,
    /// When every source last loaded successfully (kept here, not under the refresh mutex, so
    /// the per-request staleness check never waits behind a fetch in flight).
    fresh_at: Option<Instant>,
}

struct RefreshState {
    last_attempt: Option<Instant>,
    last_failed: bool,
    fetches: u64,
}

/// After a failed refresh the floor shrinks to this, so a network blip at startup does not
/// lock every token out for the whole `min_refresh` interval.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

/// All keys a token may be verified with.
pub(crate) struct KeyStore {
    /// Keys that never change (the development key).
    fixed: Vec<Arc<VerifyingKey>>,
    jwks_file: Option<PathBuf>,
    jwks_url: Option<String>,
    client: Option<reqwest::Client>,
    loaded: RwLock<Arc<Loaded>>,
    refresh: tokio::sync::Mutex<RefreshState>,
    min_refresh: Duration,
    max_age: Duration,
}

impl KeyStore {
    pub(crate) fn fixed(keys: Vec<Arc<VerifyingKey>>) -> Self {
        Self::build(keys, None, None, None, Duration::ZERO, Duration::MAX)
    }

    /// A store fed by a JWKS file and/or URL. The file is read now, so that a broken file stops
    /// the server at start; the URL is fetched by [`KeyStore::warm_up`] or on first use.
    pub(crate) fn jwks(
        file: Option<PathBuf>,
        url: Option<String>,
        min_refresh: Duration,
        max_age: Duration,
    ) -> Result<Self, String> {
        if file.is_none() && url.is_none() {
            return Err("--auth jwks needs --jwks-file and/or --jwks-url".into());
        }
        let client = match &url {
            Some(u) => {
                if !(u.starts_with("https://") || u.starts_with("http://")) {
                    return Err(format!("--jwks-url must be an http(s) URL, got {u:?}"));
                }
                Some(http_client()?)
            }
            None => None,
        };
        let store = Self::build(Vec::new(), file, url, client, min_refresh, max_age);
        if let Some(path) = &store.jwks_file {
            let keys = load_file(path)?;
            let file_only = store.jwks_url.is_none();
            store.replace(|l| {
                l.file = keys;
                if file_only {
                    l.fresh_at = Some(Instant::now());
                }
            });
        }
        Ok(store)
    }

    fn build(
        fixed: Vec<Arc<VerifyingKey>>,
        jwks_file: Option<PathBuf>,
        jwks_url: Option<String>,
        client: Option<reqwest::Client>,
        min_refresh: Duration,
        max_age: Duration,
    ) -> Self {
        KeyStore {
            fixed,
            jwks_file,
            jwks_url,
            client,
            loaded: RwLock::new(Arc::new(Loaded::default())),
            refresh: tokio::sync::Mutex::new(RefreshState {
                last_attempt: None,
                last_failed: false,
                fetches: 0,
            }),
            min_refresh,
            max_age,
        }
    }

    fn snapshot(&self) -> Arc<Loaded> {
        self.loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn replace(&self, f: impl FnOnce(&mut Loaded)) {
        let mut guard = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        let mut next = Loaded {
            file: guard.file.clone(),
            url: guard.url.clone(),
            fresh_at: guard.fresh_at,
        };
        f(&mut next);
        *guard = Arc::new(next);
    }

    fn refreshable(&self) -> bool {
        self.jwks_file.is_some() || self.jwks_url.is_some()
    }

    fn find_now(&self, kid: Option<&str>) -> Result<Arc<VerifyingKey>, LookupError> {
        let loaded = self.snapshot();
        let all = || self.fixed.iter().chain(&loaded.file).chain(&loaded.url);
        match kid {
            Some(kid) => all()
                .find(|k| k.kid.as_deref() == Some(kid))
                .cloned()
                .ok_or(LookupError::UnknownKid),
            // Without a `kid`, only an unambiguous single key may be used.
            None => {
                let mut it = all();
                match (it.next(), it.next()) {
                    (Some(k), None) => Ok(k.clone()),
                    _ => Err(LookupError::NoKid),
                }
            }
        }
    }

    /// The key a token names. An unknown `kid` (or keys older than `max_age`) triggers a
    /// refresh, at most once per `min_refresh`.
    pub(crate) async fn find(&self, kid: Option<&str>) -> Result<Arc<VerifyingKey>, LookupError> {
        let first = self.find_now(kid);
        if !self.refreshable() {
            return first;
        }
        let stale = self
            .snapshot()
            .fresh_at
            .is_none_or(|t| t.elapsed() >= self.max_age);
        if first.is_ok() && !stale {
            return first;
        }
        self.refresh(false).await;
        match self.find_now(kid) {
            // A failed refresh must not lock out tokens signed with keys we already had.
            Err(_) if first.is_ok() => first,
            other => other,
        }
    }

    /// Fetches the JWKS URL (and re-reads the file) now; for startup, so a wrong URL shows up in
    /// the log before the first request. Returns an error if no key is available afterwards.
    pub(crate) async fn warm_up(&self) -> Result<usize, String> {
        let err = self.refresh(true).await;
        let loaded = self.snapshot();
        let n = self.fixed.len() + loaded.file.len() + loaded.url.len();
        match err {
            Some(e) if n == 0 => Err(e),
            _ => Ok(n),
        }
    }

    /// Reloads the sources unless one was tried within `min_refresh` (`force` skips that check).
    /// Returns the last error seen, if any. Serialised by the mutex: a storm of misses waits for
    /// the one refresh in flight, then finds the floor and returns at once.
    async fn refresh(&self, force: bool) -> Option<String> {
        let mut state = self.refresh.lock().await;
        let floor = if state.last_failed {
            self.min_refresh.min(RETRY_AFTER_FAILURE)
        } else {
            self.min_refresh
        };
        if !force
            && let Some(t) = state.last_attempt
            && t.elapsed() < floor
        {
            return None;
        }
        state.last_attempt = Some(Instant::now());
        let mut last_err = None;
        let mut ok = true;
        if let Some(path) = &self.jwks_file {
            match load_file(path) {
                Ok(keys) => self.replace(|l| l.file = keys),
                Err(e) => {
                    tracing::warn!("JWKS refresh: {e}; keeping the previous keys");
                    ok = false;
                    last_err = Some(e);
                }
            }
        }
        if let (Some(url), Some(client)) = (&self.jwks_url, &self.client) {
            state.fetches += 1;
            match fetch(client, url).await {
                Ok(keys) => {
                    tracing::info!("JWKS: loaded {} key(s) from {url}", keys.len());
                    self.replace(|l| l.url = keys);
                }
                Err(e) => {
                    tracing::warn!("JWKS refresh: {e}; keeping the previous keys");
                    ok = false;
                    last_err = Some(e);
                }
            }
        }
        state.last_failed = !ok;
        if ok {
            self.replace(|l| l.fresh_at = Some(Instant::now()));
        }
        last_err
    }

    #[cfg(test)]
    pub(crate) async fn fetch_count(&self) -> u64 {
        self.refresh.lock().await.fetches
    }
}

fn load_file(path: &std::path::Path) -> Result<Vec<Arc<VerifyingKey>>, String> {
    let text = std::fs::read(path)
        .map_err(|e| format!("cannot read JWKS file {}: {e}", path.display()))?;
    parse_jwks(&text, &format!("JWKS file {}", path.display()))
}

/// The client for `--jwks-url`, on [`crate::tls::client_config`] (system trust store, so
/// private CAs and TLS-inspecting proxies can be configured).
fn http_client() -> Result<reqwest::Client, String> {
    let tls = crate::tls::client_config()?;
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(FETCH_TIMEOUT)
        .user_agent(concat!("graphsec/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client setup: {e}"))
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<Arc<VerifyingKey>>, String> {
    let mut resp = client
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| format!("cannot fetch JWKS {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("cannot fetch JWKS {url}: HTTP {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading JWKS {url}: {e}"))?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!("JWKS {url} is larger than {MAX_JWKS_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    parse_jwks(&body, &format!("JWKS {url}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jwk_rules() {
        let xy = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let n = URL_SAFE_NO_PAD.encode([0xC5u8; 256]);
        let small_n = URL_SAFE_NO_PAD.encode([0xC5u8; 128]);
        let ec = |kid: &str| json!({"kty": "EC", "crv": "P-256", "x": xy, "y": xy, "kid": kid});
        let mut enc = ec("enc");
        enc["use"] = json!("enc");
        let mut es384 = ec("es384");
        es384["alg"] = json!("ES384");
        let doc = json!({"keys": [
            ec("ok-ec"),
            enc,
            es384,
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "small", "n": small_n, "e": "AQAB"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": n, "e": "AQAB"},
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AA"},
            {"kty": "RSA", "kid": "r", "n": n, "e": "AQAB", "x5c": ["..."]},
            {"kid": "no-kty"},
        ]})
        .to_string();
        let keys = parse_jwks(doc.as_bytes(), "test").unwrap();
        let kids: Vec<_> = keys
            .iter()
            .map(|k| (k.kid.clone().unwrap(), k.alg))
            .collect();
        assert_eq!(
            kids,
            vec![
                ("ok-ec".to_string(), Algorithm::ES256),
                ("r".to_string(), Algorithm::RS256)
            ]
        );
        assert!(parse_jwks(br#"{"keys":[{"kty":"oct","k":"AA"}]}"#, "t").is_err());
        assert!(parse_jwks(b"[]", "t").is_err());
        assert!(parse_jwks(b"\xff", "t").is_err());
        // A single JWK is accepted too.
        assert_eq!(
            parse_jwks(ec("one").to_string().as_bytes(), "t")
                .unwrap()
                .len(),
            1
        );
    }
}
