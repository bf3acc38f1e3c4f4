//! `cowsnap nbd` and `cowsnap serve --nbd` as real processes: the bound
//! address on stdout, qemu-io through it, a server stop through the REST API
//! withdrawing the disk's export, and a clean shutdown on SIGTERM.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

mod tool_support;

const BIN: &str = env!("CARGO_BIN_EXE_cowsnap");

fn have_qemu_io() -> bool {
    tool_support::have("qemu-io", "qemu-utils")
}

/// A running cowsnap process and the lines it printed until the NBD
/// listener's.
struct Proc {
    child: Child,
    lines: Vec<String>,
    _stdout: BufReader<ChildStdout>,
}

impl Proc {
    // The child is waited for in `Drop`, which clippy cannot see.
    #[allow(clippy::zombie_processes)]
    fn start(args: &[&str]) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let _ = child.kill();
                let _ = child.wait();
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("exited before listening: {lines:?} {err}");
            }
            lines.push(line.trim_end().to_string());
            if line.starts_with("nbd listening on ") {
                // Kept open: the process must not see a closed stdout.
                return Proc {
                    child,
                    lines,
                    _stdout: stdout,
                };
            }
        }
    }

    fn printed(&self, label: &str) -> String {
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label:?} in {:?}", self.lines))
            .trim()
            .to_string()
    }

    /// SIGTERM; the exit status's success and stderr.
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
        (self.child.wait().unwrap().success(), err)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli_ok(args: &[&str]) {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
}

/// qemu-io on `uri`; true when it ran and every pattern matched.
fn qemu_io(uri: &str, cmds: &[&str]) -> bool {
    let mut args = vec!["-f", "raw"];
    for c in cmds {
        args.extend(["-c", c]);
    }
    args.push(uri);
    let out = Command::new("qemu-io").args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "qemu-io {cmds:?} {uri}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.status.success() && !text.contains("failed")
}

fn uri(addr: &str, export: &str) -> String {
    match addr.strip_prefix("unix:") {
        Some(path) => format!("nbd+unix:///{export}?socket={path}"),
        None => format!("nbd://{addr}/{export}"),
    }
}

#[test]
fn the_nbd_command_serves_until_sigterm_and_closes_the_pool() {
    if !have_qemu_io() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let pool = pool.to_str().unwrap();
    cli_ok(&["init", pool]);
    cli_ok(&["volume", "create", pool, "vol", "--size", "16M"]);
    for listen in [
        "0".to_string(),
        format!("unix:{}", dir.path().join("s").display()),
    ] {
        let p = Proc::start(&["nbd", pool, "--listen", &listen]);
        let addr = p.printed("nbd listening on ");
        if listen == "0" {
            assert!(addr.starts_with("127.0.0.1:"), "{addr}");
        } else {
            assert_eq!(addr, listen);
        }
        assert!(qemu_io(&uri(&addr, "vol"), &["write -P 0x5e 2M 64k"]));
        let (ok, err) = p.terminate();
        assert!(ok, "{err}");
        assert!(err.contains("closed cleanly"), "{err}");
        assert!(!Path::new(&dir.path().join("s")).exists(), "socket removed");
    }
    let vol = cowsnap::Pool::open(pool).unwrap().volume("vol").unwrap();
    let mut buf = vec![0u8; 65536];
    vol.read_at(&mut buf, 2 << 20).unwrap();
    assert!(buf.iter().all(|&b| b == 0x5e), "the writes were kept");
}

async fn power(base: &str, token: &str, action: &str) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/v1/servers/12345/{action}/"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{action}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_nbd_withdraws_a_stopped_servers_disk() {
    if !have_qemu_io() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let sock = format!("unix:{}", dir.path().join("nbd.sock").display());
    let args = [
        "serve",
        "--pool",
        pool.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--nbd",
        &sock,
        "--demo",
    ];
    let p = Proc::start(&args);
    let base = p.printed("listening on ");
    let token = p.printed("demo token:");
    let disk = uri(&p.printed("nbd listening on "), "srv-12345");
    let io = |cmds: &'static [&'static str]| {
        let disk = disk.clone();
        tokio::task::spawn_blocking(move || qemu_io(&disk, cmds))
    };
    assert!(io(&["write -P 0x42 0 64k"]).await.unwrap());
    power(&base, &token, "stop").await;
    assert!(
        !io(&["read -P 0x42 0 64k"]).await.unwrap(),
        "stopped: no export"
    );
    power(&base, &token, "start").await;
    assert!(io(&["read -P 0x42 0 64k"]).await.unwrap());
    let (ok, err) = p.terminate();
    assert!(ok, "{err}");
    assert!(err.contains("closed cleanly"), "{err}");
}
