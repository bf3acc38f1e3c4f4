//! The `cowsnap` binary as scripts drive it: real processes on real pools in
//! temporary directories, checking bytes, JSON shapes and exit codes.

use assert_cmd::Command;
use serde_json::Value;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use tempfile::TempDir;

/// A temporary directory holding one pool (`<tmp>/pool`) and scratch files.
struct Fixture {
    dir: TempDir,
    pool: String,
}

impl Fixture {
    /// A fresh pool with 4 KiB blocks.
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let pool = path_str(&dir.path().join("pool"));
        let f = Fixture { dir, pool };
        f.ok(&["init", f.pool(), "--block-size", "4K"]);
        f
    }

    fn pool(&self) -> &str {
        &self.pool
    }

    /// A path for a scratch file in the fixture's directory.
    fn file(&self, name: &str) -> String {
        path_str(&self.dir.path().join(name))
    }

    /// Run, expect exit 0 and a clean stderr, return stdout.
    fn ok(&self, args: &[&str]) -> String {
        run_ok(args)
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}): {out}"))
    }

    fn create_volume(&self, name: &str, size: &str) {
        self.ok(&["volume", "create", self.pool(), name, "--size", size]);
    }

    /// Write `data` into `volume` at `offset` through a file argument.
    fn write(&self, volume: &str, offset: u64, data: &[u8]) {
        let input = self.file("write-input");
        std::fs::write(&input, data).unwrap();
        self.ok(&[
            "volume",
            "write",
            self.pool(),
            volume,
            "--offset",
            &offset.to_string(),
            &input,
        ]);
    }

    fn export_volume(&self, volume: &str) -> Vec<u8> {
        let out = self.file("volume-export.raw");
        self.ok(&["volume", "export", self.pool(), volume, &out]);
        std::fs::read(out).unwrap()
    }

    fn export_snapshot(&self, id: u64) -> Vec<u8> {
        let out = self.file("snapshot-export.raw");
        self.ok(&["snapshot", "export", self.pool(), &id.to_string(), &out]);
        std::fs::read(out).unwrap()
    }

    fn snapshot(&self, volume: &str, name: &str) -> Value {
        self.json(&["snapshot", "create", self.pool(), volume, name, "--json"])
    }

    fn stats(&self) -> Value {
        self.json(&["stats", self.pool(), "--json"])
    }

    fn volumes(&self) -> Vec<Value> {
        self.json(&["volume", "list", self.pool(), "--json"])
            .as_array()
            .unwrap()
            .clone()
    }
}

fn path_str(path: &Path) -> String {
    path.to_str()
        .expect("temporary paths are UTF-8")
        .to_string()
}

fn cowsnap() -> Command {
    Command::cargo_bin("cowsnap").unwrap()
}

fn run_ok(args: &[&str]) -> String {
    let out = cowsnap().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{args:?} failed with {:?}: {stderr}",
        out.status.code()
    );
    assert!(stderr.is_empty(), "{args:?} wrote to stderr: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// Run, expect failure with `code` and exactly one `cowsnap: error:` line on
/// stderr, and no panic; return that line.
fn run_fail(args: &[&str], code: i32) -> String {
    let out = cowsnap().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{args:?}: stderr {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: want one stderr line, got {stderr:?}"
    );
    assert!(
        stderr.starts_with("cowsnap: error: "),
        "{args:?}: {stderr:?}"
    );
    stderr
}

/// Deterministic non-zero-heavy bytes; `seed` varies the content.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i % 251) as u8) | 1)
        .collect()
}

fn image_with(size: usize, writes: &[(usize, &[u8])]) -> Vec<u8> {
    let mut img = vec![0u8; size];
    for (at, data) in writes {
        img[*at..*at + data.len()].copy_from_slice(data);
    }
    img
}

fn id_of(snapshot: &Value) -> u64 {
    snapshot["id"].as_u64().unwrap()
}

#[test]
fn write_snapshot_overwrite_restore_and_export() {
    let f = Fixture::new();
    f.create_volume("vm1", "256K");
    let a = pattern(1, 40_000);
    f.write("vm1", 1234, &a);
    let before = image_with(256 << 10, &[(1234, &a)]);
    assert_eq!(f.export_volume("vm1"), before);

    let snap = f.snapshot("vm1", "before");
    let b = pattern(7, 10_000);
    f.write("vm1", 20_000, &b);
    let after = image_with(256 << 10, &[(1234, &a), (20_000, &b)]);
    assert_eq!(f.export_volume("vm1"), after, "volume has the overwrite");
    assert_eq!(
        f.export_snapshot(id_of(&snap)),
        before,
        "snapshot keeps the old bytes"
    );

    let out = f.ok(&["snapshot", "restore", f.pool(), &id_of(&snap).to_string()]);
    assert!(out.contains("vm1"), "restore names the volume: {out}");
    assert_eq!(
        f.export_volume("vm1"),
        before,
        "restore brings the snapshot back"
    );
    let listed = f.json(&["snapshot", "list", f.pool(), "--json"]);
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "restore keeps the snapshot"
    );
}

#[test]
fn volume_read_returns_written_bytes() {
    let f = Fixture::new();
    f.create_volume("v", "64K");
    let data = pattern(3, 9000);
    f.write("v", 5000, &data);
    let out = cowsnap()
        .args([
            "volume",
            "read",
            f.pool(),
            "v",
            "--offset",
            "5000",
            "--length",
            "9000",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, data);

    let dest = f.file("read.out");
    f.ok(&[
        "volume",
        "read",
        f.pool(),
        "v",
        "--offset",
        "4K",
        "--length",
        "8K",
        &dest,
    ]);
    let expected = image_with(64 << 10, &[(5000, &data)])[4096..12288].to_vec();
    assert_eq!(std::fs::read(dest).unwrap(), expected);
}

#[test]
fn volume_write_from_stdin() {
    let f = Fixture::new();
    f.create_volume("v", "8M");
    // Longer than one 4 MiB chunk and at an unaligned offset, so the
    // streaming path splits it at block-aligned chunk boundaries.
    let data = pattern(5, (4 << 20) + 12_345);
    let offset = 777u64;
    cowsnap()
        .args([
            "volume",
            "write",
            f.pool(),
            "v",
            "--offset",
            &offset.to_string(),
            "-",
        ])
        .write_stdin(data.clone())
        .assert()
        .success();
    let img = f.export_volume("v");
    assert_eq!(
        &img[offset as usize..offset as usize + data.len()],
        &data[..]
    );
    assert!(img[..offset as usize].iter().all(|&b| b == 0));
    assert!(img[offset as usize + data.len()..].iter().all(|&b| b == 0));
    assert_eq!(f.json(&["check", f.pool(), "--json"])["ok"], true);
}

#[test]
fn volume_write_past_the_end_is_refused() {
    let f = Fixture::new();
    f.create_volume("v", "8K");
    let input = f.file("big");
    std::fs::write(&input, pattern(1, 5000)).unwrap();
    let err = run_fail(
        &["volume", "write", f.pool(), "v", "--offset", "4K", &input],
        1,
    );
    assert!(err.contains("past the end"), "{err}");
    assert!(
        f.export_volume("v").iter().all(|&b| b == 0),
        "nothing was written"
    );

    // From stdin the length is unknown up front; the overrun is still refused.
    let out = cowsnap()
        .args(["volume", "write", f.pool(), "v", "--offset", "0", "-"])
        .write_stdin(pattern(2, 9000))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);

    run_fail(
        &[
            "volume",
            "read",
            f.pool(),
            "v",
            "--offset",
            "4K",
            "--length",
            "8K",
        ],
        1,
    );
}

#[test]
fn lists_are_json_arrays_newest_first() {
    let f = Fixture::new();
    f.create_volume("a", "64K");
    f.create_volume("b", "128K");
    let vols = f.volumes();
    assert_eq!(vols.len(), 2);
    for v in &vols {
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["allocated_bytes", "id", "name", "size_bytes"]);
    }
    let b = vols.iter().find(|v| v["name"] == "b").unwrap();
    assert_eq!(b["size_bytes"], 128 << 10);
    assert_eq!(b["allocated_bytes"], 0);

    let s1 = id_of(&f.snapshot("a", "one"));
    let s2 = id_of(&f.snapshot("b", "two"));
    let s3 = id_of(&f.snapshot("a", "three"));
    let all = f.json(&["snapshot", "list", f.pool(), "--json"]);
    let ids: Vec<u64> = all.as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(ids, [s3, s2, s1], "newest first");
    let of_a = f.json(&["snapshot", "list", f.pool(), "--volume", "a", "--json"]);
    let ids: Vec<u64> = of_a.as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(ids, [s3, s1]);
    assert!(of_a
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["volume"]["name"] == "a"));

    let table = f.ok(&["snapshot", "list", f.pool()]);
    assert!(table.contains("three") && table.contains("two"), "{table}");
    let table = f.ok(&["volume", "list", f.pool()]);
    assert!(
        table.lines().count() == 3 && table.contains("128 KiB"),
        "{table}"
    );
}

#[test]
fn snapshot_json_fields_and_size_mb() {
    let f = Fixture::new();
    f.create_volume("vm", "4M");
    // 1 MiB + 4 KiB of data in 4 KiB blocks: 257 blocks, 2 MiB rounded up.
    f.write("vm", 0, &pattern(9, (1 << 20) + 4096));
    let s = f.json(&[
        "snapshot",
        "create",
        f.pool(),
        "vm",
        "nightly",
        "--description",
        "before upgrade",
        "--json",
    ]);
    let mut keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "description",
            "exclusive_bytes",
            "id",
            "name",
            "size_bytes",
            "size_mb",
            "status",
            "volume"
        ]
    );
    let vol_id = f.volumes()[0]["id"].clone();
    assert_eq!(s["volume"], serde_json::json!({"id": vol_id, "name": "vm"}));
    assert_eq!(s["name"], "nightly");
    assert_eq!(s["description"], "before upgrade");
    assert_eq!(s["status"], "completed");
    assert_eq!(s["size_bytes"], (1 << 20) + 4096);
    assert_eq!(s["size_mb"], 2);
    assert_eq!(
        s["exclusive_bytes"], 0,
        "everything is still shared with the volume"
    );
    let created = s["created_at"].as_str().unwrap();
    assert!(
        created.len() == 20 && created.ends_with('Z') && &created[10..11] == "T",
        "{created}"
    );

    let id = id_of(&s).to_string();
    assert_eq!(f.json(&["snapshot", "show", f.pool(), &id, "--json"]), s);

    // Overwriting the volume makes the old blocks the snapshot's alone.
    f.write("vm", 0, &pattern(4, 8192));
    let shown = f.json(&["snapshot", "show", f.pool(), &id, "--json"]);
    assert_eq!(shown["exclusive_bytes"], 8192);

    let renamed = f.json(&[
        "snapshot",
        "rename",
        f.pool(),
        &id,
        "--name",
        "weekly",
        "--json",
    ]);
    assert_eq!(renamed["name"], "weekly");
    assert_eq!(renamed["description"], "before upgrade");
    let renamed = f.json(&[
        "snapshot",
        "rename",
        f.pool(),
        &id,
        "--description",
        "kept",
        "--json",
    ]);
    assert_eq!(
        (renamed["name"].as_str(), renamed["description"].as_str()),
        (Some("weekly"), Some("kept"))
    );
    let human = f.ok(&["snapshot", "show", f.pool(), &id]);
    assert!(
        human.contains("weekly") && human.contains("kept"),
        "{human}"
    );
}

#[test]
fn clone_is_an_independent_copy_of_the_snapshot() {
    let f = Fixture::new();
    f.create_volume("base", "64K");
    let a = pattern(2, 20_000);
    f.write("base", 0, &a);
    let snap = id_of(&f.snapshot("base", "golden"));
    f.write("base", 0, &pattern(8, 4096));

    f.ok(&["volume", "clone", f.pool(), &snap.to_string(), "child"]);
    let golden = image_with(64 << 10, &[(0, &a)]);
    assert_eq!(f.export_volume("child"), golden);
    let vols = f.volumes();
    let child = vols.iter().find(|v| v["name"] == "child").unwrap();
    assert_eq!(child["size_bytes"], 64 << 10);

    let c = pattern(6, 3000);
    f.write("child", 30_000, &c);
    assert_eq!(
        f.export_volume("child"),
        image_with(64 << 10, &[(0, &a), (30_000, &c)])
    );
    assert_eq!(
        f.export_snapshot(snap),
        golden,
        "writes to the clone leave the snapshot alone"
    );
    let base = f.export_volume("base");
    assert_eq!(&base[..4096], &pattern(8, 4096)[..]);
}

#[test]
fn deletes_free_space() {
    let f = Fixture::new();
    f.create_volume("v", "256K");
    f.write("v", 0, &pattern(1, 64 << 10));
    let snap = f.snapshot("v", "s");
    f.write("v", 0, &pattern(2, 64 << 10));
    let used = f.stats()["used_bytes"].as_u64().unwrap();
    assert_eq!(used, 128 << 10, "old and new 64 KiB both kept");
    assert_eq!(f.volumes()[0]["allocated_bytes"], 64 << 10);
    let exclusive = f.json(&[
        "snapshot",
        "show",
        f.pool(),
        &id_of(&snap).to_string(),
        "--json",
    ])["exclusive_bytes"]
        .as_u64()
        .unwrap();
    assert_eq!(exclusive, 64 << 10);

    f.ok(&["snapshot", "delete", f.pool(), &id_of(&snap).to_string()]);
    assert_eq!(f.stats()["used_bytes"].as_u64().unwrap(), used - exclusive);
    assert_eq!(
        f.json(&["snapshot", "list", f.pool(), "--json"]),
        serde_json::json!([])
    );

    f.ok(&["volume", "delete", f.pool(), "v"]);
    let stats = f.stats();
    assert_eq!(
        (stats["used_bytes"].as_u64(), stats["volumes"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(f.volumes().is_empty());
    assert_eq!(f.json(&["check", f.pool(), "--json"])["ok"], true);
}

#[test]
fn check_reports_ok_as_json() {
    let f = Fixture::new();
    f.create_volume("v", "64K");
    f.write("v", 100, &pattern(1, 10_000));
    f.snapshot("v", "s");
    let report = f.json(&["check", f.pool(), "--json"]);
    assert_eq!(report["ok"], true);
    assert_eq!(report["errors"], serde_json::json!([]));
    assert_eq!(report["leaked_blocks"], 0);
    let human = f.ok(&["check", f.pool(), "--repair"]);
    assert!(human.starts_with("ok"), "{human}");
}

#[test]
fn check_finding_corruption_exits_1_and_still_reports() {
    let f = Fixture::new();
    f.create_volume("v", "64K");
    f.write("v", 0, &pattern(1, 20_000));
    // Write the maps out to their files, then damage one map node.
    let pool = cowsnap::Pool::open(f.pool()).unwrap();
    pool.checkpoint().unwrap();
    pool.close().unwrap();
    let nodes = Path::new(f.pool()).join("nodes");
    let mut bytes = std::fs::read(&nodes).unwrap();
    assert!(bytes.len() > 4096, "the checkpoint wrote map nodes");
    // Page 0 is unused; flip an entry byte in every real node so its checksum fails.
    for page in bytes.chunks_mut(4096).skip(1) {
        page[20] ^= 0xff;
    }
    std::fs::write(&nodes, bytes).unwrap();

    let out = cowsnap()
        .args(["check", f.pool(), "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert!(!report["errors"].as_array().unwrap().is_empty());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));

    let out = cowsnap().args(["check", f.pool()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(
        human.contains("CORRUPT") && human.contains("map node"),
        "{human}"
    );
}

#[test]
fn check_of_a_pool_too_damaged_to_open_still_reports_json() {
    let f = Fixture::new();
    f.create_volume("v", "64K");
    let sb = Path::new(f.pool()).join("superblock");
    std::fs::write(&sb, vec![0x5a; 8192]).unwrap();
    let out = cowsnap()
        .args(["check", f.pool(), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["leaked_blocks"], 0);
    let errors = report["errors"].as_array().unwrap();
    assert!(
        errors[0].as_str().unwrap().contains("superblock"),
        "{errors:?}"
    );
    // Without --json, the one-line error on stderr, exit 1.
    let out = cowsnap().args(["check", f.pool()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("superblock"));
}

#[test]
fn import_then_export_is_identical_and_sparse() {
    let f = Fixture::new();
    let size = 1 << 20;
    // Data, explicit zeros, data straddling block edges, and a trailing hole.
    let img = image_with(
        size,
        &[
            (0, &pattern(1, 10_000)),
            (300_000, &pattern(2, 5000)),
            (600_000, &pattern(3, 70_000)),
        ],
    );
    let raw = f.file("disk.raw");
    std::fs::write(&raw, &img).unwrap();
    let out = f.ok(&["volume", "import", f.pool(), "disk", &raw]);
    assert!(out.contains("disk"), "{out}");

    let vols = f.volumes();
    assert_eq!(vols[0]["size_bytes"], size);
    let allocated = vols[0]["allocated_bytes"].as_u64().unwrap();
    assert!(
        allocated > 0 && allocated < 128 << 10,
        "zero blocks are not stored: {allocated}"
    );

    let exported = f.file("disk.out");
    f.ok(&["volume", "export", f.pool(), "disk", &exported]);
    assert_eq!(
        std::fs::read(&exported).unwrap(),
        img,
        "byte-identical round trip"
    );
    let meta = std::fs::metadata(&exported).unwrap();
    assert_eq!(meta.len(), size as u64);
    assert!(
        meta.blocks() * 512 < meta.len() / 2,
        "export is sparse: {} bytes on disk",
        meta.blocks() * 512
    );

    // Importing over a volume of the same size replaces its content.
    let img2 = image_with(size, &[(4096, &pattern(4, 8192))]);
    std::fs::write(&raw, &img2).unwrap();
    f.ok(&["volume", "import", f.pool(), "disk", &raw]);
    assert_eq!(f.export_volume("disk"), img2);
    assert_eq!(f.volumes().len(), 1);

    // A snapshot of an imported volume exports the same bytes.
    let snap = id_of(&f.snapshot("disk", "imported"));
    assert_eq!(f.export_snapshot(snap), img2);

    // A different size does not fit the existing volume.
    std::fs::write(&raw, vec![1u8; 8192]).unwrap();
    run_fail(&["volume", "import", f.pool(), "disk", &raw], 1);
}

#[test]
fn init_defaults_to_64k_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let pool = path_str(&dir.path().join("p"));
    run_ok(&["init", &pool]);
    let stats: Value = serde_json::from_str(&run_ok(&["stats", &pool, "--json"])).unwrap();
    assert_eq!(stats["block_size"], 65536);
    let err = run_fail(&["init", &pool], 1);
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn bad_arguments_fail_with_one_line() {
    let f = Fixture::new();
    f.create_volume("v", "64K");
    let p = f.pool();
    let missing = &f.file("no-such-pool");
    let (p2, p3) = (&f.file("p2"), &f.file("p3"));
    let (x_raw, y_raw, absent) = (&f.file("x.raw"), &f.file("y.raw"), &f.file("absent"));
    let long_name = "x".repeat(65);
    let cases: &[(&[&str], i32, &str)] = &[
        // Sizes: clap rejects them as usage errors.
        (&["volume", "create", p, "w", "--size", "12X"], 2, "12X"),
        (&["volume", "create", p, "w", "--size", ""], 2, "size"),
        (&["volume", "create", p, "w", "--size=-1"], 2, "-1"),
        (&["volume", "create", p, "w", "--size", "1.5G"], 2, "1.5G"),
        (
            &["volume", "create", p, "w", "--size", "99999999999999999999"],
            2,
            "too large",
        ),
        (
            &["volume", "create", p, "w", "--size", "17179869184G"],
            2,
            "too large",
        ),
        (&["volume", "create", p, "w"], 2, "--size"),
        (&["init", p2, "--block-size", "3K"], 2, "power of two"),
        (&["init", p3, "--block-size", "2M"], 2, "power of two"),
        (&["volume", "create", p, "w", "--size", "0"], 1, "size"),
        // Snapshot ids.
        (&["snapshot", "show", p, "999"], 1, "999"),
        (&["snapshot", "restore", p, "999"], 1, "999"),
        (&["snapshot", "delete", p, "999"], 1, "999"),
        (&["snapshot", "export", p, "999", x_raw], 1, "999"),
        (&["volume", "clone", p, "999", "c"], 1, "999"),
        (&["snapshot", "show", p, "abc"], 2, "abc"),
        (&["snapshot", "show", p, "-5"], 2, "-5"),
        (&["snapshot", "rename", p, "1"], 2, "--name"),
        // Pools.
        (&["volume", "list", missing], 1, "no cowsnap pool"),
        (
            &["snapshot", "list", missing, "--json"],
            1,
            "no cowsnap pool",
        ),
        (&["check", missing], 1, "no cowsnap pool"),
        // Names.
        (
            &["volume", "create", p, "bad name", "--size", "4K"],
            1,
            "name",
        ),
        (&["volume", "create", p, "a/b", "--size", "4K"], 1, "name"),
        (&["volume", "create", p, "", "--size", "4K"], 1, "name"),
        (
            &["volume", "create", p, &long_name, "--size", "4K"],
            1,
            "name",
        ),
        (
            &["volume", "create", p, "v", "--size", "4K"],
            1,
            "already exists",
        ),
        (&["snapshot", "create", p, "v", "no way"], 1, "name"),
        (&["snapshot", "create", p, "nope", "s"], 1, "nope"),
        (&["volume", "delete", p, "nope"], 1, "nope"),
        (&["volume", "export", p, "nope", y_raw], 1, "nope"),
        // Files.
        (
            &["volume", "write", p, "v", "--offset", "0", absent],
            1,
            "absent",
        ),
        (&["volume", "import", p, "w", absent], 1, "absent"),
        // Grammar.
        (&["frobnicate"], 2, "frobnicate"),
        (&["volume", "list"], 2, "POOL"),
        (&["check", p, "--bogus"], 2, "--bogus"),
    ];
    for (args, code, needle) in cases {
        let err = run_fail(args, *code);
        assert!(
            err.contains(needle),
            "{args:?}: {err:?} should mention {needle:?}"
        );
    }
    assert_eq!(f.volumes().len(), 1, "no failed command created anything");
}

#[test]
fn locked_pool_is_reported() {
    let f = Fixture::new();
    let holder = cowsnap::Pool::open(f.pool()).unwrap();
    let err = run_fail(&["volume", "list", f.pool()], 1);
    assert!(err.contains("locked"), "{err}");
    holder.close().unwrap();
    f.ok(&["volume", "list", f.pool()]);
}

#[test]
fn help_and_version_succeed() {
    let help = run_ok(&["--help"]);
    for cmd in ["init", "volume", "snapshot", "check", "stats"] {
        assert!(help.contains(cmd), "{help}");
    }
    assert!(run_ok(&["volume", "write", "--help"]).contains("--offset"));
    assert!(run_ok(&["--version"]).starts_with("cowsnap "));
}

#[test]
fn server_delete_takes_its_disk_and_snapshots() {
    let f = Fixture::new();
    f.ok(&["account", "create", f.pool(), "acme"]);
    for (id, name) in [("7", "web"), ("8", "db")] {
        f.ok(&[
            "server",
            "create",
            f.pool(),
            "--account",
            "acme",
            "--id",
            id,
            "--name",
            name,
            "--size",
            "1M",
        ]);
    }
    f.write("srv-7", 0, &pattern(1, 64 * 1024));
    f.snapshot("srv-7", "s1");
    f.write("srv-7", 0, &pattern(2, 64 * 1024));
    f.snapshot("srv-7", "s2");
    let used = f.stats()["used_bytes"].as_u64().unwrap();
    assert!(used >= 128 * 1024, "two versions of the data are held");

    let out = f.ok(&["server", "delete", f.pool(), "7"]);
    assert_eq!(
        out,
        "deleted server web (id 7, account acme) with its disk srv-7 and 2 snapshots\n"
    );
    let servers = f.json(&["server", "list", f.pool(), "--json"]);
    let ids: Vec<u64> = servers
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [8]);
    let volumes: Vec<String> = f
        .volumes()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(volumes, ["srv-8"]);
    let snapshots = f.json(&["snapshot", "list", f.pool(), "--json"]);
    assert_eq!(snapshots, Value::Array(vec![]));
    assert_eq!(f.stats()["used_bytes"], 0, "every block was freed");
    assert_eq!(f.json(&["check", f.pool(), "--json"])["ok"], true);

    let err = run_fail(&["server", "delete", f.pool(), "7"], 1);
    assert!(err.contains("Server not found"), "{err}");
    run_fail(&["server", "delete", f.pool(), "seven"], 2);
    run_fail(&["server", "delete", f.pool()], 2);
}

#[test]
fn token_revoke_never_echoes_a_secret() {
    let f = Fixture::new();
    f.ok(&["account", "create", f.pool(), "acme"]);
    let out = cowsnap()
        .args(["token", "create", f.pool(), "--account", "acme"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let real = String::from_utf8(out.stdout).unwrap().trim().to_string();
    // Unknown secrets: well formed, one digit off the real one, and mangled.
    let last = if real.ends_with('0') { "1" } else { "0" };
    let near = format!("{}{last}", &real[..real.len() - 1]);
    let unknown = format!("csk_{}", "ab".repeat(32));
    for secret in [
        unknown.as_str(),
        near.as_str(),
        &real[..40],
        &format!("{real}x"),
    ] {
        let err = run_fail(&["token", "revoke", f.pool(), secret], 1);
        assert!(
            err.contains("not found") || err.contains("No token"),
            "{err}"
        );
        assert!(!err.contains(&secret[4..]), "the secret was echoed: {err}");
        assert!(!err.contains(&real[4..20]), "{err}");
    }
    let listed = f.json(&["token", "list", f.pool(), "--json"]);
    assert_eq!(listed[0]["revoked"], false, "nothing was revoked");
    // An id that names nothing is repeated back: ids are not secret.
    let err = run_fail(&["token", "revoke", f.pool(), "tok_00000000"], 1);
    assert!(err.contains("tok_00000000"), "{err}");
}

#[test]
fn data_cache_mode_is_chosen_per_command_and_checked() {
    let f = Fixture::new();
    f.create_volume("v", "64K");
    let data = pattern(5, 5000);
    f.write("v", 100, &data);
    // The same pool, read through the page cache, holds the same bytes.
    let out = cowsnap()
        .args([
            "--data-cache",
            "page-cache",
            "volume",
            "read",
            f.pool(),
            "v",
        ])
        .args(["--offset", "100", "--length", "5000"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, data);
    let err = run_fail(&["volume", "list", f.pool(), "--data-cache", "bogus"], 2);
    assert!(err.contains("page-cache"), "names the choices: {err}");
}
