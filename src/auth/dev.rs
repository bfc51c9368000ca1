//! Development mode: a local ES256 signing key and the tokens it issues.
//!
//! The key is generated on first start into `<data dir>/dev-jwt-signing-key.pem` (PKCS#8, file
//! mode 0600) and reused afterwards, so tokens printed by `graphsec token` stay valid across
//! restarts. `--dev-key FILE` names the file instead (created on first use by `serve`), so
//! servers with different data directories, or `--in-memory` ones, can share one key (a test
//! suite's key, kept between runs). Without either the key lives in memory only and dies with
//! the process. `graphsec token` never creates a key: a token signed by a key no server uses
//! would only ever get 401s.
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
#[derive(Clone)]
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
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create data dir {}: {e}", dir.display()))?;
        Self::load_or_create_file(&dir.join(DEV_KEY_FILE))
    }

    /// Loads the key file at `path`, creating it (mode 0600) on first use (`--dev-key`).
    pub(crate) fn load_or_create_file(path: &Path) -> Result<Self, String> {
        if path.exists() {
            return Self::load(path);
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| DEV_KEY_FILE.to_owned());
        let key = Self::generate()?;
        let pem = to_pem("PRIVATE KEY", &key.pkcs8);
        // Write to a private temp file, then hard-link it into place: the link fails if another
        // process created the key meanwhile, so two servers starting together never overwrite
        // each other's key; the loser reads the winner's.
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        write_private(&tmp, pem.as_bytes())?;
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                tracing::info!("generated development signing key {}", path.display());
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(format!("cannot create {}: {e}", path.display())),
        }
    }

    /// Loads an existing key file; a missing one is an error that says where keys are looked
    /// for (`graphsec token` never creates keys).
    pub(crate) fn load_existing(path: &Path) -> Result<Self, String> {
        if !path.exists() {
            return Err(format!(
                "no development signing key at {}. graphsec looks for it in the server's data \
                 directory (<--data-dir>/{DEV_KEY_FILE}, written when `graphsec serve` first \
                 starts there) or in the file given to `graphsec serve --dev-key FILE`. Start the \
                 server first, pass the same --data-dir or --dev-key it uses, or ask the running \
                 server with `graphsec token --url http://HOST:PORT`",
                path.display()
            ));
        }
        Self::load(path)
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
        self.issue_spec(&TokenSpec {
            tenant: tenant.to_owned(),
            scopes: scopes.to_vec(),
            roles: roles.to_vec(),
            ttl_seconds,
            app_id: app_id.map(str::to_owned),
            issuer: None,
            app_only: false,
        })
    }

    pub(crate) fn issue_spec(&self, spec: &TokenSpec) -> Result<String, String> {
        let tenant = spec.tenant.as_str();
        if !valid_tenant(tenant) {
            return Err(format!(
                "invalid tenant {tenant:?}: use a tenant id (GUID) or 1-128 letters, digits, '.', '_', '-'"
            ));
        }
        if spec.ttl_seconds == 0 {
            return Err("ttl must be at least 1 second".into());
        }
        for s in spec.scopes.iter().chain(&spec.roles) {
            if s.is_empty() || s.chars().any(char::is_whitespace) {
                return Err(format!("invalid permission name {s:?}"));
            }
        }
        let ttl = i64::try_from(spec.ttl_seconds.min(MAX_TTL_SECONDS)).unwrap_or(i64::MAX);
        let now = super::unix_now();
        let mut uti = [0u8; 16];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut uti)
            .map_err(|_| "random number generator failure".to_owned())?;
        let issuer = match &spec.issuer {
            Some(iss) => iss.clone(),
            None => DEV_ISSUER_TEMPLATE.replace("{tenantid}", tenant),
        };
        let app_id = spec.app_id.as_deref();
        let mut claims = json!({
            "aud": GRAPH_AUDIENCE,
            "iss": issuer,
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
        if spec.app_only {
            // What Entra puts in an app-only v2.0 token: the service principal's object id as
            // `oid` and `sub` (a stable GUID per tenant and app here), `idtyp` and how the
            // client authenticated (`azpacr` 1: a client secret).
            let object_id = service_principal_id(tenant, app_id.unwrap_or_default());
            claims["oid"] = json!(object_id);
            claims["sub"] = json!(object_id);
            claims["idtyp"] = json!("app");
            claims["azpacr"] = json!("1");
        }
        if !spec.scopes.is_empty() {
            claims["scp"] = json!(spec.scopes.join(" "));
        }
        if !spec.roles.is_empty() {
            claims["roles"] = json!(spec.roles);
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&self.pkcs8))
            .map_err(|e| format!("cannot sign the token: {e}"))
    }

    /// The key id (RFC 7638 thumbprint) tokens name in their header.
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }
}

/// What a development token says (see [`crate::auth::DevSigner`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSpec {
    /// The `tid`.
    pub tenant: String,
    /// Delegated permissions (`scp`); a token with scopes is a delegated token.
    pub scopes: Vec<String>,
    /// Application permissions (`roles`).
    pub roles: Vec<String>,
    /// Lifetime (clamped to ten years; 0 is refused).
    pub ttl_seconds: u64,
    /// The client application (`azp`).
    pub app_id: Option<String>,
    /// The `iss`; `None` is [`DEV_ISSUER_TEMPLATE`] for the tenant.
    pub issuer: Option<String>,
    /// An app-only token as Entra issues to the client credentials grant (`oid`, `idtyp`,
    /// `azpacr`).
    pub app_only: bool,
}

/// A stable GUID for an application's service principal in a tenant (Entra gives every app a
/// service principal object per tenant; tokens carry its id as `oid`).
fn service_principal_id(tenant: &str, app_id: &str) -> String {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("graphsec service principal\0{tenant}\0{app_id}").as_bytes(),
    );
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    uuid::Builder::from_sha1_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Issues a development token signed with the key in `data_dir`. This is what `graphsec token
/// --data-dir` prints. The key must exist (a server started on `data_dir` writes it): a token
/// signed by a key no server uses would only get 401s, so none is created here.
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
    DevKey::load_existing(&dev_key_path(data_dir))?.issue(
        tenant,
        scopes,
        roles,
        ttl_seconds,
        app_id,
    )
}

/// Issues a development token signed with the key file `path` (`graphsec token --dev-key`),
/// which must exist.
pub fn issue_dev_token_with_key(path: &Path, spec: &TokenSpec) -> Result<String, String> {
    DevKey::load_existing(path)?.issue_spec(spec)
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
