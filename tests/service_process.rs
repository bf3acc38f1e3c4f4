//! `cowsnap serve` as a real process: first-run setup, the setup CLI,
//! restart persistence (idempotency keys included), refusing a second
//! instance, `--demo` refusing another account's server 12345, shutdown on
//! SIGTERM (requests in flight finish; a second signal stops at once) with
//! the pool closed cleanly, and request logs that never hold a token.

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_cowsnap");

/// A running `cowsnap serve` and what it printed before listening.
struct Serve {
    child: Child,
    url: String,
    lines: Vec<String>,
    stdout: Option<BufReader<ChildStdout>>,
}

impl Serve {
    fn start(pool: &Path, extra: &[&str]) -> Serve {
        let child = Command::new(BIN)
            .args(["serve", "--pool", pool.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Owned by the guard at once, so a failure below still reaps it.
        let mut serve = Serve {
            child,
            url: String::new(),
            lines: Vec::new(),
            stdout: None,
        };
        let mut stdout = BufReader::new(serve.child.stdout.take().unwrap());
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let mut err = String::new();
                let _ = serve.child.stderr.take().unwrap().read_to_string(&mut err);
                panic!("serve exited before listening: {:?} {err}", serve.lines);
            }
            let line = line.trim_end().to_string();
            if let Some(url) = line.strip_prefix("listening on ") {
                serve.url = url.to_string();
                // Kept open: the server must not see a closed stdout.
                serve.stdout = Some(stdout);
                return serve;
            }
            serve.lines.push(line);
        }
    }

    /// The value printed after `label` on a line before "listening".
    fn printed(&self, label: &str) -> Option<String> {
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(label).map(|v| v.trim().to_string()))
    }

    /// SIGTERM, then wait: returns the exit status's success and stderr.
    fn terminate(self) -> (bool, String) {
        self.signal();
        self.finish()
    }

    /// Send SIGTERM and return at once.
    fn signal(&self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Wait for the exit: its success and stderr.
    fn finish(mut self) -> (bool, String) {
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = self.child.wait().unwrap();
        (status.success(), err)
    }
}

impl Drop for Serve {
    /// A failed test must not leave a server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cli_ok(args: &[&str]) -> String {
    let (ok, out, err) = cli(args);
    assert!(ok, "{args:?}: {err}");
    out
}

async fn call(
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("cowsnap-data");
    let first = Serve::start(&pool, &["--demo"]);
    let admin = first
        .printed("admin token (shown once, store it now):")
        .unwrap();
    let demo = first.printed("demo token:").unwrap();
    assert!(admin.starts_with("csk_") && demo.starts_with("csk_"));
    let base = format!("{}/api/v1", first.url);
    let (s, snap) = call(
        reqwest::Method::POST,
        &format!("{base}/snapshots/"),
        &demo,
        Some(json!({"server_id": 12345, "name": "before-update-snapshot", "description": "kept"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{snap}");
    let (s, _) = call(
        reqwest::Method::POST,
        &format!("{base}/admin/accounts/"),
        &admin,
        Some(json!({"name": "later"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, tok) = call(
        reqwest::Method::POST,
        &format!("{base}/admin/accounts/later/tokens/"),
        &admin,
        None,
    )
    .await;
    let later = tok["token"].as_str().unwrap().to_string();
    let (_, tok2) = call(
        reqwest::Method::POST,
        &format!("{base}/admin/accounts/later/tokens/"),
        &admin,
        None,
    )
    .await;
    let revoked = tok2["token"].as_str().unwrap().to_string();
    let (s, _) = call(
        reqwest::Method::DELETE,
        &format!("{base}/admin/tokens/{}/", tok2["id"].as_str().unwrap()),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(
        reqwest::Method::POST,
        &format!("{base}/servers/12345/stop/"),
        &demo,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(
        reqwest::Method::GET,
        &format!("{base}/ping/?access_token={demo}"),
        &demo,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (ok, log) = first.terminate();
    assert!(ok, "{log}");
    assert!(log.contains("closed cleanly"), "{log}");
    // One line per request: method, path, status, latency; never a token,
    // not even one a client put in the query string.
    let line = log
        .lines()
        .find(|l| l.contains("path=/api/v1/snapshots/") && l.contains("status=201"))
        .unwrap_or_else(|| panic!("no request line: {log}"));
    assert!(line.contains("method=POST"), "{line}");
    assert!(line.contains("latency_ms="), "{line}");
    let ping = log
        .lines()
        .find(|l| l.contains("path=/api/v1/ping/"))
        .unwrap_or_else(|| panic!("no ping line: {log}"));
    assert!(
        ping.contains("method=GET") && ping.contains("status=200"),
        "{ping}"
    );
    for secret in [&admin, &demo, &later, &revoked] {
        assert!(!log.contains(secret.as_str()), "a token reached the log");
    }

    let second = Serve::start(&pool, &[]);
    assert_eq!(
        second.printed("admin token"),
        None,
        "the admin token is shown once"
    );
    let base = format!("{}/api/v1", second.url);
    let id = snap["id"].as_u64().unwrap();
    let (s, again) = call(
        reqwest::Method::GET,
        &format!("{base}/snapshots/{id}/"),
        &demo,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let mut expected = snap.clone();
    expected.as_object_mut().unwrap().remove("message");
    assert_eq!(again, expected);
    let (_, server) = call(
        reqwest::Method::GET,
        &format!("{base}/servers/12345/"),
        &demo,
        None,
    )
    .await;
    assert_eq!(server["status"], "stopped");
    assert_eq!(server["snapshot_count"], 1);
    let (s, _) = call(
        reqwest::Method::GET,
        &format!("{base}/servers/"),
        &later,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(
        reqwest::Method::GET,
        &format!("{base}/servers/"),
        &revoked,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (_, accounts) = call(
        reqwest::Method::GET,
        &format!("{base}/admin/accounts/"),
        &admin,
        None,
    )
    .await;
    assert_eq!(accounts["count"], 3);

    // While it runs, the pool is its alone.
    let (ok, _, err) = cli(&[
        "serve",
        "--pool",
        pool.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!ok);
    assert!(err.contains("locked"), "{err}");
    let (ok, _, err) = cli(&["account", "create", pool.to_str().unwrap(), "x"]);
    assert!(!ok && err.contains("locked"), "{err}");
    let (ok, log) = second.terminate();
    assert!(ok, "{log}");

    // --demo again: a fresh token, the same server, nothing duplicated.
    let third = Serve::start(&pool, &["--demo"]);
    let demo2 = third.printed("demo token:").unwrap();
    assert_ne!(demo2, demo);
    let (_, servers) = call(
        reqwest::Method::GET,
        &format!("{}/api/v1/servers/", third.url),
        &demo2,
        None,
    )
    .await;
    assert_eq!(servers["count"], 1);
    let (s, _) = call(
        reqwest::Method::GET,
        &format!("{}/api/v1/servers/", third.url),
        &demo,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "earlier demo tokens stay valid");
    assert!(third.terminate().0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_cli_prepares_a_pool_before_serving() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let p = pool.to_str().unwrap();
    cli_ok(&["init", p]);
    cli_ok(&["account", "create", p, "acme"]);
    let (ok, _, err) = cli(&["account", "create", p, "acme"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = cli(&["account", "create", p, "bad name"]);
    assert!(!ok && err.starts_with("cowsnap: error:"), "{err}");

    let token = cli_ok(&["token", "create", p, "--account", "acme"]);
    assert_eq!(
        token.lines().count(),
        1,
        "only the token on stdout: {token:?}"
    );
    let token = token.trim().to_string();
    assert!(token.starts_with("csk_") && token.len() == 68);
    let (ok, _, err) = cli(&["token", "create", p, "--account", "ghost"]);
    assert!(!ok && err.contains("not found"), "{err}");

    let server: Value = serde_json::from_str(&cli_ok(&[
        "server",
        "create",
        p,
        "--account",
        "acme",
        "--id",
        "12345",
        "--name",
        "web-server-01",
        "--size",
        "64M",
        "--json",
    ]))
    .unwrap();
    assert_eq!(server["id"], 12345);
    assert_eq!(server["disk_size_bytes"], 64 << 20);
    assert_eq!(server["account"], "acme");
    let image = dir.path().join("img.raw");
    std::fs::write(&image, vec![7u8; 1 << 20]).unwrap();
    cli_ok(&[
        "server",
        "create",
        p,
        "--account",
        "acme",
        "--id",
        "2",
        "--name",
        "imaged",
        "--image",
        image.to_str().unwrap(),
    ]);
    let (ok, _, err) = cli(&[
        "server",
        "create",
        p,
        "--account",
        "acme",
        "--id",
        "3",
        "--name",
        "x",
    ]);
    assert!(
        !ok && err.contains("--size"),
        "size or image is required: {err}"
    );
    let list: Value = serde_json::from_str(&cli_ok(&["server", "list", p, "--json"])).unwrap();
    let ids: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [2, 12345]);
    assert!(cli_ok(&["server", "list", p]).contains("web-server-01"));

    // A second token, revoked by a prefix of its id.
    let spare = cli(&["token", "create", p, "--account", "acme"]);
    let spare_id = spare
        .2
        .split_whitespace()
        .find(|w| w.starts_with("tok_"))
        .unwrap()
        .to_string();
    let revoked = cli_ok(&["token", "revoke", p, &spare_id[..8]]);
    assert!(revoked.contains(&spare_id), "{revoked}");
    let (ok, _, err) = cli(&["token", "revoke", p, "tok_zzzz"]);
    assert!(!ok && err.contains("not found"), "{err}");

    let serve = Serve::start(&pool, &[]);
    let admin = serve.printed("admin token (shown once, store it now):");
    assert!(
        admin.is_some(),
        "first serve on a pool made by init creates the admin"
    );
    let (s, body) = call(
        reqwest::Method::GET,
        &format!("{}/api/v1/servers/", serve.url),
        &token,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["count"], 2);
    let spare_token = spare.1.trim();
    let (s, _) = call(
        reqwest::Method::GET,
        &format!("{}/api/v1/servers/", serve.url),
        spare_token,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(serve.terminate().0);

    // Revoking with the token itself works too.
    cli_ok(&["token", "revoke", p, &token]);
    let listed = cli_ok(&["token", "list", p, "--account", "acme", "--json"]);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["revoked"] == true));
}

#[test]
fn serve_refuses_a_directory_that_is_not_a_pool() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("precious.txt"), b"keep me").unwrap();
    let (ok, _, err) = cli(&[
        "serve",
        "--pool",
        dir.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!ok);
    assert!(err.contains("not a cowsnap pool"), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("precious.txt")).unwrap(),
        b"keep me"
    );
    let (ok, _, err) = cli(&[
        "serve",
        "--pool",
        dir.path().join("p").to_str().unwrap(),
        "--listen",
        "not-an-address",
    ]);
    assert!(!ok && err.contains("listening on not-an-address"), "{err}");
    // The failed start did not use up the one showing of the admin token.
    let serve = Serve::start(&dir.path().join("p"), &[]);
    assert!(serve.printed("admin token").is_some());
    assert!(serve.terminate().0);
}

/// A POST with an Idempotency-Key, returning status, the replay header and
/// the body.
async fn keyed_post(
    url: &str,
    token: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, bool, Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("Idempotency-Key", key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let replayed = r.headers().get("idempotent-replayed").is_some();
    let text = r.text().await.unwrap();
    (
        status,
        replayed,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// A keyed create and a keyed restore, retried after the service restarted,
/// get their first answers back and do nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_are_replayed_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let first = Serve::start(&pool, &["--demo"]);
    let demo = first.printed("demo token:").unwrap();
    let create = (
        format!("{}/api/v1/snapshots/", first.url),
        json!({"server_id": 12345, "name": "nightly"}),
    );
    let (s, replayed, created) = keyed_post(&create.0, &demo, "c-1", Some(create.1.clone())).await;
    assert_eq!((s, replayed), (StatusCode::CREATED, false), "{created}");
    let id = created["id"].as_u64().unwrap();
    let restore = format!("{}/api/v1/snapshots/{id}/restore/", first.url);
    let (s, _, restored) = keyed_post(&restore, &demo, "r-1", None).await;
    assert_eq!(s, StatusCode::OK, "{restored}");
    let (s, _) = call(
        reqwest::Method::POST,
        &format!("{}/api/v1/servers/12345/start/", first.url),
        &demo,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (ok, log) = first.terminate();
    assert!(ok, "{log}");

    let second = Serve::start(&pool, &[]);
    let url = |path: &str| format!("{}{path}", second.url);
    let (s, replayed, again) =
        keyed_post(&url("/api/v1/snapshots/"), &demo, "c-1", Some(create.1)).await;
    assert_eq!((s, replayed), (StatusCode::CREATED, true));
    assert_eq!(again, created);
    let (s, replayed, again) = keyed_post(
        &url(&format!("/api/v1/snapshots/{id}/restore/")),
        &demo,
        "r-1",
        None,
    )
    .await;
    assert_eq!((s, replayed), (StatusCode::OK, true));
    assert_eq!(again, restored);
    let (_, server) = call(
        reqwest::Method::GET,
        &url("/api/v1/servers/12345/"),
        &demo,
        None,
    )
    .await;
    assert_eq!(
        server["status"], "running",
        "the replayed restore did not stop it again"
    );
    assert_eq!(server["snapshot_count"], 1, "no second snapshot");
    assert!(second.terminate().0);
}

/// A raw connection to a served address.
fn connect(url: &str) -> std::net::TcpStream {
    std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap()
}

/// The head and first half of a snapshot create, whose second half the
/// caller sends when it likes; and that second half.
fn split_create(token: &str, name: &str) -> (String, String) {
    let body = format!(r#"{{"server_id": 12345, "name": "{name}"}}"#);
    let (a, b) = body.split_at(body.len() / 2);
    let head = format!(
        "POST /api/v1/snapshots/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{a}",
        body.len()
    );
    (head, b.to_string())
}

/// SIGTERM while a request is in flight: the request completes, then the
/// service exits and the pool is closed cleanly, holding what it did.
#[test]
fn sigterm_lets_a_request_in_flight_finish() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let mut serve = Serve::start(&pool, &["--demo"]);
    let demo = serve.printed("demo token:").unwrap();
    let (head, rest) = split_create(&demo, "in-flight");
    let mut client = connect(&serve.url);
    client.write_all(head.as_bytes()).unwrap();
    // The request is being read when the signal comes.
    std::thread::sleep(std::time::Duration::from_millis(500));
    serve.signal();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        serve.running(),
        "the service waits for the request in flight"
    );
    client.write_all(rest.as_bytes()).unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let (ok, log) = serve.finish();
    assert!(ok, "{log}");
    assert!(log.contains("closed cleanly"), "{log}");
    let p = pool.to_str().unwrap();
    let snapshots: Value =
        serde_json::from_str(&cli_ok(&["snapshot", "list", p, "--json"])).unwrap();
    assert_eq!(snapshots[0]["name"], "in-flight");
    let check: Value = serde_json::from_str(&cli_ok(&["check", p, "--json"])).unwrap();
    assert_eq!(check["ok"], true, "{check}");
}

/// A second SIGTERM stops at once, without waiting for the request in
/// flight (or the 30 s drain), after flushing and closing the pool.
#[test]
fn a_second_sigterm_stops_at_once_after_flushing() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let mut serve = Serve::start(&pool, &["--demo"]);
    let demo = serve.printed("demo token:").unwrap();
    let (s, _) = tokio::runtime::Runtime::new().unwrap().block_on(call(
        reqwest::Method::POST,
        &format!("{}/api/v1/snapshots/", serve.url),
        &demo,
        Some(json!({"server_id": 12345, "name": "kept"})),
    ));
    assert_eq!(s, StatusCode::CREATED);
    let (head, _) = split_create(&demo, "never-finished");
    let mut client = connect(&serve.url);
    client.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    serve.signal();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(serve.running(), "the first signal drains");
    let started = std::time::Instant::now();
    serve.signal();
    let (ok, log) = serve.finish();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "stopped at once, not after the drain deadline"
    );
    assert!(ok, "{log}");
    assert!(log.contains("stopping at once"), "{log}");
    assert!(log.contains("closed cleanly"), "{log}");
    let mut answer = String::new();
    let _ = client.read_to_string(&mut answer);
    assert!(
        !answer.contains("201"),
        "the cut request did not complete: {answer}"
    );
    let p = pool.to_str().unwrap();
    let snapshots: Value =
        serde_json::from_str(&cli_ok(&["snapshot", "list", p, "--json"])).unwrap();
    let names: Vec<&str> = snapshots
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["kept"]);
    let check: Value = serde_json::from_str(&cli_ok(&["check", p, "--json"])).unwrap();
    assert_eq!(check["ok"], true, "{check}");
}

/// `--demo` on a pool where server 12345 is another account's refuses to
/// start, and sets up nothing: no demo account, and the admin token's one
/// showing is not used up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_refuses_a_server_12345_of_another_account() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let p = pool.to_str().unwrap();
    cli_ok(&["init", p]);
    cli_ok(&["account", "create", p, "acme"]);
    cli_ok(&[
        "server",
        "create",
        p,
        "--account",
        "acme",
        "--id",
        "12345",
        "--name",
        "acme-web",
        "--size",
        "1M",
    ]);
    let (ok, out, err) = cli(&["serve", "--pool", p, "--listen", "127.0.0.1:0", "--demo"]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("server 12345 belongs to account acme"),
        "a clear error: {err}"
    );
    assert!(!out.contains("token"), "nothing shown: {out}");
    let serve = Serve::start(&pool, &[]);
    let admin = serve
        .printed("admin token (shown once, store it now):")
        .expect("the admin token was not used up");
    let (_, accounts) = call(
        reqwest::Method::GET,
        &format!("{}/api/v1/admin/accounts/", serve.url),
        &admin,
        None,
    )
    .await;
    let names: Vec<&str> = accounts["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme", "admin"], "no demo account");
    let (_, server) = call(
        reqwest::Method::GET,
        &format!("{}/api/v1/admin/servers/", serve.url),
        &admin,
        None,
    )
    .await;
    assert_eq!(server["results"][0]["account"], "acme");
    assert!(serve.terminate().0);
}
