//! `cowsnap serve` as a real process: first-run setup, the setup CLI,
//! restart persistence, refusing a second instance, clean shutdown on
//! SIGTERM, and request logs that never hold a token.

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
    fn terminate(mut self) -> (bool, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
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
    let (ok, log) = first.terminate();
    assert!(ok, "{log}");
    assert!(log.contains("closed cleanly"), "{log}");
    assert!(
        log.contains("path=/api/v1/snapshots/") && log.contains("status=201"),
        "{log}"
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
