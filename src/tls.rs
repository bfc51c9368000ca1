//! HTTPS: the rustls server configuration (from `--tls-cert`/`--tls-key` PEM files, or a
//! self-signed certificate for localhost with `--tls-self-signed`) and [`TlsListener`], which
//! lets `axum::serve` (graceful shutdown included) serve TLS.
//!
//! One crypto stack: rustls runs on the aws-lc-rs provider, like the JWT verification.
//!
//! # Serving (why a `Listener`, not axum-server)
//!
//! axum 0.8's `axum::serve` accepts any [`axum::serve::Listener`]. [`TlsListener`] implements it
//! on top of `tokio-rustls` (already in the dependency tree through the JWKS client), so the
//! server keeps the plain-HTTP code path: same `axum::serve(..).with_graceful_shutdown(..)`,
//! and `ConnectInfo<SocketAddr>` works too (see below). axum-server would add its own server
//! loop, `arc-swap` and `fs-err` for nothing we need. Handshakes run in their own tasks (with a
//! timeout), so a slow or silent client cannot hold up accepting others.
//!
//! ```no_run
//! # async fn run(app: axum::Router, cfg: std::sync::Arc<rustls::ServerConfig>) -> std::io::Result<()> {
//! let tcp = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
//! let listener = graphsec::tls::TlsListener::new(tcp, cfg, 1000)?;
//! axum::serve(listener, app)
//!     .with_graceful_shutdown(async { let _ = tokio::signal::ctrl_c().await; })
//!     .await
//! # }
//! ```
//!
//! For `ConnectInfo<SocketAddr>`, wrap the listener in the no-op `ListenerExt::tap_io(|_| ())`
//! and use `app.into_make_service_with_connect_info::<SocketAddr>()` (axum implements
//! `Connected` for tapped listeners; the orphan rule stops us implementing it for `TlsListener`).
//! The test `https_handshake_against_the_generated_certificate` does exactly this.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::auth::{pem_encode, warn_file_mode, write_private_file};
use crate::serve::{AddressSlot, Connections};

/// File in the data dir holding the self-signed certificate's private key and the certificate
/// (mode 0600).
pub const SELF_SIGNED_KEY_FILE: &str = "tls-self-signed-key.pem";
/// File in the data dir holding the self-signed certificate alone: the file clients trust.
pub const SELF_SIGNED_CERT_FILE: &str = "tls-self-signed-cert.pem";
/// Names the self-signed certificate is valid for.
pub const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
/// How long a client may take to complete the TLS handshake (also inside a proxy tunnel).
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS flags of `graphsec serve`. Without any of them the server speaks plain HTTP.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Serve HTTPS with this PEM certificate chain (leaf first).
    #[arg(
        long,
        env = "GRAPHSEC_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1) for --tls-cert.
    #[arg(
        long,
        env = "GRAPHSEC_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Serve HTTPS with a self-signed certificate for localhost, 127.0.0.1 and ::1, generated
    /// once into the data dir (tls-self-signed-cert.pem is the file to trust) and reused.
    #[arg(
        long,
        env = "GRAPHSEC_TLS_SELF_SIGNED",
        conflicts_with_all = ["tls_cert", "tls_key"]
    )]
    pub tls_self_signed: bool,
}

/// A server TLS configuration and, for a self-signed certificate kept in the data dir, the
/// certificate file clients should trust.
pub type TlsSetup = (Arc<ServerConfig>, Option<PathBuf>);

/// Builds the TLS configuration the flags ask for: `None` for plain HTTP, else the config and,
/// for a self-signed certificate kept in the data dir, the certificate file clients should
/// trust (for the startup log). Without a data dir the self-signed certificate is ephemeral and
/// its PEM is logged instead.
pub fn server_config(args: &TlsArgs, data_dir: Option<&Path>) -> Result<Option<TlsSetup>, String> {
    if args.tls_self_signed {
        let (chain, key, trust) = match data_dir {
            Some(dir) => {
                let (chain, key) = load_or_create_self_signed(dir)?;
                (chain, key, Some(dir.join(SELF_SIGNED_CERT_FILE)))
            }
            None => {
                let (cert_pem, key_pem) = generate_self_signed()?;
                tracing::info!(
                    "ephemeral self-signed TLS certificate (trust it to connect):\n{cert_pem}"
                );
                let (chain, key) =
                    parse_pair(cert_pem.as_bytes(), key_pem.as_bytes(), "self-signed")?;
                (chain, key, None)
            }
        };
        return Ok(Some((build(chain, key)?, trust)));
    }
    match (&args.tls_cert, &args.tls_key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read certificates from {}: {e}", cert.display()))?;
            if chain.is_empty() {
                return Err(format!("{} contains no CERTIFICATE", cert.display()));
            }
            warn_file_mode(key);
            let key_der = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("cannot read a private key from {}: {e}", key.display()))?;
            Ok(Some((build(chain, key_der)?, None)))
        }
        _ => Err("--tls-cert and --tls-key go together".into()),
    }
}

/// A server configuration for `chain` and `key` on the aws-lc-rs provider, offering HTTP/2 and
/// HTTP/1.1 by ALPN (also the intercepting proxy's, `crate::proxy`).
pub(crate) fn build(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS certificate/key rejected: {e}"))?;
    // axum's `http1` and `http2` features: hyper-util's auto builder serves whichever the
    // connection speaks, so offer both, HTTP/2 first (as Graph does).
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A fresh self-signed certificate for [`SELF_SIGNED_NAMES`]: (certificate PEM, key PEM).
pub fn generate_self_signed() -> Result<(String, String), String> {
    let names: Vec<String> = SELF_SIGNED_NAMES.iter().map(|s| (*s).to_owned()).collect();
    let mut params = rcgen::CertificateParams::new(names)
        .map_err(|e| format!("self-signed certificate: {e}"))?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "graphsec self-signed (localhost)",
    );
    // Some clients (macOS, Windows) insist on the serverAuth usage even for a trusted leaf.
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().map_err(|e| format!("self-signed key: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("self-signed certificate: {e}"))?;
    // PEM-encoded here rather than with rcgen's `pem` feature: one crate less to build.
    Ok((
        pem_encode("CERTIFICATE", cert.der()),
        pem_encode("PRIVATE KEY", &key.serialize_der()),
    ))
}

fn parse_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
    origin: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{origin}: bad certificate PEM: {e}"))?;
    if chain.is_empty() {
        return Err(format!("{origin}: no certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("{origin}: bad key PEM: {e}"))?;
    Ok((chain, key))
}

/// Loads the data dir's self-signed certificate, generating it on first use.
///
/// The key file holds key *and* certificate and is created atomically (private temp file, then
/// hard link, which fails if it exists), so concurrent first starts agree on one pair. The
/// public certificate file is (re)written from it whenever it is missing or differs.
fn load_or_create_self_signed(
    dir: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let key_path = dir.join(SELF_SIGNED_KEY_FILE);
    if !key_path.exists() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create data dir {}: {e}", dir.display()))?;
        let (cert_pem, key_pem) = generate_self_signed()?;
        let tmp = dir.join(format!(
            ".{SELF_SIGNED_KEY_FILE}.{}.tmp",
            std::process::id()
        ));
        write_private_file(&tmp, format!("{key_pem}{cert_pem}").as_bytes())?;
        let linked = std::fs::hard_link(&tmp, &key_path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => tracing::info!("generated self-signed TLS certificate in {}", dir.display()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create {}: {e}", key_path.display())),
        }
    }
    warn_file_mode(&key_path);
    let both =
        std::fs::read(&key_path).map_err(|e| format!("cannot read {}: {e}", key_path.display()))?;
    let (chain, key) = parse_pair(&both, &both, &key_path.display().to_string())?;
    let mut cert_pem = String::new();
    for c in &chain {
        cert_pem.push_str(&pem_encode("CERTIFICATE", c.as_ref()));
    }
    let cert_path = dir.join(SELF_SIGNED_CERT_FILE);
    if std::fs::read_to_string(&cert_path).ok().as_deref() != Some(cert_pem.as_str()) {
        std::fs::write(&cert_path, &cert_pem)
            .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
    }
    Ok((chain, key))
}

/// A TLS listener for `axum::serve`: accepts TCP connections and hands over the ones that
/// complete a TLS handshake. Dropping it (as `axum::serve` does on graceful shutdown) stops
/// accepting at once.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Wraps a bound TCP listener, with at most `max_handshakes` TLS handshakes under way at
    /// once (sockets that never finish theirs count against it, so they cannot exhaust the
    /// process's file descriptors; further connections wait in the listen backlog). Must be
    /// called inside a Tokio runtime.
    pub fn new(
        tcp: TcpListener,
        config: Arc<ServerConfig>,
        max_handshakes: usize,
    ) -> std::io::Result<Self> {
        Self::with_connections(tcp, config, max_handshakes, None)
    }

    /// [`TlsListener::new`] for [`crate::serve::serve`]: each handshake counts against its
    /// client address's cap from the TCP accept on (`--max-connections-per-address`), and the
    /// count is handed over with the connection.
    pub fn with_connections(
        tcp: TcpListener,
        config: Arc<ServerConfig>,
        max_handshakes: usize,
        connections: Option<Arc<Connections>>,
    ) -> std::io::Result<Self> {
        let local_addr = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        // A small buffer: connections wait here only until axum's accept loop takes them.
        let (tx, ready) = mpsc::channel(64);
        let pending = Arc::new(tokio::sync::Semaphore::new(max_handshakes.max(1)));
        let accept_task = tokio::spawn(accept_loop(tcp, acceptor, tx, pending, connections));
        Ok(TlsListener {
            ready,
            local_addr,
            accept_task,
        })
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    pending: Arc<tokio::sync::Semaphore>,
    connections: Option<Arc<Connections>>,
) {
    // The handshakes under way, oldest first, with their client's address and its count:
    // when all the places (or all its address's) are taken, the oldest one (a socket that has
    // been silent the longest) is dropped to make room, so silent sockets never keep a real
    // client waiting.
    let mut under_way: std::collections::VecDeque<UnderWay> = std::collections::VecDeque::new();
    loop {
        under_way.retain(|u| !u.task.is_finished());
        let permit = match pending.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if let Some(oldest) = under_way.pop_front() {
                    tracing::debug!("dropping the oldest unfinished TLS handshake to make room");
                    oldest.drop_now();
                }
                tokio::select! {
                    () = tx.closed() => return,
                    p = pending.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => return,
                    },
                }
            }
        };
        let accepted = tokio::select! {
            // The receiving TlsListener is gone (shutdown): stop accepting.
            () = tx.closed() => return,
            r = tcp.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                let ip = peer.ip().to_canonical();
                let counted = match &connections {
                    Some(c) => {
                        // The address's oldest handshake gives its place (and its count) to
                        // the newcomer.
                        let evict_handshake = || {
                            under_way.retain(|u| !u.task.is_finished());
                            let at = under_way.iter().position(|u| u.ip == ip)?;
                            let oldest = under_way.remove(at)?;
                            tracing::debug!(
                                "dropping the oldest unfinished TLS handshake of {ip} to make room"
                            );
                            oldest.task.abort();
                            oldest.slot.lock().ok()?.take()
                        };
                        match c.admit(ip, evict_handshake) {
                            Some(slot) => Some(slot),
                            // At its cap with nothing to close: closed at once.
                            None => continue,
                        }
                    }
                    None => None,
                };
                let slot = Arc::new(std::sync::Mutex::new(counted));
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                let connections = connections.clone();
                let held = slot.clone();
                let task = tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    drop(permit);
                    match handshake {
                        Ok(Ok(tls)) => {
                            let counted = held.lock().ok().and_then(|mut s| s.take());
                            if let (Some(c), Some(counted)) = (&connections, counted) {
                                c.hand_over(peer, counted);
                            }
                            // Handed over by a task of its own, so this (abortable) task ends
                            // with the handshake. Fails only when shutting down; the
                            // connection is then dropped.
                            tokio::spawn(async move {
                                let _ = tx.send((tls, peer)).await;
                            });
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
                    }
                });
                under_way.push_back(UnderWay {
                    ip,
                    task: task.abort_handle(),
                    slot,
                });
            }
            Err(e) => {
                // Typically EMFILE: back off instead of spinning (as axum does for TCP).
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A TLS handshake under way: its task and its place in its address's count (taken by the
/// task when the handshake completes, or by whoever drops the handshake to make room).
struct UnderWay {
    ip: IpAddr,
    task: tokio::task::AbortHandle,
    slot: Arc<std::sync::Mutex<Option<AddressSlot>>>,
}

impl UnderWay {
    /// Drops the handshake and returns its address's place at once (the aborted task is
    /// dropped later, and its count must not outlive the decision).
    fn drop_now(self) {
        self.task.abort();
        if let Ok(mut s) = self.slot.lock() {
            s.take();
        }
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // Release the port now rather than at the next accepted connection.
        self.accept_task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task ended, which only happens once this listener is dropped or the
            // runtime shuts down; there is nothing left to hand out, so wait forever (axum's
            // own TCP listener likewise never returns an error from accept).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

/// The TLS client configuration for outgoing connections (JWKS fetches, PostgreSQL): rustls on
/// the aws-lc-rs provider (the process's one crypto stack) with the operating system's trust
/// store (which honours `SSL_CERT_FILE` / `SSL_CERT_DIR`, so private CAs can be configured).
pub fn client_config() -> Result<rustls::ClientConfig, String> {
    client_config_trusting(None)
}

/// [`client_config`], also trusting the certificates in the PEM file `extra` (e.g. a
/// graphsec's `tls-self-signed-cert.pem`, for `graphsec token --url https://… --cacert`).
pub fn client_config_trusting(extra: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // Individual unparsable system certificates are common and harmless; skip them.
        let _ = roots.add(cert);
    }
    if let Some(path) = extra {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{} contains no CERTIFICATE", path.display()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    if roots.is_empty() {
        tracing::warn!("no system CA certificates found; outgoing TLS connections will fail");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS client setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed_args() -> TlsArgs {
        TlsArgs {
            tls_self_signed: true,
            ..Default::default()
        }
    }

    #[test]
    fn self_signed_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (_, trust) = server_config(&self_signed_args(), Some(&data))
            .unwrap()
            .unwrap();
        let trust = trust.unwrap();
        assert_eq!(trust, data.join(SELF_SIGNED_CERT_FILE));
        let cert1 = std::fs::read_to_string(&trust).unwrap();
        let key1 = std::fs::read(data.join(SELF_SIGNED_KEY_FILE)).unwrap();
        assert!(cert1.starts_with("-----BEGIN CERTIFICATE-----") && !cert1.contains("PRIVATE KEY"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data.join(SELF_SIGNED_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Second start: same certificate and key; a deleted public copy is restored.
        std::fs::remove_file(&trust).unwrap();
        server_config(&self_signed_args(), Some(&data))
            .unwrap()
            .unwrap();
        assert_eq!(std::fs::read_to_string(&trust).unwrap(), cert1);
        assert_eq!(
            std::fs::read(data.join(SELF_SIGNED_KEY_FILE)).unwrap(),
            key1
        );
        // In memory: a config, no file.
        let (_, none) = server_config(&self_signed_args(), None).unwrap().unwrap();
        assert!(none.is_none());
        // No TLS flags: plain HTTP.
        assert!(
            server_config(&TlsArgs::default(), Some(&data))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn pem_files_and_their_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = generate_self_signed().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, &cert).unwrap();
        std::fs::write(&k, &key).unwrap();
        let args = |c: &Path, k: &Path| TlsArgs {
            tls_cert: Some(c.to_path_buf()),
            tls_key: Some(k.to_path_buf()),
            tls_self_signed: false,
        };
        let (_, trust) = server_config(&args(&c, &k), None).unwrap().unwrap();
        assert!(trust.is_none());
        assert!(
            server_config(&args(&k, &k), None)
                .unwrap_err()
                .contains("no CERTIFICATE")
        );
        assert!(server_config(&args(&c, &c), None).is_err());
        assert!(server_config(&args(&dir.path().join("nope"), &k), None).is_err());
        // A key that does not belong to the certificate.
        let (_, other_key) = generate_self_signed().unwrap();
        std::fs::write(&k, other_key).unwrap();
        assert!(server_config(&args(&c, &k), None).is_err());
        // Only one of the pair (clap also enforces this).
        let half = TlsArgs {
            tls_cert: Some(c.clone()),
            ..Default::default()
        };
        assert!(server_config(&half, None).is_err());
    }

    #[test]
    fn flags_parse() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            tls: TlsArgs,
        }
        assert!(
            Cli::try_parse_from(["g", "--tls-self-signed"])
                .unwrap()
                .tls
                .tls_self_signed
        );
        assert!(
            Cli::try_parse_from(["g", "--tls-cert", "c"]).is_err(),
            "needs --tls-key"
        );
        assert!(
            Cli::try_parse_from([
                "g",
                "--tls-self-signed",
                "--tls-cert",
                "c",
                "--tls-key",
                "k"
            ])
            .is_err()
        );
        let both = Cli::try_parse_from(["g", "--tls-cert", "c", "--tls-key", "k"]).unwrap();
        assert!(both.tls.tls_cert.is_some() && !both.tls.tls_self_signed);
    }

    /// The recommended serving setup, end to end: axum over [`TlsListener`] with graceful
    /// shutdown, and a client trusting the generated certificate file.
    #[tokio::test]
    async fn https_handshake_against_the_generated_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (config, trust) = server_config(&self_signed_args(), Some(dir.path()))
            .unwrap()
            .unwrap();

        use axum::extract::ConnectInfo;
        use axum::serve::ListenerExt;
        let app = axum::Router::new()
            .route("/", axum::routing::get(|| async { "hello over tls" }))
            .route(
                "/peer",
                axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                    peer.ip().to_string()
                }),
            );
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listener = TlsListener::new(tcp, config, 16).unwrap();
        let port = axum::serve::Listener::local_addr(&listener).unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            // `tap_io` is a no-op wrapper; axum implements `ConnectInfo<SocketAddr>` for any
            // tapped listener whose address is a SocketAddr, which TlsListener's is.
            axum::serve(
                listener.tap_io(|_| ()),
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
        });

        // A client that trusts exactly the certificate file graphsec reported.
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(trust.unwrap()).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let client_tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(client_tls)
            .build()
            .unwrap();
        for host in ["localhost", "127.0.0.1"] {
            let body = client
                .get(format!("https://{host}:{port}/"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert_eq!(body, "hello over tls", "{host}");
        }
        let peer = client
            .get(format!("https://localhost:{port}/peer"))
            .send()
            .await
            .unwrap();
        assert_eq!(peer.text().await.unwrap(), "127.0.0.1");
        // A client that does not trust the certificate fails the handshake, and the server
        // keeps serving others.
        let untrusting = reqwest::Client::builder()
            .use_preconfigured_tls(
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
            )
            .build()
            .unwrap();
        assert!(
            untrusting
                .get(format!("https://localhost:{port}/"))
                .send()
                .await
                .is_err()
        );
        // A silent TCP client does not block the next handshake.
        let idle = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let again = client
            .get(format!("https://localhost:{port}/"))
            .send()
            .await
            .unwrap();
        assert!(again.status().is_success());

        // Graceful shutdown completes and frees the port. Connection tasks and the kernel let
        // go of it a moment after the serve future returns (seen under a loaded CI run), so
        // the port is waited for, within a bound, rather than expected at once.
        drop((client, idle));
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let mut rebound = false;
        for _ in 0..50 {
            if TcpListener::bind(("127.0.0.1", port)).await.is_ok() {
                rebound = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(rebound, "port {port} still taken 5 s after shutdown");
    }
}
