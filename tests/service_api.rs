//! The snapshot endpoints over real HTTP: lifecycle, validation, the
//! 5-snapshot limit under concurrency, restore and delete at the byte and
//! block level, pagination, idempotency keys.

mod service_support;

use cowsnap::service::run::ServeOptions;
use cowsnap::service::Settings;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use service_support::{
    assert_error, assert_field_error, reply, wait_until, Api, Setup, SyncHold, BLOCK,
};

const MIB: u64 = 1 << 20;

/// An API with account `acme` (token returned) owning server 12345.
async fn acme() -> (Api, String) {
    let api = Api::start().await;
    let token = api.account("acme");
    api.server("acme", 12345, "web-server-01", 64 * MIB);
    (api, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_lifecycle() {
    let (api, t) = acme().await;
    let r = api
        .post(
            &t,
            "/api/v1/snapshots/",
            json!({"server_id": 12345, "name": "pre-migration-snapshot",
                   "description": "Before major migration"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_u64().unwrap();
    assert_eq!(
        r.body["server"],
        json!({"id": 12345, "name": "web-server-01"})
    );
    assert_eq!(r.body["name"], "pre-migration-snapshot");
    assert_eq!(r.body["status"], "completed");
    assert_eq!(r.body["size_mb"], 0);
    assert_eq!(r.body["description"], "Before major migration");
    assert!(r.body["message"].as_str().unwrap().contains("created"));
    let created = r.body["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 20, "{created}");

    let shown = api.get(&t, &format!("/api/v1/snapshots/{id}/")).await;
    assert_eq!(shown.status, StatusCode::OK);
    let mut expected = r.body.clone();
    expected.as_object_mut().unwrap().remove("message");
    assert_eq!(shown.body, expected);

    let second = api.snapshot(&t, 12345, "second").await;
    let list = api.get(&t, "/api/v1/snapshots/?server_id=12345").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["count"], 2);
    assert_eq!(list.body["next"], Value::Null);
    assert_eq!(list.body["previous"], Value::Null);
    let ids: Vec<u64> = list.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![second, id], "newest first");
    assert_eq!(list.body["results"][1], expected);

    let p = api
        .patch(
            &t,
            &format!("/api/v1/snapshots/{id}/"),
            json!({"name": "renamed", "description": "new words"}),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(p.body["name"], "renamed");
    assert_eq!(p.body["description"], "new words");
    assert_eq!(p.body["id"], id);
    let clash = api
        .patch(
            &t,
            &format!("/api/v1/snapshots/{id}/"),
            json!({"name": "second"}),
        )
        .await;
    assert_field_error(&clash, "name");
    let engine = api.pool.snapshot(id).unwrap();
    assert_eq!(
        (engine.name.as_str(), engine.description.as_str()),
        ("renamed", "new words")
    );

    let d = api.delete(&t, &format!("/api/v1/snapshots/{id}/")).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    assert_eq!(d.body, Value::Null);
    assert!(api.pool.snapshot(id).is_err());
    let gone = api.get(&t, &format!("/api/v1/snapshots/{id}/")).await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
    let again = api.delete(&t, &format!("/api/v1/snapshots/{id}/")).await;
    assert_error(&again, StatusCode::NOT_FOUND, "not_found");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_validates_every_field() {
    let (api, t) = acme().await;
    let path = "/api/v1/snapshots/";
    let r = api.post(&t, path, json!({})).await;
    assert_field_error(&r, "server_id");
    assert_field_error(&r, "name");
    let r = api
        .post(&t, path, json!({"server_id": "abc", "name": "x"}))
        .await;
    assert_field_error(&r, "server_id");
    let r = api
        .post(&t, path, json!({"server_id": -1, "name": "x"}))
        .await;
    assert_field_error(&r, "server_id");
    let r = api
        .post(&t, path, json!({"server_id": 12345, "name": 7}))
        .await;
    assert_field_error(&r, "name");
    for bad in ["", "has space", "semi;colon", "é", &"x".repeat(65)] {
        let r = api
            .post(&t, path, json!({"server_id": 12345, "name": bad}))
            .await;
        assert_field_error(&r, "name");
    }
    let r = api
        .post(
            &t,
            path,
            json!({"server_id": 12345, "name": &"x".repeat(64)}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "64 characters are allowed");
    let r = api
        .post(
            &t,
            path,
            json!({"server_id": 12345, "name": "ok", "description": 5}),
        )
        .await;
    assert_field_error(&r, "description");
    let r = api
        .post(
            &t,
            path,
            json!({"server_id": 12345, "name": "ok", "description": "d".repeat(4097)}),
        )
        .await;
    assert_field_error(&r, "description");
    let r = api.post(&t, path, json!([1, 2])).await;
    assert_field_error(&r, "non_field_errors");

    api.snapshot(&t, 12345, "taken").await;
    let r = api
        .post(&t, path, json!({"server_id": 12345, "name": "taken"}))
        .await;
    assert_field_error(&r, "name");
    let r = api
        .post(&t, path, json!({"server_id": 999, "name": "x"}))
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(api.pool.list_snapshots(None).unwrap().len(), 2);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixth_snapshot_is_refused() {
    let (api, t) = acme().await;
    for i in 0..5 {
        api.snapshot(&t, 12345, &format!("s{i}")).await;
    }
    let r = api
        .post(
            &t,
            "/api/v1/snapshots/",
            json!({"server_id": 12345, "name": "s5"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "snapshot_limit_reached");
    assert_eq!(r.body["limit"], 5);
    let server = api.get(&t, "/api/v1/servers/12345/").await;
    assert_eq!(server.body["snapshot_count"], 5);
    assert_eq!(server.body["snapshot_limit"], 5);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_fill_exactly_the_free_slots() {
    let (api, t) = acme().await;
    for i in 0..3 {
        api.snapshot(&t, 12345, &format!("old{i}")).await;
    }
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (http, url, t) = (api.http.clone(), api.url.clone(), t.clone());
        racers.spawn(async move {
            let body = json!({"server_id": 12345, "name": format!("race{i}")});
            let r = http
                .post(format!("{url}/api/v1/snapshots/"))
                .bearer_auth(t)
                .json(&body)
                .send()
                .await
                .unwrap();
            reply(r).await
        });
    }
    let replies = racers.join_all().await;
    let won = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(won, 2, "exactly the two free slots are taken");
    for r in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_error(r, StatusCode::BAD_REQUEST, "snapshot_limit_reached");
    }
    let volume_snaps = api.pool.list_snapshots(Some("srv-12345")).unwrap();
    assert_eq!(volume_snaps.len(), 5);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_brings_back_the_bytes_and_leaves_the_server_stopped() {
    let (api, t) = acme().await;
    let vol = api.pool.volume("srv-12345").unwrap();
    let before = vec![0xA5u8; 3 * BLOCK as usize];
    vol.write_at(&before, 5 * BLOCK).unwrap();
    vol.flush().unwrap();
    let id = api.snapshot(&t, 12345, "good").await;
    let after = vec![0x5Au8; 3 * BLOCK as usize];
    vol.write_at(&after, 5 * BLOCK).unwrap();
    vol.write_at(b"new data past the snapshot", 40 * BLOCK)
        .unwrap();
    vol.flush().unwrap();
    assert_eq!(
        api.get(&t, "/api/v1/servers/12345/").await.body["status"],
        "running"
    );

    let r = api
        .call(
            Method::POST,
            Some(&t),
            &format!("/api/v1/snapshots/{id}/restore/"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "success");
    assert!(r.body["message"].is_string());
    assert_eq!(r.body["snapshot"]["id"], id);
    assert_eq!(r.body["snapshot"]["name"], "good");
    assert!(r.body["snapshot"]["created_at"].is_string());
    assert_eq!(
        r.body["server"],
        json!({"id": 12345, "name": "web-server-01", "status": "stopped"})
    );

    let mut read = vec![0u8; before.len()];
    vol.read_at(&mut read, 5 * BLOCK).unwrap();
    assert_eq!(read, before, "the snapshot's bytes are back");
    let mut tail = vec![0xFFu8; 26];
    vol.read_at(&mut tail, 40 * BLOCK).unwrap();
    assert_eq!(
        tail,
        vec![0u8; 26],
        "data written after the snapshot is gone"
    );
    let server = api.get(&t, "/api/v1/servers/12345/").await;
    assert_eq!(server.body["status"], "stopped");
    assert!(api.pool.snapshot(id).is_ok(), "the snapshot stays");

    let missing = api
        .call(
            Method::POST,
            Some(&t),
            "/api/v1/snapshots/999/restore/",
            None,
            &[],
        )
        .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_is_refused_while_the_server_is_busy() {
    let (api, t) = acme().await;
    let id = api.snapshot(&t, 12345, "s").await;
    let hold = api.svc.hold_server(12345).unwrap();
    let r = api
        .call(
            Method::POST,
            Some(&t),
            &format!("/api/v1/snapshots/{id}/restore/"),
            None,
            &[],
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "server_busy");
    assert_eq!(
        api.get(&t, "/api/v1/servers/12345/").await.body["status"],
        "running",
        "a refused restore does not stop the server"
    );
    drop(hold);
    let r = api
        .call(
            Method::POST,
            Some(&t),
            &format!("/api/v1/snapshots/{id}/restore/"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_frees_the_blocks_only_the_snapshot_held() {
    let (api, t) = acme().await;
    let vol = api.pool.volume("srv-12345").unwrap();
    vol.write_at(&vec![1u8; MIB as usize], 0).unwrap();
    vol.flush().unwrap();
    let id = api.snapshot(&t, 12345, "old").await;
    let r = api.get(&t, &format!("/api/v1/snapshots/{id}/")).await;
    assert_eq!(r.body["size_mb"], 1);
    // Overwriting moves the live disk to new blocks; the old ones are the snapshot's alone.
    vol.write_at(&vec![2u8; MIB as usize], 0).unwrap();
    vol.flush().unwrap();
    let used = api.pool.stats().used_blocks;
    let d = api.delete(&t, &format!("/api/v1/snapshots/{id}/")).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    assert_eq!(api.pool.stats().used_blocks, used - MIB / BLOCK);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_like_drf() {
    let (api, t) = acme().await;
    api.server("acme", 2, "db", 64 * MIB);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(api.snapshot(&t, 12345, &format!("a{i}")).await);
        ids.push(api.snapshot(&t, 2, &format!("b{i}")).await);
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut next = format!("{}/api/v1/snapshots/?page_size=3", api.url);
    let mut pages = 0;
    while let Value::String(url) = {
        let r = api.get(&t, &next).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["count"], 10);
        pages += 1;
        if pages > 1 {
            assert!(r.body["previous"].is_string());
        }
        for s in r.body["results"].as_array().unwrap() {
            seen.push(s["id"].as_u64().unwrap());
        }
        r.body["next"].clone()
    } {
        next = url;
    }
    assert_eq!(pages, 4);
    assert_eq!(seen, ids, "every snapshot once, newest first");

    let only = api.get(&t, "/api/v1/snapshots/?server_id=2").await;
    assert_eq!(only.body["count"], 5);
    assert!(only.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["server"]["id"] == 2));
    let r = api.get(&t, "/api/v1/snapshots/?server_id=abc").await;
    assert_field_error(&r, "server_id");
    let r = api.get(&t, "/api/v1/snapshots/?server_id=1.5").await;
    assert_field_error(&r, "server_id");
    let r = api.get(&t, "/api/v1/snapshots/?server_id=777").await;
    assert_eq!(
        (r.status, r.body["count"].clone()),
        (StatusCode::OK, json!(0))
    );
    let r = api.get(&t, "/api/v1/snapshots/?page=5&page_size=3").await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = api.get(&t, "/api/v1/snapshots/?page=zero").await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = api.get(&t, "/api/v1/snapshots/?page_size=1000").await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 10);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_replays_the_first_create() {
    let (api, t) = acme().await;
    let body = json!({"server_id": 12345, "name": "nightly"});
    let key = [("Idempotency-Key", "create-1")];
    let post = |b: Value, k: &'static str| {
        let api = &api;
        let t = t.clone();
        async move {
            api.call(
                Method::POST,
                Some(&t),
                "/api/v1/snapshots/",
                Some(&b),
                &[("Idempotency-Key", k)],
            )
            .await
        }
    };
    let first = api
        .call(
            Method::POST,
            Some(&t),
            "/api/v1/snapshots/",
            Some(&body),
            &key,
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = post(body.clone(), "create-1").await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        api.pool.list_snapshots(None).unwrap().len(),
        1,
        "no duplicate"
    );

    let other = post(json!({"server_id": 12345, "name": "different"}), "create-1").await;
    assert_error(
        &other,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    assert_eq!(api.pool.list_snapshots(None).unwrap().len(), 1);

    // A failure is not remembered: after fixing the cause, the same key works.
    let taken = post(json!({"server_id": 12345, "name": "nightly"}), "create-2").await;
    assert_field_error(&taken, "name");
    let id = first.body["id"].as_u64().unwrap();
    let renamed = api
        .patch(
            &t,
            &format!("/api/v1/snapshots/{id}/"),
            json!({"name": "renamed"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK);
    let fixed = post(json!({"server_id": 12345, "name": "nightly"}), "create-2").await;
    assert_eq!(fixed.status, StatusCode::CREATED, "{}", fixed.body);

    // Keys belong to the account that used them.
    let t2 = api.account("other");
    api.server("other", 7, "box", MIB);
    let theirs = api
        .call(
            Method::POST,
            Some(&t2),
            "/api/v1/snapshots/",
            Some(&json!({"server_id": 7, "name": "nightly"})),
            &key,
        )
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{}", theirs.body);
    assert_eq!(theirs.header("idempotent-replayed"), None);

    let long = "k".repeat(256);
    let r = api
        .call(
            Method::POST,
            Some(&t),
            "/api/v1/snapshots/",
            Some(&body),
            &[("Idempotency-Key", &long)],
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_idempotency_key");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_does_not_restore_twice() {
    let (api, t) = acme().await;
    let vol = api.pool.volume("srv-12345").unwrap();
    vol.write_at(b"first", 0).unwrap();
    vol.flush().unwrap();
    let id = api.snapshot(&t, 12345, "s").await;
    let path = format!("/api/v1/snapshots/{id}/restore/");
    let key = [("Idempotency-Key", "restore-1")];
    let first = api.call(Method::POST, Some(&t), &path, None, &key).await;
    assert_eq!(first.status, StatusCode::OK);
    vol.write_at(b"later", 0).unwrap();
    vol.flush().unwrap();
    let retry = api.call(Method::POST, Some(&t), &path, None, &key).await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    let mut buf = [0u8; 5];
    vol.read_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"later", "the retry did not restore again");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_in_flight_is_a_conflict() {
    let (api, t) = acme().await;
    let snap = api.snapshot(&t, 12345, "s").await;
    let hold = api.svc.hold_server(12345).unwrap();
    // This create waits on the held server, its key in flight.
    let (http, url, t2) = (api.http.clone(), api.url.clone(), t.clone());
    let first = tokio::spawn(async move {
        let r = http
            .post(format!("{url}/api/v1/snapshots/"))
            .bearer_auth(t2)
            .header("Idempotency-Key", "slow")
            .json(&json!({"server_id": 12345, "name": "slow"}))
            .send()
            .await
            .unwrap();
        reply(r).await
    });
    // Wait until the create has claimed its key (bounded, so a bug fails
    // the test instead of hanging it; nothing asserts on the time taken).
    for _ in 0..10_000 {
        if api.svc.idempotency_keys_in_flight() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert_eq!(api.svc.idempotency_keys_in_flight(), 1);
    // The same key on another request while the first runs: 409, whatever the request.
    let probe = format!("/api/v1/snapshots/{snap}/restore/");
    let conflict = api
        .call(
            Method::POST,
            Some(&t),
            &probe,
            None,
            &[("Idempotency-Key", "slow")],
        )
        .await;
    assert_error(&conflict, StatusCode::CONFLICT, "idempotency_key_in_use");
    drop(hold);
    let first = first.await.unwrap();
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let replay = api
        .call(
            Method::POST,
            Some(&t),
            "/api/v1/snapshots/",
            Some(&json!({"server_id": 12345, "name": "slow"})),
            &[("Idempotency-Key", "slow")],
        )
        .await;
    assert_eq!(replay.body, first.body);
    api.stop().await;
}

/// A client that disconnects while its keyed create waits cancels neither
/// the create nor the recording of its answer: the key stays claimed until
/// both are committed, and the retry gets the first answer, not a second
/// snapshot or a "name already exists".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_survives_a_client_disconnect() {
    use tokio::io::AsyncWriteExt;
    let (api, t) = acme().await;
    let hold = api.svc.hold_server(12345).unwrap();
    let body = r#"{"server_id": 12345, "name": "nightly"}"#;
    let request = format!(
        "POST /api/v1/snapshots/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\n\
         Content-Type: application/json\r\nIdempotency-Key: cut-1\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let addr = api.url.trim_start_matches("http://").to_string();
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client.write_all(request.as_bytes()).await.unwrap();
    wait_until(|| api.svc.idempotency_keys_in_flight() == 1).await;
    drop(client);
    // Time for the server to see the closed connection and drop the handler.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        api.svc.idempotency_keys_in_flight(),
        1,
        "the key stays claimed while its create waits"
    );
    drop(hold);
    wait_until(|| api.svc.idempotency_keys_in_flight() == 0).await;
    assert_eq!(api.pool.list_snapshots(None).unwrap().len(), 1);

    let retry = api
        .call(
            Method::POST,
            Some(&t),
            "/api/v1/snapshots/",
            Some(&serde_json::from_str(body).unwrap()),
            &[("Idempotency-Key", "cut-1")],
        )
        .await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body["name"], "nightly");
    let snaps = api.pool.list_snapshots(None).unwrap();
    assert_eq!(snaps.len(), 1, "no duplicate");
    assert_eq!(retry.body["id"], snaps[0].id);
    api.stop().await;
}

/// While a restore runs, its server says `restoring`, and every other
/// operation on the server is refused as busy and changes nothing; after
/// it the server is stopped. Caught in the restore's own commit (server
/// stopped beforehand).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_in_progress_shows_and_keeps_the_server_busy() {
    restore_in_progress_is_busy(true).await;
}

/// The same, caught in the automatic stop a restore of a running server
/// begins with: that is part of the restore too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stop_a_restore_begins_with_already_keeps_the_server_busy() {
    restore_in_progress_is_busy(false).await;
}

async fn restore_in_progress_is_busy(stop_first: bool) {
    let api = Api::on_sim().await;
    let t = api.account("acme");
    api.server("acme", 1, "web", MIB);
    let snap = api.snapshot(&t, 1, "s").await;
    let other = api.snapshot(&t, 1, "t").await;
    if stop_first {
        // The restore's first sync is then its own commit.
        let r = api
            .call(Method::POST, Some(&t), "/api/v1/servers/1/stop/", None, &[])
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let hold = SyncHold::arm(api.disk.as_ref().unwrap());
    let (http, url, t2) = (api.http.clone(), api.url.clone(), t.clone());
    let restore = tokio::spawn(async move {
        let r = http
            .post(format!("{url}/api/v1/snapshots/{snap}/restore/"))
            .bearer_auth(t2)
            .send()
            .await
            .unwrap();
        reply(r).await
    });
    wait_until(|| hold.holding()).await;

    let shown = api.get(&t, "/api/v1/servers/1/").await;
    assert_eq!(shown.body["status"], "restoring", "{}", shown.body);
    let listed = api.get(&t, "/api/v1/servers/").await;
    assert_eq!(listed.body["results"][0]["status"], "restoring");
    let s = format!("/api/v1/snapshots/{other}/");
    let busy = [
        api.post(
            &t,
            "/api/v1/snapshots/",
            json!({"server_id": 1, "name": "x"}),
        )
        .await,
        api.patch(&t, &s, json!({"name": "renamed"})).await,
        api.delete(&t, &s).await,
        api.call(Method::POST, Some(&t), &format!("{s}restore/"), None, &[])
            .await,
        api.call(
            Method::POST,
            Some(&t),
            "/api/v1/servers/1/start/",
            None,
            &[],
        )
        .await,
        api.call(Method::POST, Some(&t), "/api/v1/servers/1/stop/", None, &[])
            .await,
        api.delete(&api.admin, "/api/v1/admin/servers/1/").await,
    ];
    for r in &busy {
        assert_error(r, StatusCode::BAD_REQUEST, "server_busy");
    }
    drop(hold);
    let restored = restore.await.unwrap();
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.body);
    assert_eq!(restored.body["server"]["status"], "stopped");
    assert_eq!(
        api.get(&t, "/api/v1/servers/1/").await.body["status"],
        "stopped"
    );
    let names: Vec<String> = api
        .pool
        .list_snapshots(None)
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["t", "s"], "the busy answers changed nothing");
    assert!(api.pool.volume_info("srv-1").is_ok());
    api.stop().await;
}

/// Expired idempotency records go while the service runs, not only at
/// startup: the periodic prune removes them from the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_idempotency_records_are_pruned_while_running() {
    let api = Api::start_with(Setup {
        settings: Settings {
            idempotency_ttl_secs: 0,
        },
        options: Some(ServeOptions {
            prune_interval: std::time::Duration::from_millis(50),
            ..ServeOptions::default()
        }),
        ..Setup::default()
    })
    .await;
    let t = api.account("acme");
    api.server("acme", 1, "web", MIB);
    let key = [("Idempotency-Key", "nightly")];
    let body = json!({"server_id": 1, "name": "a"});
    let r = api
        .call(
            Method::POST,
            Some(&t),
            "/api/v1/snapshots/",
            Some(&body),
            &key,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // A record is older than a TTL of 0 once the clock's second turns.
    wait_until(|| api.svc.idempotency_records() == 0).await;
    let other = json!({"server_id": 1, "name": "b"});
    let r = api
        .call(
            Method::POST,
            Some(&t),
            "/api/v1/snapshots/",
            Some(&other),
            &key,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "the expired key is free for a new request: {}",
        r.body
    );
    api.stop().await;
}
