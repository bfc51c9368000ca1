//! Several graphsec nodes on one PostgreSQL database, and PostgreSQL outages.
//!
//! These tests always use PostgreSQL (see `pg.rs` for where it comes from and what happens when
//! it is missing). The load-balancer test runs the distribution's haproxy, which
//! `scripts/install-test-tools` installs; missing, it is skipped loudly (a failure under CI).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

use crate::pg;
use crate::support::{COLLECTION, Server, expect_error};

/// A database for a test, dropped at the end of it.
pub(crate) struct Db(pub(crate) String);

impl Db {
    pub(crate) fn create() -> Option<Db> {
        pg::available().then(|| Db(pg::create_database()))
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        pg::drop_database(&self.0);
    }
}

/// A node with authentication off (loopback only) on `url`.
fn node(url: &str) -> Server {
    Server::start_with(&[
        "--auth",
        "none",
        "--database-url",
        url,
        "--database-pool-size",
        "4",
        "--database-startup-wait-secs",
        "30",
    ])
}

/// Polls `cond` until it holds or `limit` passes; false on timeout.
async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

/// A TCP proxy between graphsec and PostgreSQL that the test can sever and restore. Severed,
/// it closes every open connection and every new one, as a database that went away would.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// Bumped on every sever: connection tasks of an older generation end.
    generation: Arc<AtomicUsize>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let generation = Arc::new(AtomicUsize::new(0));
        let (u, g) = (up.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !u.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let born = g.load(Ordering::SeqCst);
                let g = g.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut c, mut s) = (client, server);
                    let pump = tokio::io::copy_bidirectional(&mut c, &mut s);
                    let cut = async {
                        while g.load(Ordering::SeqCst) == born {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = pump => {}
                        _ = cut => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            up,
            generation,
        }
    }

    fn sever(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// The address of the PostgreSQL the harness uses.
fn pg_addr() -> SocketAddr {
    let config = tokio_postgres::Config::from_str(&pg::admin_url()).expect("admin url");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .expect("resolve")
        .next()
        .expect("address")
}

#[derive(Default)]
struct Tally {
    acked: HashSet<String>,
    unavailable: usize,
    other: Vec<u16>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_gives_503_with_retry_after_recovers_and_loses_no_acknowledged_write() {
    let Some(db) = Db::create() else { return };
    let proxy = Proxy::start(pg_addr()).await;
    let through_proxy = pg::url(&db.0).replacen(
        &pg_addr().port().to_string(),
        &proxy.addr.port().to_string(),
        1,
    );
    assert_ne!(
        through_proxy,
        pg::url(&db.0),
        "the URL goes through the proxy"
    );
    let s = Arc::new(node(&through_proxy));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (s, tally, stop) = (s.clone(), tally.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let id = format!("w{w}-{n}");
                n += 1;
                let r = s.post(COLLECTION, &json!({"id": id, "name": "load"})).await;
                let status = r.status().as_u16();
                match status {
                    201 => {
                        tally.lock().await.acked.insert(id);
                    }
                    503 => {
                        assert!(
                            r.headers().contains_key("retry-after"),
                            "503 has Retry-After"
                        );
                        let v: Value = r.json().await.unwrap();
                        assert_eq!(v["error"]["code"], "ServiceNotAvailable", "{v}");
                        tally.lock().await.unavailable += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    other => tally.lock().await.other.push(other),
                }
            }
        }));
    }
    let acked = |t: &Tally| t.acked.len();
    let wait_for = |what: &'static str, cond: Box<dyn Fn(&Tally) -> bool + Send>| {
        let tally = tally.clone();
        async move {
            let ok = eventually(Duration::from_secs(60), || {
                tally.try_lock().map(|t| cond(&t)).unwrap_or(false)
            })
            .await;
            assert!(ok, "timed out waiting for {what}");
        }
    };
    wait_for(
        "writes before the outage",
        Box::new(move |t| acked(t) >= 20),
    )
    .await;
    proxy.sever();
    let before = tally.lock().await.acked.len();
    wait_for("503s during the outage", Box::new(|t| t.unavailable >= 5)).await;
    proxy.restore();
    wait_for(
        "writes after recovery",
        Box::new(move |t| acked(t) >= before + 20),
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let t = tally.lock().await;
    assert!(
        t.other.is_empty(),
        "only 201 and 503 expected: {:?}",
        t.other
    );
    let present: HashSet<String> = s.all_ids().await.into_iter().collect();
    let lost: Vec<&String> = t.acked.difference(&present).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    eprintln!(
        "outage: {} acknowledged writes all present, {} answered 503",
        t.acked.len(),
        t.unavailable
    );
}

/// haproxy in front of `nodes`, on a free port; killed on drop.
struct Haproxy {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    fn start(nodes: &[&Server]) -> Option<Haproxy> {
        if Command::new("haproxy").arg("-v").output().is_err() {
            crate::support::skip_loudly(
                "the load-balancer test",
                "haproxy is not installed (scripts/install-test-tools installs it)",
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let servers: String = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let addr = n.base.trim_start_matches("http://");
                format!("  server n{i} {addr}\n")
            })
            .collect();
        let cfg = format!(
            "global\n  maxconn 512\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\nfrontend fe\n  bind 127.0.0.1:{port}\n  default_backend nodes\nbackend nodes\n  balance roundrobin\n{servers}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn haproxy");
        let end = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "haproxy did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Haproxy {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        })
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn counter_of(c: &reqwest::Client, url: &str) -> (i64, String) {
    let r = c.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let tag = r.headers()["etag"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    (v["counter"].as_i64().expect("counter"), tag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_behind_haproxy_share_data_paging_and_lose_no_racing_update() {
    let Some(db) = Db::create() else { return };
    let url = pg::url(&db.0);
    let nodes = [node(&url), node(&url), node(&url)];
    let Some(lb) = Haproxy::start(&nodes.iter().collect::<Vec<_>>()) else {
        return;
    };

    // A write through one node is read through the others, with the same tag.
    let r = nodes[0]
        .post(
            COLLECTION,
            &json!({"id": "shared", "name": "n0", "counter": 0}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created_tag = r.headers()["etag"].to_str().unwrap().to_string();
    for n in &nodes[1..] {
        let r = n.get(&format!("{COLLECTION}/shared")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["etag"], created_tag.as_str());
    }

    // A paging token minted by one node is honoured by another (the secret is in the database).
    for i in 0..3 {
        nodes[1]
            .create(&json!({"id": format!("page-{i}"), "name": "p"}))
            .await;
    }
    let v: Value = nodes[0]
        .get_with(COLLECTION, &[("$top", "2")])
        .await
        .json()
        .await
        .unwrap();
    let next = v["@odata.nextLink"].as_str().expect("next link");
    let on_other = next.replacen(&nodes[0].base, &nodes[2].base, 1);
    let r = nodes[2].client.get(&on_other).send().await.unwrap();
    assert_eq!(r.status(), 200, "another node accepts the token");

    // Racing read-modify-write through the load balancer: every 200 is one increment.
    let client = reqwest::Client::new();
    let entity = format!("{}{COLLECTION}/shared", lb.base);
    let successes = Arc::new(AtomicUsize::new(0));
    let conflicts = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, entity) = (client.clone(), entity.clone());
        let (successes, conflicts) = (successes.clone(), conflicts.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..6 {
                let (n, tag) = counter_of(&client, &entity).await;
                let r = client
                    .patch(&entity)
                    .header("if-match", tag)
                    .json(&json!({"counter": n + 1}))
                    .send()
                    .await
                    .unwrap();
                match r.status().as_u16() {
                    200 => successes.fetch_add(1, Ordering::SeqCst),
                    412 => conflicts.fetch_add(1, Ordering::SeqCst),
                    s => panic!("unexpected status {s}"),
                };
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (final_count, final_tag) = counter_of(&client, &entity).await;
    let ok = successes.load(Ordering::SeqCst) as i64;
    assert_eq!(final_count, ok, "no lost update");
    assert!(ok >= 1);
    eprintln!(
        "racing: {ok} increments applied, {} refused with 412",
        conflicts.load(Ordering::SeqCst)
    );

    // A stale tag is refused on every node.
    for n in &nodes {
        let r = n
            .client
            .patch(n.url(&format!("{COLLECTION}/shared")))
            .header("if-match", &created_tag)
            .json(&json!({"counter": -1}))
            .send()
            .await
            .unwrap();
        expect_error(r, 412, "PreconditionFailed").await;
    }
    assert_eq!(counter_of(&client, &entity).await, (final_count, final_tag));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_waits_for_an_unreachable_database_instead_of_exiting() {
    let Some(db) = Db::create() else { return };
    let proxy = Proxy::start(pg_addr()).await;
    proxy.sever();
    let url = pg::url(&db.0).replacen(
        &pg_addr().port().to_string(),
        &proxy.addr.port().to_string(),
        1,
    );
    // The harness blocks until the node prints its listening line: start it on a thread and
    // let the database come back while it waits.
    let starting = std::thread::spawn(move || node(&url));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !starting.is_finished(),
        "the node waits while the database is away"
    );
    proxy.restore();
    let s = tokio::task::spawn_blocking(move || starting.join().expect("node started"))
        .await
        .unwrap();
    s.create(&json!({"id": "after-wait"})).await;
    assert_eq!(s.all_ids().await, vec!["after-wait".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_on_an_empty_database_migrate_it_once() {
    let Some(db) = Db::create() else { return };
    let url = pg::url(&db.0);
    let starting: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || node(&url))
        })
        .collect();
    let nodes = tokio::task::spawn_blocking(move || {
        starting
            .into_iter()
            .map(|t| t.join().expect("node started"))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    nodes[0].create(&json!({"id": "one"})).await;
    for n in &nodes {
        assert_eq!(n.all_ids().await, vec!["one".to_string()]);
    }
}

/// Runs the `graphsec` binary with `args` to success; its standard output.
fn graphsec(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_graphsec"))
        .args(args)
        .env("GRAPHSEC_LOG", "warn")
        .output()
        .expect("run graphsec");
    assert!(
        out.status.success(),
        "graphsec {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A fresh, never-analyzed table must not keep the plans PostgreSQL made while it was empty
/// (a lookup by (tenant, id) then walked a secondary index over the whole tenant, and a
/// 200,000-line import ran at a few hundred lines a second, slowing as it went): the store
/// analyzes tables itself as rows arrive, whether autovacuum runs or not. Checked for both
/// ways rows arrive in bulk: an import, and creates through the API.
#[tokio::test]
async fn bulk_writes_keep_postgresql_statistics_current_without_autovacuum() {
    let Some(db) = Db::create() else {
        return;
    };
    let analyzed = |db: &str| {
        pg::scalar(
            db,
            "SELECT coalesce(analyze_count, 0) + coalesce(autoanalyze_count, 0) \
             FROM pg_stat_user_tables WHERE relname = 'cloud_app_security_profiles'",
        )
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0)
    };
    let lines: String = (0..2_500)
        .map(|i| {
            format!(
                "{}\n",
                json!({"@graphsec.tenant": "t", "id": format!("p{i:05}"), "name": format!("n{i}"),
                       "publisher": "same publisher", "platform": "linux"})
            )
        })
        .collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), lines).unwrap();
    graphsec(&[
        "import",
        file.path().to_str().unwrap(),
        "--chunk-size",
        "500",
        "--database-url",
        &pg::url(&db.0),
    ]);
    // Statistics reach the server after a short delay (PostgreSQL's stats collector).
    let deadline = Instant::now() + Duration::from_secs(10);
    while analyzed(&db.0) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(analyzed(&db.0) >= 1, "the import never analyzed the table");
    let planner_rows = pg::scalar(
        &db.0,
        "SELECT reltuples::bigint FROM pg_class WHERE relname = 'cloud_app_security_profiles'",
    )
    .and_then(|n| n.parse::<i64>().ok());
    assert!(
        planner_rows.is_some_and(|n| n >= 1_000),
        "the planner still believes the table is (nearly) empty: {planner_rows:?} rows"
    );
    // Creates through the API on another fresh database.
    let Some(api_db) = Db::create() else {
        return;
    };
    let server = Server::start_with(&["--database-url", &pg::url(&api_db.0)]);
    for i in 0..1_000 {
        server.create(&json!({"name": format!("c{i}")})).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while analyzed(&api_db.0) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        analyzed(&api_db.0) >= 1,
        "1,000 creates never analyzed the table"
    );
}

/// `graphsec export`/`import` with `--database-url`: a store's profiles (two tenants) move to
/// another database and export again identically, timestamps and dynamic properties included.
#[tokio::test]
async fn export_and_import_move_every_profile_between_postgresql_databases() {
    let (Some(from), Some(to)) = (Db::create(), Db::create()) else {
        return;
    };
    let server = Server::start_with(&["--database-url", &pg::url(&from.0)]);
    let other =
        server.client_with(&server.token_for("tenant-b", &[crate::support::READ_WRITE], &[]));
    for i in 0..5 {
        server
            .create(&json!({"name": format!("a{i}"), "tags": ["x"], "custom": {"n": i}}))
            .await;
        let r = other
            .post(server.url(COLLECTION))
            .json(&json!({"name": format!("b{i}"), "platform": "linux"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let exported = graphsec(&["export", "--database-url", &pg::url(&from.0)]);
    assert_eq!(exported.lines().count(), 10, "{exported}");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &exported).unwrap();
    let path = file.path().to_str().unwrap();
    graphsec(&["import", path, "--database-url", &pg::url(&to.0)]);
    // Idempotent: a second run replaces each (tenant, id) instead of duplicating it.
    graphsec(&["import", path, "--database-url", &pg::url(&to.0)]);
    let again = graphsec(&["export", "--database-url", &pg::url(&to.0)]);
    assert_eq!(again, exported);
    let one = graphsec(&[
        "export",
        "--tenant",
        "tenant-b",
        "--database-url",
        &pg::url(&to.0),
    ]);
    assert_eq!(one.lines().count(), 5);
    assert!(one.lines().all(|l| l.contains("\"tenant-b\"")), "{one}");
}
