//! The service on an ephemeral loopback port, in this process, against a
//! pool the test also holds; and a real HTTP client to talk to it.

#![allow(dead_code)]

use cowsnap::service::run::{self, Ending, ServeOptions, StopSender};
use cowsnap::service::{Disk, NewServer, Service, Settings};
use cowsnap::storage::sim::SimDisk;
use cowsnap::Pool;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use tempfile::TempDir;

pub const BLOCK: u64 = 4096;

pub struct Api {
    pub url: String,
    pub pool: Pool,
    pub svc: Arc<Service>,
    pub admin: String,
    pub http: reqwest::Client,
    /// The simulated disk under the pool, for pools made by [`Api::on_sim`].
    pub disk: Option<SimDisk>,
    stop: StopSender,
    served: Option<tokio::task::JoinHandle<std::io::Result<Ending>>>,
    _dir: TempDir,
}

/// Where the pool lives and how the service is set up.
#[derive(Default, Clone)]
pub struct Setup {
    /// On a simulated disk in memory instead of a file.
    pub sim: bool,
    pub settings: Settings,
    pub options: Option<ServeOptions>,
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
    /// The service on a pool in a file, with the defaults.
    pub async fn start() -> Api {
        Api::start_with(Setup::default()).await
    }

    /// The service on a pool on a simulated disk, whose syncs a test can
    /// hold or fail.
    pub async fn on_sim() -> Api {
        Api::start_with(Setup {
            sim: true,
            ..Setup::default()
        })
        .await
    }

    pub async fn start_with(setup: Setup) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let (pool, disk) = if setup.sim {
            let disk = SimDisk::new();
            let pool = Pool::create_in(Arc::new(disk.clone()), BLOCK as u32).unwrap();
            (pool, Some(disk))
        } else {
            let pool = Pool::create(dir.path().join("pool"), BLOCK as u32).unwrap();
            (pool, None)
        };
        let svc = Arc::new(Service::open_with(pool.clone(), setup.settings).unwrap());
        let admin = svc.ensure_admin().unwrap().expect("first run").token;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, requests) = run::stop_channel();
        let options = setup.options.unwrap_or_default();
        let served = tokio::spawn(run::serve_with(svc.clone(), listener, requests, options));
        Api {
            url,
            pool,
            svc,
            admin,
            http: reqwest::Client::new(),
            disk,
            stop,
            served: Some(served),
            _dir: dir,
        }
    }

    /// Ask the service to stop, as a signal would (a second time: stop at once).
    pub fn request_stop(&self) {
        self.stop.request();
    }

    /// How serving ended, once it has.
    pub async fn ending(&mut self) -> Ending {
        let served = self.served.take().expect("not awaited yet");
        served.await.unwrap().unwrap()
    }

    /// Stop serving and wait until in-flight requests are done.
    pub async fn stop(mut self) {
        self.stop.request();
        assert_eq!(self.ending().await, Ending::Drained);
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

/// Poll `cond` until it holds; bounded, so a bug fails the test instead of
/// hanging it (nothing asserts on the time taken).
pub async fn wait_until(cond: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert!(cond(), "condition never held");
}

/// Holds the next engine commit in its sync, with no lock of the service's
/// held, until dropped: an operation caught there is mid-commit for as long
/// as a test needs. Needs an [`Api::on_sim`].
pub struct SyncHold {
    gate: Arc<(std::sync::Mutex<(bool, bool)>, std::sync::Condvar)>,
}

impl SyncHold {
    /// Arm the hold: the next sync on the disk waits.
    pub fn arm(disk: &SimDisk) -> SyncHold {
        // (a sync is waiting, released)
        let gate = Arc::new((
            std::sync::Mutex::new((false, false)),
            std::sync::Condvar::new(),
        ));
        let hook = gate.clone();
        disk.before_sync(move |_| {
            let (lock, cv) = &*hook;
            let mut state = lock.lock().unwrap();
            if state.1 {
                return;
            }
            state.0 = true;
            cv.notify_all();
            while !state.1 {
                state = cv.wait(state).unwrap();
            }
        });
        SyncHold { gate }
    }

    /// Whether a sync is waiting in the hold now.
    pub fn holding(&self) -> bool {
        self.gate.0.lock().unwrap().0
    }
}

impl Drop for SyncHold {
    fn drop(&mut self) {
        let (lock, cv) = &*self.gate;
        lock.lock().unwrap().1 = true;
        cv.notify_all();
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
