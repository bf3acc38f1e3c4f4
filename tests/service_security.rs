//! Authentication, tenant isolation, and hostile or malformed requests,
//! slow clients included: none can hold a worker or a shutdown for ever.

mod service_support;

use cowsnap::service::run::{Ending, ServeOptions};
use reqwest::{Method, StatusCode};
use serde_json::json;
use service_support::{assert_error, Api, Setup};
use std::io::{Read, Write};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// Authentication comes first on every known route: without a valid token
/// a wrong method is 401, not 405, and a declared oversize body is 401, not
/// 413; a tenant on an admin route is 403 before 405. Unknown routes stay
/// 404 for everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_comes_before_method_and_body_checks() {
    let api = Api::start().await;
    let t = api.account("acme");
    let bad = format!("csk_{}", "0".repeat(64));
    for path in cowsnap::service::http::route_paths() {
        let concrete = path.replace("{id}", "1").replace("{name}", "acme");
        for token in [None, Some(bad.as_str())] {
            let r = api.call(Method::PUT, token, &concrete, None, &[]).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "PUT {path} {token:?}");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
            let raw = raw_request(
                &api.url,
                format!(
                    "POST {concrete} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                     Content-Length: 100000\r\nConnection: close\r\n\r\n{{}}"
                )
                .as_bytes(),
            )
            .await;
            assert!(raw.starts_with("HTTP/1.1 401"), "POST {path}: {raw}");
        }
        if path.starts_with("/api/v1/admin/") {
            let r = api.call(Method::PUT, Some(&t), &concrete, None, &[]).await;
            assert_error(&r, StatusCode::FORBIDDEN, "permission_denied");
        }
        let r = api
            .call(Method::PUT, Some(&api.admin), &concrete, None, &[])
            .await;
        assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
    for path in ["/api/v1/nothing/", "/api/v1/snapshots/1/x/", "/"] {
        let r = api.call(Method::PUT, None, path, None, &[]).await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    }
    api.stop().await;
}

/// Every operation that reads a body refuses one over 64 KiB (declared, or
/// found while reading a chunked one) with 413, and a body that is not JSON
/// with 415, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_body_route_refuses_oversize_and_non_json_bodies() {
    let api = Api::start().await;
    let t = api.account("acme");
    api.server("acme", 1, "web", 8 * MIB);
    let snap = api.snapshot(&t, 1, "s").await;
    let a = api.admin.clone();
    let routes: Vec<(&str, String, &str)> = vec![
        ("POST", "/api/v1/snapshots/".into(), t.as_str()),
        ("PATCH", format!("/api/v1/snapshots/{snap}/"), t.as_str()),
        (
            "POST",
            format!("/api/v1/snapshots/{snap}/restore/"),
            t.as_str(),
        ),
        ("POST", "/api/v1/servers/1/start/".into(), t.as_str()),
        ("POST", "/api/v1/servers/1/stop/".into(), t.as_str()),
        ("POST", "/api/v1/admin/accounts/".into(), a.as_str()),
        (
            "POST",
            "/api/v1/admin/accounts/acme/tokens/".into(),
            a.as_str(),
        ),
        ("POST", "/api/v1/admin/servers/".into(), a.as_str()),
    ];
    let big = format!(r#"{{"name": "{}"}}"#, "n".repeat(64 << 10));
    for (method, path, token) in &routes {
        let head = |extra: &str| {
            format!(
                "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nConnection: close\r\n{extra}\r\n"
            )
        };
        let declared = format!(
            "{}{big}",
            head(&format!("Content-Length: {}\r\n", big.len()))
        );
        let raw = raw_request(&api.url, declared.as_bytes()).await;
        assert!(raw.starts_with("HTTP/1.1 413"), "{method} {path}: {raw}");
        assert!(raw.contains("payload_too_large"), "{raw}");
        let mut chunked = head("Transfer-Encoding: chunked\r\n").into_bytes();
        for chunk in big.as_bytes().chunks(8192) {
            chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            chunked.extend_from_slice(chunk);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let raw = raw_request(&api.url, &chunked).await;
        assert!(
            raw.starts_with("HTTP/1.1 413"),
            "chunked {method} {path}: {raw}"
        );

        let r = api
            .http
            .request(method.parse().unwrap(), format!("{}{path}", api.url))
            .bearer_auth(token)
            .header("Content-Type", "text/plain")
            .body(r#"{"name": "x"}"#)
            .send()
            .await
            .unwrap();
        let r = service_support::reply(r).await;
        assert_error(
            &r,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
    }
    let servers = api.svc.list_all_servers();
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0].server.status, "running", "no start or stop ran");
    assert_eq!(api.svc.list_accounts().len(), 2);
    assert_eq!(api.svc.list_tokens("acme").unwrap().len(), 1);
    assert_eq!(api.pool.snapshot(snap).unwrap().name, "s");
    assert_eq!(api.pool.list_snapshots(None).unwrap().len(), 1);
    api.stop().await;
}

/// A client that stalls mid-body gets 408 once the body read timeout
/// passes, and its request does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_times_out() {
    let api = Api::start_with(Setup {
        options: Some(ServeOptions {
            body_read_timeout: Duration::from_millis(300),
            ..ServeOptions::default()
        }),
        ..Setup::default()
    })
    .await;
    let t = api.account("acme");
    api.server("acme", 1, "web", MIB);
    let body = r#"{"server_id": 1, "name": "slow"}"#;
    let head = format!(
        "POST /api/v1/snapshots/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..10]
    );
    let mut client = tokio::net::TcpStream::connect(api.url.trim_start_matches("http://"))
        .await
        .unwrap();
    client.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut answer))
        .await
        .expect("the service answers, not waits")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(api.pool.list_snapshots(None).unwrap().is_empty());
    api.stop().await;
}

/// A stop drains for at most the drain deadline: a request still in flight
/// then has its connection cut, and serving ends. A second stop request
/// ends it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_that_overruns_its_deadline_cuts_the_connection() {
    for second_request in [false, true] {
        let mut api = Api::start_with(Setup {
            options: Some(ServeOptions {
                drain_deadline: if second_request {
                    Duration::from_secs(3600)
                } else {
                    Duration::from_millis(300)
                },
                body_read_timeout: Duration::from_secs(3600),
                ..ServeOptions::default()
            }),
            ..Setup::default()
        })
        .await;
        let head = format!(
            "POST /api/v1/admin/accounts/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
            api.admin
        );
        let mut client = tokio::net::TcpStream::connect(api.url.trim_start_matches("http://"))
            .await
            .unwrap();
        client.write_all(head.as_bytes()).await.unwrap();
        // The request is being read when the stop comes.
        tokio::time::sleep(Duration::from_millis(300)).await;
        api.request_stop();
        if second_request {
            tokio::time::sleep(Duration::from_millis(100)).await;
            api.request_stop();
        }
        let ending = tokio::time::timeout(Duration::from_secs(10), api.ending())
            .await
            .expect("serving ends");
        let expected = if second_request {
            Ending::StoppedAtOnce { cut: 1 }
        } else {
            Ending::DeadlinePassed { cut: 1 }
        };
        assert_eq!(ending, expected);
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut rest))
            .await
            .expect("the client sees the connection end");
        assert!(
            read.is_err() || !String::from_utf8_lossy(&rest).contains("201"),
            "the cut request did not complete"
        );
        assert_eq!(api.svc.list_accounts().len(), 1, "only the admin account");
    }
}
