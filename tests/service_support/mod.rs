//! The service on an ephemeral loopback port, in this process, against a
//! pool the test also holds; and a real HTTP client to talk to it.

#![allow(dead_code)]

use cowsnap::service::{run, Disk, NewServer, Service};
use cowsnap::Pool;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const BLOCK: u64 = 4096;

pub struct Api {
    pub url: String,
    pub pool: Pool,
    pub svc: Arc<Service>,
    pub admin: String,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: TempDir,
}

/// A response: status, headers, and the body as JSON (Null when empty).
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Api {
    pub async fn start() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::create(dir.path().join("pool"), BLOCK as u32).unwrap();
        let svc = Arc::new(Service::open(pool.clone()).unwrap());
        let admin = svc.ensure_admin().unwrap().expect("first run").token;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let served = tokio::spawn(run::serve(svc.clone(), listener, async {
            let _ = rx.await;
        }));
        Api {
            url,
            pool,
            svc,
            admin,
            http: reqwest::Client::new(),
            stop: Some(tx),
            served: Some(served),
            _dir: dir,
        }
    }

    /// Stop serving and wait until in-flight requests are done.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.served.take() {
            h.await.unwrap().unwrap();
        }
    }

    /// A new account and a token for it.
    pub fn account(&self, name: &str) -> String {
        self.svc.create_account(name).unwrap();
        self.svc.create_token(name).unwrap().token
    }

    /// A server of `account` with an empty disk of `size` bytes.
    pub fn server(&self, account: &str, id: u64, name: &str, size: u64) {
        self.svc
            .create_server(NewServer {
                id,
                name: name.into(),
                account: account.into(),
                disk: Disk::Size(size),
            })
            .unwrap();
    }

    pub async fn call(
        &self,
        method: Method,
        token: Option<&str>,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.url)
        };
        let mut req = self.http.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        reply(req.send().await.unwrap()).await
    }

    pub async fn get(&self, token: &str, path: &str) -> Reply {
        self.call(Method::GET, Some(token), path, None, &[]).await
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> Reply {
        self.call(Method::POST, Some(token), path, Some(&body), &[])
            .await
    }

    pub async fn patch(&self, token: &str, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, Some(token), path, Some(&body), &[])
            .await
    }

    pub async fn delete(&self, token: &str, path: &str) -> Reply {
        self.call(Method::DELETE, Some(token), path, None, &[])
            .await
    }

    /// Create a snapshot through the API, expecting success; its id.
    pub async fn snapshot(&self, token: &str, server: u64, name: &str) -> u64 {
        let r = self
            .post(
                token,
                "/api/v1/snapshots/",
                serde_json::json!({"server_id": server, "name": name}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_u64().unwrap()
    }
}

pub async fn reply(r: reqwest::Response) -> Reply {
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{status}: body is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// Assert a `{"detail", "code"}` error with this status and code.
pub fn assert_error(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["code"], code, "{}", r.body);
    assert!(r.body["detail"].is_string(), "{}", r.body);
}

/// Assert a DRF field error naming `field`.
pub fn assert_field_error(r: &Reply, field: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let messages = r.body[field]
        .as_array()
        .unwrap_or_else(|| panic!("no errors for {field}: {}", r.body));
    assert!(!messages.is_empty() && messages.iter().all(Value::is_string));
}
