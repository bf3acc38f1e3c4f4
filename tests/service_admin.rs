//! Servers and their power state and paging, the admin endpoints, and the
//! no-op. The OpenAPI document is checked in `service_openapi.rs`.

mod service_support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use service_support::{assert_error, assert_field_error, Api};

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_list_show_stop_and_start() {
    let api = Api::start().await;
    let t = api.account("acme");
    api.server("acme", 12345, "web-server-01", 64 * MIB);
    api.server("acme", 2, "db", 8 * MIB);
    api.snapshot(&t, 12345, "s").await;

    let list = api.get(&t, "/api/v1/servers/").await;
    assert_eq!(list.body["count"], 2);
    let show = api.get(&t, "/api/v1/servers/12345/").await;
    assert_eq!(
        show.body,
        json!({"id": 12345, "name": "web-server-01", "status": "running",
               "disk_size_bytes": 64 * MIB, "snapshot_count": 1, "snapshot_limit": 5})
    );
    let stop = api
        .call(
            Method::POST,
            Some(&t),
            "/api/v1/servers/12345/stop/",
            None,
            &[],
        )
        .await;
    assert_eq!(stop.status, StatusCode::OK);
    assert_eq!(stop.body["server"]["status"], "stopped");
    let again = api
        .call(
            Method::POST,
            Some(&t),
            "/api/v1/servers/12345/stop/",
            None,
            &[],
        )
        .await;
    assert_eq!(
        again.body["server"]["status"], "stopped",
        "stopping is idempotent"
    );
    assert_eq!(
        api.get(&t, "/api/v1/servers/12345/").await.body["status"],
        "stopped"
    );
    let start = api
        .call(
            Method::POST,
            Some(&t),
            "/api/v1/servers/12345/start/",
            None,
            &[],
        )
        .await;
    assert_eq!(start.body["server"]["status"], "running");
    let bad = api
        .post(&t, "/api/v1/servers/12345/start/", json!("not an object"))
        .await;
    assert_field_error(&bad, "non_field_errors");
    let r = api
        .call(
            Method::POST,
            Some(&t),
            "/api/v1/servers/9/start/",
            None,
            &[],
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_manages_accounts_tokens_and_servers() {
    let api = Api::start().await;
    let a = api.admin.clone();
    let r = api
        .post(&a, "/api/v1/admin/accounts/", json!({"name": "newco"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["name"], "newco");
    let dup = api
        .post(&a, "/api/v1/admin/accounts/", json!({"name": "newco"}))
        .await;
    assert_field_error(&dup, "name");
    let bad = api
        .post(&a, "/api/v1/admin/accounts/", json!({"name": "no spaces"}))
        .await;
    assert_field_error(&bad, "name");
    let accounts = api.get(&a, "/api/v1/admin/accounts/").await;
    let names: Vec<&str> = accounts.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "newco"]);

    let tok = api
        .call(
            Method::POST,
            Some(&a),
            "/api/v1/admin/accounts/newco/tokens/",
            None,
            &[],
        )
        .await;
    assert_eq!(tok.status, StatusCode::CREATED, "{}", tok.body);
    let secret = tok.body["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("csk_") && secret.len() == 68, "{secret}");
    let token_id = tok.body["id"].as_str().unwrap().to_string();
    let r = api
        .call(
            Method::POST,
            Some(&a),
            "/api/v1/admin/accounts/nobody/tokens/",
            None,
            &[],
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let listed = api.get(&a, "/api/v1/admin/accounts/newco/tokens/").await;
    assert_eq!(listed.body["results"][0]["id"], token_id.as_str());
    assert!(
        !listed.body.to_string().contains(&secret),
        "secrets are never listed"
    );

    let create = json!({"id": 77, "name": "newco-web", "account": "newco", "size_bytes": 16 * MIB});
    let r = api.post(&a, "/api/v1/admin/servers/", create.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["account"], "newco");
    assert_eq!(r.body["disk_size_bytes"], 16 * MIB);
    assert_eq!(api.pool.volume_info("srv-77").unwrap().size_bytes, 16 * MIB);
    assert_field_error(&api.post(&a, "/api/v1/admin/servers/", create).await, "id");
    let neither = json!({"id": 78, "name": "x", "account": "newco"});
    assert_field_error(
        &api.post(&a, "/api/v1/admin/servers/", neither).await,
        "non_field_errors",
    );
    let nobody = json!({"id": 78, "name": "x", "account": "ghost", "size_bytes": MIB});
    assert_field_error(
        &api.post(&a, "/api/v1/admin/servers/", nobody).await,
        "account",
    );
    let zero = json!({"id": 0, "name": "x", "account": "newco", "size_bytes": MIB});
    assert_field_error(&api.post(&a, "/api/v1/admin/servers/", zero).await, "id");

    // From a raw image on the host: the disk holds the image's bytes.
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.raw");
    let mut bytes = vec![0u8; 2 * MIB as usize];
    bytes[..11].copy_from_slice(b"boot sector");
    std::fs::write(&image, &bytes).unwrap();
    let from_image = json!({"id": 79, "name": "imaged", "account": "newco",
                            "image_path": image.to_str().unwrap()});
    let r = api.post(&a, "/api/v1/admin/servers/", from_image).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["disk_size_bytes"], 2 * MIB);
    let mut head = [0u8; 11];
    api.pool
        .volume("srv-79")
        .unwrap()
        .read_at(&mut head, 0)
        .unwrap();
    assert_eq!(&head, b"boot sector");
    let missing = json!({"id": 80, "name": "x", "account": "newco", "image_path": "/no/such/file"});
    assert_field_error(
        &api.post(&a, "/api/v1/admin/servers/", missing).await,
        "image_path",
    );

    // The new token works, and sees only its account's servers.
    let mine = api.get(&secret, "/api/v1/servers/").await;
    assert_eq!(mine.body["count"], 2);
    let snap = api.snapshot(&secret, 77, "s").await;

    // Deleting a server takes its disk and snapshots with it.
    let r = api.delete(&a, "/api/v1/admin/servers/77/").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(api.pool.volume_info("srv-77").is_err());
    assert!(api.pool.snapshot(snap).is_err());
    let r = api
        .get(&secret, &format!("/api/v1/snapshots/{snap}/"))
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = api.delete(&a, "/api/v1/admin/servers/77/").await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let all = api.get(&a, "/api/v1/admin/servers/").await;
    assert_eq!(all.body["count"], 1);

    // Revoke by id: the token stops working; unknown ids are 404.
    let r = api
        .delete(&a, &format!("/api/v1/admin/tokens/{token_id}/"))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get(&secret, "/api/v1/servers/").await.status,
        StatusCode::UNAUTHORIZED
    );
    for bad in ["tok_00000000", "tok_", "nonsense"] {
        let r = api
            .delete(&a, &format!("/api/v1/admin/tokens/{bad}/"))
            .await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_refuse_tenants() {
    let api = Api::start().await;
    let t = api.account("acme");
    let calls = [
        (Method::GET, "/api/v1/admin/accounts/"),
        (Method::POST, "/api/v1/admin/accounts/"),
        (Method::GET, "/api/v1/admin/accounts/acme/tokens/"),
        (Method::POST, "/api/v1/admin/accounts/acme/tokens/"),
        (Method::DELETE, "/api/v1/admin/tokens/tok_00000000/"),
        (Method::GET, "/api/v1/admin/servers/"),
        (Method::POST, "/api/v1/admin/servers/"),
        (Method::DELETE, "/api/v1/admin/servers/1/"),
    ];
    for (method, path) in calls {
        let r = api.call(method.clone(), Some(&t), path, None, &[]).await;
        assert_error(&r, StatusCode::FORBIDDEN, "permission_denied");
        let r = api.call(method, None, path, None, &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(api.svc.list_tokens("acme").unwrap().len(), 1);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_is_an_authenticated_no_op() {
    let api = Api::start().await;
    let t = api.account("acme");
    let r = api.get(&t, "/api/v1/ping/").await;
    assert_eq!(r.body, json!({"status": "ok", "account": "acme"}));
    let r = api
        .call(Method::GET, None, "/api/v1/ping/", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    api.stop().await;
}

/// The server list pages like the snapshot list, as DRF does: a page that
/// is not a positive integer or is past the end is 404, a bad page size
/// means the default, a large one the maximum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_list_pages_like_drf() {
    let api = Api::start().await;
    let t = api.account("acme");
    for id in 1..=3 {
        api.server("acme", id, &format!("s{id}"), MIB);
    }
    let r = api.get(&t, "/api/v1/servers/?page_size=2").await;
    assert_eq!(r.body["count"], 3);
    assert_eq!(r.body["results"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["previous"], serde_json::Value::Null);
    let next = r.body["next"].as_str().unwrap().to_string();
    assert!(
        next.ends_with("/api/v1/servers/?page=2&page_size=2"),
        "{next}"
    );
    let r = api.get(&t, &next).await;
    assert_eq!(r.body["results"][0]["id"], 3);
    assert_eq!(r.body["next"], serde_json::Value::Null);
    assert!(r.body["previous"].as_str().unwrap().contains("page=1"));
    for bad in [
        "page=0",
        "page=-1",
        "page=abc",
        "page=",
        "page=3&page_size=2",
        "page=2",
    ] {
        let r = api.get(&t, &format!("/api/v1/servers/?{bad}")).await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
        assert_eq!(r.body["detail"], "Invalid page.", "{bad}");
    }
    for size in ["abc", "0", "-5", ""] {
        let r = api
            .get(&t, &format!("/api/v1/servers/?page_size={size}"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{size}");
        assert_eq!(r.body["results"].as_array().unwrap().len(), 3, "{size}");
        assert_eq!(
            r.body["next"],
            serde_json::Value::Null,
            "{size}: the default size"
        );
    }
    let r = api.get(&t, "/api/v1/servers/?page_size=100000").await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 3);
    api.stop().await;
}
