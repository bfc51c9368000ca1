//! Durability: concurrent writers share commits, every acknowledged write survives `kill -9`
//! and restart, and SIGTERM drains in-flight work and exits 0.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::support::{COLLECTION, Server, expect_error};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_all_land_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &[]);
    let s_ref = Arc::new(s.client.clone());
    let url = s.url(COLLECTION);
    let mut tasks = Vec::new();
    for w in 0..32 {
        let (client, url) = (s_ref.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..10 {
                let r = client
                    .post(&url)
                    .json(&json!({"id": format!("w{w}-{i}"), "name": "c"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                ids.push(format!("w{w}-{i}"));
            }
            ids
        }));
    }
    let mut expected = Vec::new();
    for t in tasks {
        expected.extend(t.await.unwrap());
    }
    // Concurrent PATCHes of one profile are serialized: none is lost.
    let target = format!("{COLLECTION}/w0-0");
    let mut patches = Vec::new();
    for i in 0..20 {
        let (client, url) = (s_ref.clone(), s.url(&target));
        patches.push(tokio::spawn(async move {
            let r = client
                .patch(&url)
                .json(&json!({format!("k{i}"): i}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }));
    }
    for p in patches {
        p.await.unwrap();
    }
    s.kill9();
    let s = Server::start_in(dir.path(), &[]);
    let mut got = s.all_ids().await;
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    let v: Value = s.get(&target).await.json().await.unwrap();
    for i in 0..20 {
        assert_eq!(v[format!("k{i}")], i, "patch {i} survived");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_dash_nine_mid_stream_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &[]);
    let acked: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let url = s.url(COLLECTION);
    let mut writers = Vec::new();
    for w in 0..8 {
        let (client, url, acked) = (s.client.clone(), url.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let id = format!("k{w}-{i}");
                match client
                    .post(&url)
                    .json(&json!({"id": id, "tags": ["durable"]}))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 201 => acked.lock().unwrap().push(id),
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    // The server died mid-request: this write was never acknowledged.
                    Err(_) => break,
                }
            }
        }));
    }
    // Let writes flow, then kill without warning while they are in flight.
    while acked.lock().unwrap().len() < 200 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    s.kill9();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let s = Server::start_in(dir.path(), &[]);
    let present: std::collections::HashSet<String> = s.all_ids().await.into_iter().collect();
    let lost: Vec<&String> = acked.iter().filter(|id| !present.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(acked.len() >= 200);
}

#[tokio::test]
async fn sigterm_exits_zero_and_data_persists() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &[]);
    s.create(&json!({"id": "kept"})).await;
    let status = s.terminate();
    assert!(status.success(), "exit status {status:?}");
    let s = Server::start_in(dir.path(), &[]);
    assert_eq!(s.all_ids().await, vec!["kept".to_string()]);
}

#[tokio::test]
async fn in_memory_mode_writes_nothing_to_disk() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Dev auth with an in-memory key: the server prints a ready token (no data dir to sign with).
    let s = Server::start_in(&data, &["--in-memory"]);
    assert!(!s.token.is_empty(), "in-memory dev mode printed a token");
    expect_error(
        s.anonymous().get(s.url(COLLECTION)).send().await.unwrap(),
        401,
        "InvalidAuthenticationToken",
    )
    .await;
    s.create(&json!({"name": "volatile"})).await;
    assert_eq!(s.all_ids().await.len(), 1);
    assert!(!data.exists(), "in-memory mode created {}", data.display());
}
