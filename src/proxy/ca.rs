//! The development certificate authority of `--https-proxy`: an rcgen CA key and certificate,
//! and leaf certificates for the intercepted hosts signed by it on demand (one per host, cached
//! for the life of the process).
//!
//! # Where it lives
//!
//! - `--dev-ca DIR`, else the data directory: `DIR/graphsec-dev-ca.pem` (the certificate, the
//!   file applications trust) and `DIR/graphsec-dev-ca-key.pem` (key and certificate, mode
//!   0600), created on first start and reused afterwards, so a test suite trusts one stable
//!   file across restarts.
//! - `--in-memory` without `--dev-ca`: a CA of this process only; its certificate is written to
//!   a fresh file in the OS temp directory (named at startup, removed at shutdown), the key
//!   never touches the disk.
//!
//! # Why the CA is name-constrained
//!
//! Applications are told to trust this CA, and its key sits in a file. Its certificate carries
//! an RFC 5280 §4.2.1.10 name constraint permitting only [`super::INTERCEPTED_HOSTS`], so a
//! client that trusts it (OpenSSL, rustls, Node.js and Python all enforce name constraints)
//! accepts it for those hosts and nothing else: a stolen key cannot impersonate any other site.
//! The key file's first line names the hosts the certificate is constrained to; a CA made for
//! another list (an older graphsec) is replaced by a new one at startup.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, NameConstraints,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::auth::{pem_encode, warn_file_mode, write_private_file};

/// The CA certificate applications trust (in `--dev-ca DIR` or the data directory).
pub const CA_CERT_FILE: &str = "graphsec-dev-ca.pem";
/// The CA's private key and certificate (mode 0600).
pub const CA_KEY_FILE: &str = "graphsec-dev-ca-key.pem";
/// The CA's subject. Leaf certificates name it as their issuer, so it must be the same string
/// the stored CA certificate was made with (it is rebuilt from here, not parsed back).
const CA_COMMON_NAME: &str = "graphsec development CA (Microsoft identity and Graph hosts)";
const CA_ORGANIZATION: &str = "graphsec (development mode)";
/// CA lifetime: long enough that a kept data directory never sees it expire in practice.
const CA_VALID_DAYS: i64 = 10 * 365;
/// Leaf lifetime: within the 398 days some clients (Apple's, Chrome's) accept for a TLS server
/// certificate; leaves are made anew by every process, so they never get old.
const LEAF_VALID_DAYS: i64 = 397;
/// Certificates start a day in the past, for clients whose clock runs a little behind.
const BACKDATE_DAYS: i64 = 1;

/// The development CA and its cache of leaf TLS configurations.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    /// The file applications trust.
    cert_path: PathBuf,
    /// Set when `cert_path` is this process's temporary file (removed by [`DevCa::cleanup`]).
    temporary: bool,
    /// One server configuration per intercepted host, made on first use.
    leaves: Mutex<std::collections::HashMap<String, Arc<ServerConfig>>>,
}

impl DevCa {
    /// Loads the CA kept in `dir` (creating it on first use), or, without a directory, makes a
    /// CA for this process and writes its certificate to a new temporary file.
    ///
    /// Errors: the directory or files cannot be created or read, or the key file is not a key
    /// and certificate pair graphsec wrote.
    pub fn open(dir: Option<&Path>) -> Result<DevCa, String> {
        match dir {
            Some(dir) => {
                let key = load_or_create(dir)?;
                // Absolute, for the startup line: applications run from directories of their own.
                let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
                Ok(DevCa::new(key, dir.join(CA_CERT_FILE), false))
            }
            None => {
                let (key, cert_pem) = generate()?;
                let path = write_temporary(&cert_pem)?;
                Ok(DevCa::new(key, path, true))
            }
        }
    }

    fn new(key: KeyPair, cert_path: PathBuf, temporary: bool) -> DevCa {
        DevCa {
            issuer: Issuer::new(ca_params(), key),
            cert_path,
            temporary,
            leaves: Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The PEM file applications must trust.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The TLS server configuration for `host` (lowercase, one of the intercepted hosts): a
    /// leaf certificate for it signed by this CA, HTTP/2 and HTTP/1.1 by ALPN. Made once per
    /// host and process.
    pub fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, String> {
        if let Ok(cache) = self.leaves.lock()
            && let Some(config) = cache.get(host)
        {
            return Ok(config.clone());
        }
        let (chain, key) = self.leaf(host)?;
        let config = crate::tls::build(chain, key)?;
        if let Ok(mut cache) = self.leaves.lock() {
            // Two first requests may race; either configuration is as good as the other.
            cache
                .entry(host.to_owned())
                .or_insert_with(|| config.clone());
        }
        Ok(config)
    }

    fn leaf(
        &self,
        host: &str,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        let mut params = CertificateParams::new(vec![host.to_owned()])
            .map_err(|e| format!("leaf certificate for {host}: {e}"))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, host);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(BACKDATE_DAYS);
        params.not_after = now + time::Duration::days(LEAF_VALID_DAYS);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        // OpenSSL's strict verification (Python 3.13's default) wants the authority key id.
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(|e| format!("leaf key for {host}: {e}"))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| format!("leaf certificate for {host}: {e}"))?;
        Ok((
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        ))
    }

    /// Removes this process's temporary certificate file, if it has one (shutdown).
    pub fn cleanup(&self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.cert_path);
        }
    }
}

/// The first line of the key file: the hosts its certificate is constrained to (module doc).
fn key_file_header() -> String {
    format!(
        "graphsec development CA, name-constrained to: {}\n",
        super::INTERCEPTED_HOSTS.join(" ")
    )
}

/// The CA's certificate parameters, the same for every CA graphsec makes except for the dates
/// (which [`generate`] sets): leaf certificates are signed with an [`Issuer`] built from these.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params
        .distinguished_name
        .push(DnType::OrganizationName, CA_ORGANIZATION);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: super::INTERCEPTED_HOSTS
            .iter()
            .map(|h| GeneralSubtree::DnsName((*h).to_owned()))
            .collect(),
        excluded_subtrees: Vec::new(),
    });
    params
}

/// A new CA: its key and its certificate's PEM.
fn generate() -> Result<(KeyPair, String), String> {
    let mut params = ca_params();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(BACKDATE_DAYS);
    params.not_after = now + time::Duration::days(CA_VALID_DAYS);
    let key = KeyPair::generate().map_err(|e| format!("development CA key: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("development CA certificate: {e}"))?;
    Ok((key, pem_encode("CERTIFICATE", cert.der())))
}

/// Loads `dir`'s CA, creating it when missing or made for another host list, and (re)writes the
/// public certificate file when it is missing or differs.
///
/// The key file is created atomically (private temporary file, then a hard link, which fails if
/// it exists), so concurrent first starts agree on one CA; a replacement is renamed into place.
fn load_or_create(dir: &Path) -> Result<KeyPair, String> {
    let key_path = dir.join(CA_KEY_FILE);
    let header = key_file_header();
    let existing = match std::fs::read_to_string(&key_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {}: {e}", key_path.display())),
    };
    let stale = existing.as_ref().is_some_and(|t| !t.starts_with(&header));
    if existing.is_none() || stale {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let (key, cert_pem) = generate()?;
        let text = format!(
            "{header}{}{cert_pem}",
            pem_encode("PRIVATE KEY", &key.serialize_der())
        );
        let tmp = dir.join(format!(".{CA_KEY_FILE}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        write_private_file(&tmp, text.as_bytes())?;
        let placed = if stale {
            tracing::info!(
                "the development CA in {} was made for another host list: replaced it",
                dir.display()
            );
            std::fs::rename(&tmp, &key_path)
        } else {
            let linked = std::fs::hard_link(&tmp, &key_path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                other => other,
            }
        };
        placed.map_err(|e| format!("cannot create {}: {e}", key_path.display()))?;
    }
    warn_file_mode(&key_path);
    let text =
        std::fs::read(&key_path).map_err(|e| format!("cannot read {}: {e}", key_path.display()))?;
    let shown = key_path.display();
    let key_der = PrivateKeyDer::from_pem_slice(&text)
        .map_err(|e| format!("{shown}: no private key: {e}"))?;
    let key = KeyPair::try_from(&key_der).map_err(|e| format!("{shown}: bad private key: {e}"))?;
    let cert = CertificateDer::pem_slice_iter(&text)
        .next()
        .ok_or_else(|| format!("{shown}: no CERTIFICATE"))?
        .map_err(|e| format!("{shown}: bad certificate: {e}"))?;
    let cert_pem = pem_encode("CERTIFICATE", &cert);
    let cert_path = dir.join(CA_CERT_FILE);
    if std::fs::read_to_string(&cert_path).ok().as_deref() != Some(cert_pem.as_str()) {
        std::fs::write(&cert_path, &cert_pem)
            .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
    }
    Ok(key)
}

/// Writes the certificate of an in-memory CA to a new file of its own in the OS temp directory
/// (created exclusively, so nothing already there is followed or overwritten).
fn write_temporary(cert_pem: &str) -> Result<PathBuf, String> {
    use std::io::Write;
    let dir = std::env::temp_dir();
    let mut last_error = String::new();
    for _ in 0..8 {
        let path = dir.join(format!(
            "graphsec-dev-ca-{}-{:08x}.pem",
            std::process::id(),
            fastrand::u32(..)
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(cert_pem.as_bytes())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                return Ok(path);
            }
            Err(e) => last_error = format!("cannot create {}: {e}", path.display()),
        }
    }
    Err(last_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rustls client that trusts exactly `ca_pem` and connects to `host` in memory.
    fn handshake(server: Arc<ServerConfig>, ca_pem: &[u8], host: &str) -> Result<(), String> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(host.to_owned()).unwrap();
        let mut c = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
        let mut s = rustls::ServerConnection::new(server).unwrap();
        for _ in 0..10 {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut buf.as_slice()).unwrap();
            s.process_new_packets().map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            s.write_tls(&mut buf).unwrap();
            c.read_tls(&mut buf.as_slice()).unwrap();
            c.process_new_packets().map_err(|e| e.to_string())?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(());
            }
        }
        Err("handshake did not finish".into())
    }

    #[test]
    fn the_ca_is_kept_reused_and_its_leaves_verify_for_their_host_only() {
        let dir = tempfile::tempdir().unwrap();
        let ca = DevCa::open(Some(dir.path())).unwrap();
        let canonical = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(ca.cert_path(), canonical.join(CA_CERT_FILE));
        let pem = std::fs::read(ca.cert_path()).unwrap();
        assert!(!String::from_utf8_lossy(&pem).contains("PRIVATE KEY"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(CA_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let graph = ca.server_config("graph.microsoft.com").unwrap();
        assert!(Arc::ptr_eq(
            &graph,
            &ca.server_config("graph.microsoft.com").unwrap()
        ));
        handshake(graph.clone(), &pem, "graph.microsoft.com").unwrap();
        // The leaf is for its host only.
        assert!(handshake(graph, &pem, "login.microsoftonline.com").is_err());

        // A restart reuses the CA (a deleted public copy is restored), and its new leaves
        // verify against the file clients already trust.
        std::fs::remove_file(ca.cert_path()).unwrap();
        let again = DevCa::open(Some(dir.path())).unwrap();
        assert_eq!(std::fs::read(again.cert_path()).unwrap(), pem);
        let login = again.server_config("login.microsoftonline.com").unwrap();
        handshake(login, &pem, "login.microsoftonline.com").unwrap();

        // The name constraint: even a leaf this CA signed for another host is refused.
        let outside = again.leaf("example.com").unwrap();
        let config = crate::tls::build(outside.0, outside.1).unwrap();
        let refused = handshake(config, &pem, "example.com").unwrap_err();
        assert!(refused.to_lowercase().contains("constraint"), "{refused}");

        // A CA made for another host list is replaced.
        let key_path = dir.path().join(CA_KEY_FILE);
        let text = std::fs::read_to_string(&key_path).unwrap();
        let (_, rest) = text.split_once('\n').unwrap();
        std::fs::write(
            &key_path,
            format!("graphsec development CA, name-constrained to: x\n{rest}"),
        )
        .unwrap();
        let replaced = DevCa::open(Some(dir.path())).unwrap();
        assert_ne!(std::fs::read(replaced.cert_path()).unwrap(), pem);
        assert!(
            std::fs::read_to_string(&key_path)
                .unwrap()
                .starts_with(&key_file_header())
        );
    }

    #[test]
    fn an_in_memory_ca_writes_a_temporary_certificate_and_removes_it() {
        let ca = DevCa::open(None).unwrap();
        let path = ca.cert_path().to_path_buf();
        assert!(path.starts_with(std::env::temp_dir()));
        let pem = std::fs::read(&path).unwrap();
        handshake(
            ca.server_config("graph.microsoft.com").unwrap(),
            &pem,
            "graph.microsoft.com",
        )
        .unwrap();
        ca.cleanup();
        assert!(!path.exists());
    }
}
