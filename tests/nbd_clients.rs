//! The NBD export against real clients nobody here wrote: qemu-io, qemu-img,
//! nbdinfo and nbdcopy. The server runs in-process, so the tests also use
//! the pool directly (snapshots, restores, the engine's own raw export).
//!
//! A test whose tool is missing fails under `COWSNAP_REQUIRE_TOOLS=1` (CI)
//! and is skipped loudly otherwise (`apt-get install -y libnbd-bin qemu-utils`).

mod tool_support;

use cowsnap::nbd::{BackgroundServer, ExportControl, Limits};
use cowsnap::Pool;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MIB: u64 = 1 << 20;

/// True when `tool` runs (see `tool_support::have`).
fn have(tool: &str) -> bool {
    let package = if tool.starts_with("qemu") {
        "qemu-utils"
    } else {
        "libnbd-bin"
    };
    tool_support::have(tool, package)
}

fn run(tool: &str, args: &[&str]) -> Output {
    let out = Command::new(tool).args(args).output().unwrap();
    eprintln!(
        "$ {tool} {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run and require success; returns stdout.
fn ok(tool: &str, args: &[&str]) -> String {
    let out = run(tool, args);
    assert!(out.status.success(), "{tool} {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

struct Served {
    pool: Pool,
    control: ExportControl,
    socket: PathBuf,
    dir: tempfile::TempDir,
    _server: BackgroundServer,
}

impl Served {
    fn new() -> Served {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::create(dir.path().join("pool"), cowsnap::DEFAULT_BLOCK_SIZE).unwrap();
        let socket = dir.path().join("nbd.sock");
        let control = ExportControl::new();
        let server = BackgroundServer::start(
            pool.clone(),
            &format!("unix:{}", socket.display()),
            control.clone(),
            Limits::default(),
        )
        .unwrap();
        Served {
            pool,
            control,
            socket,
            dir,
            _server: server,
        }
    }

    fn uri(&self, export: &str) -> String {
        format!("nbd+unix:///{export}?socket={}", self.socket.display())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// qemu-io commands on an export, opened read-write unless `-r` is
    /// among the commands' options.
    fn qemu_io_with(&self, export: &str, read_only: bool, cmds: &[&str]) -> Output {
        let uri = self.uri(export);
        let mut args = vec!["-f", "raw"];
        if read_only {
            args.push("-r");
        }
        for c in cmds {
            args.extend(["-c", c]);
        }
        args.push(&uri);
        run("qemu-io", &args)
    }

    /// qemu-io, read-only on snapshot exports.
    fn qemu_io(&self, export: &str, cmds: &[&str]) -> Output {
        self.qemu_io_with(export, export.contains('@'), cmds)
    }

    /// qemu-io succeeded and every pattern it checked matched.
    fn qemu_io_ok(&self, export: &str, cmds: &[&str]) {
        let out = self.qemu_io(export, cmds);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "qemu-io {cmds:?} on {export}");
        assert!(
            !text.contains("failed"),
            "qemu-io {cmds:?} on {export}: {text}"
        );
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn qemu_io_sees_snapshots_and_restores() {
    if !have("qemu-io") {
        return;
    }
    let s = Served::new();
    s.pool.create_volume("web01", 16 * MIB).unwrap();
    s.qemu_io_ok("web01", &["write -P 0xab 1M 64k", "write -P 0x11 5000 300"]);
    let snap = s.pool.create_snapshot("web01", "before", "").unwrap().id;
    s.qemu_io_ok("web01", &["write -P 0xcd 1M 64k", "write -P 0x22 5000 300"]);

    let at = format!("web01@{snap}");
    s.qemu_io_ok(&at, &["read -P 0xab 1M 64k", "read -P 0x11 5000 300"]);
    s.qemu_io_ok("web01", &["read -P 0xcd 1M 64k", "read -P 0x22 5000 300"]);
    // The check itself can fail: the old pattern is gone from the volume.
    let stale = s.qemu_io("web01", &["read -P 0xab 1M 64k"]);
    assert!(String::from_utf8_lossy(&stale.stdout).contains("Pattern verification failed"));
    // A snapshot export says it is read-only: qemu will not open it for writing.
    let denied = s.qemu_io_with(&at, false, &["write -P 0xee 0 4k"]);
    assert!(!denied.status.success());
    assert!(!String::from_utf8_lossy(&denied.stdout).contains("wrote"));

    // Restore as the service does: close the volume's connections first.
    s.control.disable_rw("web01");
    s.pool.restore_snapshot(snap).unwrap();
    s.control.enable_rw("web01");
    s.qemu_io_ok("web01", &["read -P 0xab 1M 64k", "read -P 0x11 5000 300"]);
}

#[test]
fn qemu_img_map_reports_the_holes_of_a_sparse_volume() {
    if !have("qemu-img") {
        return;
    }
    let s = Served::new();
    s.pool.create_volume("sparse", 8 * MIB).unwrap();
    let vol = s.pool.volume("sparse").unwrap();
    vol.write_at(&[7u8; 128 << 10], MIB).unwrap();
    vol.write_at(&[9u8; 64 << 10], 6 * MIB).unwrap();
    let out = ok(
        "qemu-img",
        &["map", "--output=json", "-f", "raw", &s.uri("sparse")],
    );
    let map: Value = serde_json::from_str(&out).unwrap();
    let extents: Vec<(u64, u64, bool)> = map
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let data = e["data"].as_bool().unwrap();
            // A hole is reported as reading zeros.
            assert_eq!(e["zero"].as_bool().unwrap(), !data, "{e}");
            (
                e["start"].as_u64().unwrap(),
                e["length"].as_u64().unwrap(),
                data,
            )
        })
        .collect();
    let expected = vec![
        (0, MIB, false),
        (MIB, 128 << 10, true),
        (MIB + (128 << 10), 5 * MIB - (128 << 10), false),
        (6 * MIB, 64 << 10, true),
        (6 * MIB + (64 << 10), 2 * MIB - (64 << 10), false),
    ];
    assert_eq!(extents, expected);
}

#[test]
fn qemu_img_convert_of_a_snapshot_matches_the_engines_export() {
    if !have("qemu-img") {
        return;
    }
    let s = Served::new();
    s.pool.create_volume("db", 32 * MIB).unwrap();
    let vol = s.pool.volume("db").unwrap();
    for i in 0..20u64 {
        let data: Vec<u8> = (0..50_000u32).map(|b| (b as u64 * 7 + i) as u8).collect();
        vol.write_at(&data, i * 1_500_000).unwrap();
    }
    let snap = s.pool.create_snapshot("db", "nightly", "").unwrap().id;
    vol.write_at(&[0xff; 4096], 0).unwrap();

    let engine = s.path("engine.raw");
    s.pool
        .export_snapshot(snap, &engine, &mut |_, _| {})
        .unwrap();
    let qcow = s.path("copy.qcow2");
    let raw = s.path("copy.raw");
    let src = s.uri(&format!("db@{snap}"));
    ok(
        "qemu-img",
        &["convert", "-f", "raw", "-O", "qcow2", &src, path_str(&qcow)],
    );
    ok(
        "qemu-img",
        &["convert", "-f", "raw", "-O", "raw", &src, path_str(&raw)],
    );
    let compare = |a: &Path, fmt: &str| {
        run(
            "qemu-img",
            &[
                "compare",
                "-f",
                fmt,
                "-F",
                "raw",
                path_str(a),
                path_str(&engine),
            ],
        )
        .status
        .code()
    };
    assert_eq!(compare(&qcow, "qcow2"), Some(0));
    assert_eq!(compare(&raw, "raw"), Some(0));
    assert_eq!(
        std::fs::read(&raw).unwrap(),
        std::fs::read(&engine).unwrap(),
        "byte-identical"
    );
    // And the comparison can tell: the live volume differs now.
    let live = s.path("live.raw");
    s.pool.export_volume("db", &live, &mut |_, _| {}).unwrap();
    let differs = run(
        "qemu-img",
        &[
            "compare",
            "-f",
            "raw",
            "-F",
            "raw",
            path_str(&raw),
            path_str(&live),
        ],
    );
    assert_eq!(differs.status.code(), Some(1));
}

#[test]
fn nbdinfo_lists_the_exports_and_maps_the_allocation() {
    if !have("nbdinfo") {
        return;
    }
    let s = Served::new();
    s.pool.create_volume("srv-1", 4 * MIB).unwrap();
    s.pool.create_volume("srv-2", 4 * MIB).unwrap();
    let vol = s.pool.volume("srv-1").unwrap();
    vol.write_at(&[1u8; 100_000], 200_000).unwrap();
    vol.write_at(&[2u8; 10], 3 * MIB + 5).unwrap();
    let snap = s.pool.create_snapshot("srv-1", "a", "").unwrap().id;

    let list: Value =
        serde_json::from_str(&ok("nbdinfo", &["--list", "--json", &s.uri("")])).unwrap();
    let mut names: Vec<String> = list["exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["export-name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["srv-1", &format!("srv-1@{snap}"), "srv-2"]);
    let ro = list["exports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["export-name"] == format!("srv-1@{snap}"))
        .unwrap();
    assert_eq!(ro["is_read_only"], true);

    let map: Value =
        serde_json::from_str(&ok("nbdinfo", &["--map", "--json", &s.uri("srv-1")])).unwrap();
    let seen: Vec<(u64, u64, bool)> = map
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let kind = e["type"].as_u64().unwrap();
            (
                e["offset"].as_u64().unwrap(),
                e["length"].as_u64().unwrap(),
                kind == 0,
            )
        })
        .collect();
    let engine = vol.allocation(0, 4 * MIB).unwrap();
    assert_eq!(seen, engine);
    assert!(engine.iter().any(|e| e.2) && engine.iter().any(|e| !e.2));
}

/// A raw image of `size` bytes: pseudo-random data in some MiB chunks,
/// holes elsewhere.
fn sparse_image(path: &Path, size: u64) -> u64 {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    let mut data = 0;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in 0..size / MIB {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x.is_multiple_of(3) {
            continue;
        }
        let bytes: Vec<u8> = (0..MIB).map(|i| (i ^ x ^ (i >> 9)) as u8).collect();
        f.seek(SeekFrom::Start(chunk * MIB)).unwrap();
        f.write_all(&bytes).unwrap();
        data += MIB;
    }
    data
}

#[test]
fn nbdcopy_copies_a_1gib_image_in_and_out_unchanged() {
    if !have("nbdcopy") {
        return;
    }
    let s = Served::new();
    let size = 1024 * MIB;
    let image = s.path("in.raw");
    let data = sparse_image(&image, size);
    s.pool.create_volume("big", size).unwrap();
    ok("nbdcopy", &[path_str(&image), &s.uri("big")]);
    let out = s.path("out.raw");
    ok("nbdcopy", &[&s.uri("big"), path_str(&out)]);
    // cmp streams both files: no 2 GiB in this process's memory.
    assert_eq!(
        std::fs::metadata(&out).unwrap().len(),
        size,
        "the copy has the image's size"
    );
    let same = run("cmp", &[path_str(&image), path_str(&out)]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "the copy differs from the image"
    );
    // And cmp can tell: one byte flipped in the copy is found.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&out)
            .unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, size / 2 + 12_345).unwrap();
        f.write_all_at(&[!b[0]], size / 2 + 12_345).unwrap();
    }
    assert_eq!(
        run("cmp", &[path_str(&image), path_str(&out)])
            .status
            .code(),
        Some(1)
    );
    // Holes stayed holes in the volume.
    let allocated = s.pool.volume_info("big").unwrap().allocated_bytes;
    assert_eq!(allocated, data, "only the image's data takes space");
}
