//! Development mode: a local ES256 signing key and the tokens it issues.
//!
//! The key is generated on first start into `<data dir>/dev-jwt-signing-key.pem` (PKCS#8, file
//! mode 0600) and reused afterwards, so tokens printed by `graphsec token` stay valid across
//! restarts. Without a data dir the key lives in memory only and dies with the process.
//!
//! **Decision (issuer):** dev tokens are issued by `https://dev.graphsec.invalid/{tenantid}/v2.0`.
//! It has the shape of an Entra v2 issuer, so the same `{tenantid}` rule is exercised, but it can
//! never be mistaken for a Microsoft token: `.invalid` is reserved (RFC 2606) and no
//! production issuer configuration will ever list it. The audience is Graph's,
//! `https://graph.microsoft.com`, so the official SDKs' token plumbing is unchanged.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::rand::SecureRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;
use serde_json::json;

use super::keys::VerifyingKey;
use super::{GRAPH_AUDIENCE, valid_tenant};

/// The issuer template of development tokens (see the module doc for why this one).
pub const DEV_ISSUER_TEMPLATE: &str = "https://dev.graphsec.invalid/{tenantid}/v2.0";
/// File name of the development signing key inside the data dir.
pub const DEV_KEY_FILE: &str = "dev-jwt-signing-key.pem";
/// Longest lifetime a development token may have (ten years; `u64` input is clamped to it).
const MAX_TTL_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// The development signing key.
pub(crate) struct DevKey {
    pkcs8: Vec<u8>,
    /// RFC 7638 thumbprint: stable for a given key, so tokens name it unambiguously.
    kid: String,
    x: String,
    y: String,
}

impl DevKey {
    pub(crate) fn generate() -> Result<Self, String> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "cannot generate the development signing key".to_owned())?;
        Self::from_pkcs8(doc.as_ref().to_vec())
    }

    fn from_pkcs8(pkcs8: Vec<u8>) -> Result<Self, String> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
            .map_err(|_| "the development signing key is not a P-256 PKCS#8 key".to_owned())?;
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = pair.public_key().as_ref();
        if point.len() != 65 {
            return Err("unexpected P-256 public key encoding".into());
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
        // RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        let kid = URL_SAFE_NO_PAD.encode(digest.as_ref());
        Ok(DevKey { pkcs8, kid, x, y })
    }

    /// Loads `<dir>/dev-jwt-signing-key.pem`, creating it (mode 0600) on first use.
    pub(crate) fn load_or_create(dir: &Path) -> Result<Self, String> {
        let path = dir.join(DEV_KEY_FILE);
        if path.exists() {
            return Self::load(&path);
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create data dir {}: {e}", dir.display()))?;
        let key = Self::generate()?;
        let pem = to_pem("PRIVATE KEY", &key.pkcs8);
        // Write to a private temp file, then hard-link it into place: the link fails if another
        // process created the key meanwhile, so two servers (or a server and `graphsec token`)
        // starting together never overwrite each other's key; the loser reads the winner's.
        let tmp = dir.join(format!(".{DEV_KEY_FILE}.{}.tmp", std::process::id()));
        write_private(&tmp, pem.as_bytes())?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                tracing::info!("generated development signing key {}", path.display());
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(&path),
            Err(e) => Err(format!("cannot create {}: {e}", path.display())),
        }
    }

    fn load(path: &Path) -> Result<Self, String> {
        warn_if_readable_by_others(path);
        let der = PrivatePkcs8KeyDer::from_pem_file(path).map_err(|e| {
            format!(
                "cannot read development signing key {}: {e}",
                path.display()
            )
        })?;
        Self::from_pkcs8(der.secret_pkcs8_der().to_vec())
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    pub(crate) fn verifying_key(&self) -> Result<Arc<VerifyingKey>, String> {
        let key = DecodingKey::from_ec_components(&self.x, &self.y).map_err(|e| e.to_string())?;
        Ok(Arc::new(VerifyingKey {
            kid: Some(self.kid.clone()),
            alg: Algorithm::ES256,
            key,
        }))
    }

    /// The public key as a JWK Set, e.g. to hand to another graphsec in `--auth jwks` mode.
    pub(crate) fn public_jwks(&self) -> serde_json::Value {
        json!({"keys": [{
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256",
            "kid": self.kid, "x": self.x, "y": self.y,
        }]})
    }

    pub(crate) fn issue(
        &self,
        tenant: &str,
        scopes: &[String],
        roles: &[String],
        ttl_seconds: u64,
        app_id: Option<&str>,
    ) -> Result<String, String> {
        if !valid_tenant(tenant) {
            return Err(format!(
                "invalid tenant {tenant:?}: use a tenant id (GUID) or 1-128 letters, digits, '.', '_', '-'"
            ));
        }
        if ttl_seconds == 0 {
            return Err("ttl must be at least 1 second".into());
        }
        for s in scopes.iter().chain(roles) {
            if s.is_empty() || s.chars().any(char::is_whitespace) {
                return Err(format!("invalid permission name {s:?}"));
            }
        }
        let ttl = i64::try_from(ttl_seconds.min(MAX_TTL_SECONDS)).unwrap_or(i64::MAX);
        let now = super::unix_now();
        let mut uti = [0u8; 16];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut uti)
            .map_err(|_| "random number generator failure".to_owned())?;
        let mut claims = json!({
            "aud": GRAPH_AUDIENCE,
            "iss": DEV_ISSUER_TEMPLATE.replace("{tenantid}", tenant),
            "iat": now,
            "nbf": now,
            "exp": now.saturating_add(ttl),
            "tid": tenant,
            "sub": app_id.unwrap_or("graphsec-dev"),
            "uti": URL_SAFE_NO_PAD.encode(uti),
            "ver": "2.0",
        });
        if let Some(app) = app_id {
            claims["azp"] = json!(app);
        }
        if !scopes.is_empty() {
            claims["scp"] = json!(scopes.join(" "));
        }
        if !roles.is_empty() {
            claims["roles"] = json!(roles);
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&self.pkcs8))
            .map_err(|e| format!("cannot sign the token: {e}"))
    }
}

/// Issues a development token signed with the key in `data_dir` (created if missing, so this
/// works before the server first ran). This is what `graphsec token` prints.
///
/// A token with both `scopes` and `roles` is a delegated token (its `scp` decides), as with
/// Entra; pass only `roles` for an application token.
pub fn issue_dev_token(
    data_dir: &Path,
    tenant: &str,
    scopes: &[String],
    roles: &[String],
    ttl_seconds: u64,
    app_id: Option<&str>,
) -> Result<String, String> {
    DevKey::load_or_create(data_dir)?.issue(tenant, scopes, roles, ttl_seconds, app_id)
}

/// Path of the development key in a data dir (for log lines).
pub fn dev_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DEV_KEY_FILE)
}

pub(crate) fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Creates `path` (which must not exist) readable and writable by the owner only, then writes
/// `data`. The mode is set at creation, so the secret is never briefly world-readable.
pub(crate) fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub(crate) fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                "{} is readable by other users; restrict it with chmod 600",
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
