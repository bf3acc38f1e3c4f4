//! Authentication, tenant isolation, and hostile or malformed requests.

mod service_support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use service_support::{assert_error, Api};
use std::io::{Read, Write};

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_get_401_with_a_bearer_challenge() {
    let api = Api::start().await;
    let t = api.account("acme");
    let unknown = format!("csk_{}", "0".repeat(64));
    let path = "/api/v1/snapshots/";
    let forms: Vec<Option<String>> = vec![
        None,
        Some(String::new()),
        Some("Bearer".into()),
        Some(format!("Basic {t}")),
        Some(format!("Bearer {t} extra")),
        Some(format!("Token {t}")),
        Some("Bearer csk_short".into()),
        Some(format!("Bearer {unknown}")),
        Some(format!("Bearer {}", t.to_uppercase())),
    ];
    for auth in &forms {
        let mut req = api.http.get(format!("{}{path}", api.url));
        if let Some(a) = auth {
            req = req.header("Authorization", a.as_str());
        }
        let r = service_support::reply(req.send().await.unwrap()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{auth:?}");
        assert!(r.body["detail"].is_string(), "{auth:?}: {}", r.body);
    }
    // Non-ASCII bytes in the header are refused, not a panic.
    let raw = raw_request(
        &api.url,
        b"GET /api/v1/snapshots/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 401"), "{raw}");

    // The scheme is case-insensitive; the token itself is exact.
    let ok = api
        .http
        .get(format!("{}{path}", api.url))
        .header("Authorization", format!("bearer {t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);

    // Revoked tokens stop working at once.
    let id = api.svc.list_tokens("acme").unwrap()[0].id.clone();
    let r = api
        .delete(&api.admin, &format!("/api/v1/admin/tokens/{id}/"))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api.get(&t, path).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "authentication_failed");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_accounts_objects_are_404_everywhere() {
    let api = Api::start().await;
    let a = api.account("alice");
    let b = api.account("bob");
    api.server("alice", 100, "alice-web", 8 * MIB);
    api.server("bob", 200, "bob-web", 8 * MIB);
    let snap = api.snapshot(&a, 100, "mine").await;

    let not_found = |r: &service_support::Reply, what: &str| {
        assert_error(r, StatusCode::NOT_FOUND, "not_found");
        assert!(
            !r.body.to_string().contains("alice"),
            "{what} leaks: {}",
            r.body
        );
    };
    let s = format!("/api/v1/snapshots/{snap}/");
    not_found(&api.get(&b, &s).await, "show");
    not_found(&api.patch(&b, &s, json!({"name": "stolen"})).await, "patch");
    not_found(&api.delete(&b, &s).await, "delete");
    let restore = format!("{s}restore/");
    not_found(
        &api.call(Method::POST, Some(&b), &restore, None, &[]).await,
        "restore",
    );
    not_found(
        &api.post(
            &b,
            "/api/v1/snapshots/",
            json!({"server_id": 100, "name": "x"}),
        )
        .await,
        "create",
    );
    not_found(&api.get(&b, "/api/v1/servers/100/").await, "server");
    for action in ["start", "stop"] {
        let r = api
            .call(
                Method::POST,
                Some(&b),
                &format!("/api/v1/servers/100/{action}/"),
                None,
                &[],
            )
            .await;
        not_found(&r, action);
    }
    // A nonexistent object looks exactly the same.
    let foreign = api.get(&b, &s).await;
    let missing = api.get(&b, "/api/v1/snapshots/99999/").await;
    assert_eq!(foreign.body, missing.body);

    let list = api.get(&b, "/api/v1/snapshots/").await;
    assert_eq!(list.body["count"], 0);
    let list = api.get(&b, "/api/v1/snapshots/?server_id=100").await;
    assert_eq!(list.body["count"], 0);
    let servers = api.get(&b, "/api/v1/servers/").await;
    assert_eq!(servers.body["count"], 1);
    assert_eq!(servers.body["results"][0]["id"], 200);
    // Admin endpoints are not for tenants.
    let r = api.get(&b, "/api/v1/admin/servers/").await;
    assert_error(&r, StatusCode::FORBIDDEN, "permission_denied");

    // Alice's snapshot and server are untouched.
    let mine = api.get(&a, &s).await;
    assert_eq!(mine.body["name"], "mine");
    assert_eq!(
        api.get(&a, "/api/v1/servers/100/").await.body["status"],
        "running"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_and_media_types() {
    let api = Api::start().await;
    let t = api.account("acme");
    api.server("acme", 1, "web", 8 * MIB);
    let url = format!("{}/api/v1/snapshots/", api.url);
    let send = |body: Vec<u8>, content_type: Option<&str>| {
        let mut req = api.http.post(&url).bearer_auth(&t).body(body);
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        async move { service_support::reply(req.send().await.unwrap()).await }
    };
    let r = send(
        b"{\"server_id\": 1, \"name\": ".to_vec(),
        Some("application/json"),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "parse_error");
    let r = send(b"\xff\xfe".to_vec(), Some("application/json")).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "parse_error");
    let good = br#"{"server_id": 1, "name": "x"}"#.to_vec();
    let r = send(good.clone(), Some("text/plain")).await;
    assert_error(
        &r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let r = send(good.clone(), None).await;
    assert_error(
        &r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let r = send(good.clone(), Some("application/x-www-form-urlencoded")).await;
    assert_error(
        &r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let big = format!(
        r#"{{"server_id": 1, "name": "x", "description": "{}"}}"#,
        "d".repeat(64 << 10)
    );
    let r = send(big.clone().into_bytes(), Some("application/json")).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let r = send(good, Some("application/json; charset=utf-8")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // A chunked body declares no length: the limit applies while reading.
    let mut req = format!(
        "POST /api/v1/snapshots/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in big.as_bytes().chunks(8192) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let raw = raw_request(&api.url, &req).await;
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert_eq!(api.pool.list_snapshots(None).unwrap().len(), 1);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_405_404_and_optional_slashes() {
    let api = Api::start().await;
    let t = api.account("acme");
    api.server("acme", 1, "web", 8 * MIB);
    let snap = api.snapshot(&t, 1, "s").await;

    let r = api
        .call(Method::PUT, Some(&t), "/api/v1/snapshots/", None, &[])
        .await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET,HEAD,POST"));
    let r = api
        .call(
            Method::GET,
            Some(&t),
            &format!("/api/v1/snapshots/{snap}/restore/"),
            None,
            &[],
        )
        .await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("POST"));

    for path in [
        "/api/v1/nothing/",
        "/api/v2/snapshots/",
        "/",
        "/api/v1/snapshots/1/x/",
    ] {
        let r = api.get(&t, path).await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    }
    for path in [
        "/api/v1/snapshots/abc/",
        "/api/v1/snapshots/-1/",
        "/api/v1/servers/1.0/",
    ] {
        let r = api.get(&t, path).await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    }

    let with = api.get(&t, "/api/v1/snapshots/").await;
    let without = api.get(&t, "/api/v1/snapshots").await;
    assert_eq!(without.status, StatusCode::OK);
    assert_eq!(with.body, without.body);
    let r = api.get(&t, &format!("/api/v1/snapshots/{snap}")).await;
    assert_eq!(r.body["id"], snap);
    let r = api.get(&t, "/api/v1/servers/1").await;
    assert_eq!(r.body["id"], 1);
    let r = api
        .call(
            Method::POST,
            Some(&t),
            &format!("/api/v1/snapshots/{snap}/restore"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = api.delete(&t, &format!("/api/v1/snapshots/{snap}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    api.stop().await;
}

/// Send raw bytes over one connection and return the whole answer as text
/// (on a blocking thread, so the server's workers stay free).
async fn raw_request(base: &str, request: &[u8]) -> String {
    let addr = base.trim_start_matches("http://").to_string();
    let request = request.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        // The server may answer and close before reading all of an oversized body.
        let _ = stream.write_all(&request);
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .unwrap()
}
