#!/usr/bin/env python3
"""Measure cowsnap's issue-2 targets beside qemu-img/qemu-io doing the same work, in one run.

Every figure is a median of repeated whole-process runs; targets are ratios
within this run, because the machines are shared and noisy. Usage:

    cargo build --release
    python3 scripts/compare_qemu.py [--large-gib 8] [--reps 7] [--out results.json]

Needs qemu-img and qemu-io (qemu-utils) and ~3x the large size in free disk.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COWSNAP = os.path.join(ROOT, "target", "release", "cowsnap")
MiB = 1 << 20
GiB = 1 << 30


GNU_TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None


def run(cmd, check=True, stdout=subprocess.DEVNULL):
    """Run a command; return (seconds, peak RSS in KiB or 0, stdout bytes).

    Peak RSS comes from GNU time when installed: rusage of a child forked from
    this Python process would count Python's own memory from before exec.
    """
    full = [GNU_TIME, "-f", "__peak_rss_kib__ %M"] + cmd if GNU_TIME else cmd
    start = time.perf_counter()
    proc = subprocess.run(full, stdout=subprocess.PIPE if stdout is None else stdout, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    err = proc.stderr.decode(errors="replace")
    rss = 0
    for line in err.splitlines():
        if line.startswith("__peak_rss_kib__ "):
            rss = int(line.split()[1])
    if check and proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    return elapsed, rss, proc.stdout if stdout is None else b""


def sync():
    subprocess.run(["sync"], check=True)


def drop_caches():
    sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


def median(xs):
    return statistics.median(xs)


def du(path):
    out = subprocess.run(["du", "-sB1", path], check=True, capture_output=True, text=True).stdout
    return int(out.split()[0])


def make_image(path, size, seed=1):
    """Non-zero, incompressible-ish data built from one random MiB, written fast."""
    rnd = os.urandom(MiB)
    with open(path, "wb") as f:
        done = 0
        i = 0
        while done < size:
            n = min(MiB, size - done)
            # Vary each MiB so blocks differ.
            chunk = bytes([i & 0xFF or 1]) + rnd[1:n]
            f.write(chunk)
            done += n
            i += 1
    sync()


class Side:
    """One pool (cowsnap) or one qcow2 file, with a volume of `allocated` bytes."""

    def __init__(self, work, name, image, allocated):
        self.work = work
        self.pool = os.path.join(work, f"{name}.pool")
        self.qcow = os.path.join(work, f"{name}.qcow2")
        run([COWSNAP, "init", self.pool])
        run([COWSNAP, "volume", "import", self.pool, "vol", image])
        run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", image, self.qcow])
        sync()


def cowsnap_json(args):
    _, _, out = run([COWSNAP] + args, stdout=None)
    return json.loads(out)


def timed_reps(reps, prepare, cmd_fn):
    times, rss = [], []
    for i in range(reps):
        if prepare:
            prepare(i)
        sync()
        t, r, _ = run(cmd_fn(i))
        times.append(t)
        rss.append(r)
    return median(times), max(rss)


def target1_and_2(small, large, reps, results):
    """Create/restore/clone and delete time at small vs large allocation."""
    out = {}
    for label, side in (("small", small), ("large", large)):
        pool = side.pool
        base = cowsnap_json(["snapshot", "create", pool, "vol", "base", "--json"])["id"]
        ids = []

        def create_cmd(i):
            return [COWSNAP, "snapshot", "create", pool, "vol", f"t{i}"]

        t_create, rss_c = timed_reps(reps, None, create_cmd)
        t_restore, rss_r = timed_reps(reps, None, lambda i: [COWSNAP, "snapshot", "restore", pool, str(base)])
        t_clone, rss_cl = timed_reps(reps, None, lambda i: [COWSNAP, "volume", "clone", pool, str(base), f"clone{i}"])
        # Delete of a snapshot owning 1 MiB exclusively: snapshot, overwrite 1 MiB, delete.
        one_mib = os.path.join(side.work, "onemib")
        with open(one_mib, "wb") as f:
            f.write(os.urandom(MiB))

        def prep_delete(i):
            sid = cowsnap_json(["snapshot", "create", pool, "vol", f"del{i}", "--json"])["id"]
            run([COWSNAP, "volume", "write", pool, "vol", "--offset", str(i * MiB), one_mib])
            ids.append(sid)

        t_delete, rss_d = timed_reps(reps, prep_delete, lambda i: [COWSNAP, "snapshot", "delete", pool, str(ids[i])])
        # qemu-img on the same allocation.
        q = side.qcow
        t_qcreate, _ = timed_reps(reps, None, lambda i: ["qemu-img", "snapshot", "-c", f"t{i}", q])
        t_qapply, _ = timed_reps(reps, None, lambda i: ["qemu-img", "snapshot", "-a", "t0", q])
        t_qdelete, _ = timed_reps(reps, None, lambda i: ["qemu-img", "snapshot", "-d", f"t{i}", q])
        out[label] = dict(create=t_create, restore=t_restore, clone=t_clone, delete=t_delete,
                          qemu_create=t_qcreate, qemu_apply=t_qapply, qemu_delete=t_qdelete,
                          peak_rss_kib=max(rss_c, rss_r, rss_cl, rss_d))
    s, l = out["small"], out["large"]
    results["target1"] = {
        "cowsnap_create_ratio": l["create"] / s["create"],
        "cowsnap_restore_ratio": l["restore"] / s["restore"],
        "cowsnap_clone_ratio": l["clone"] / s["clone"],
        "qemu_create_ratio": l["qemu_create"] / s["qemu_create"],
        "qemu_apply_ratio": l["qemu_apply"] / s["qemu_apply"],
        "seconds": out,
    }
    results["target2"] = {
        "cowsnap_delete_ratio": l["delete"] / s["delete"],
        "qemu_delete_ratio": l["qemu_delete"] / s["qemu_delete"],
    }
    results["target6_peak_rss_kib_large_snapshot_cmds"] = l["peak_rss_kib"]


def target3(work, size, reps, results):
    """1 GiB sequential write over fully shared blocks vs dd conv=fsync onto raw."""
    src = os.path.join(work, "write-src.raw")
    make_image(src, size)
    pool = os.path.join(work, "t3.pool")
    run([COWSNAP, "init", pool])
    run([COWSNAP, "volume", "import", pool, "vol", src])
    raw = os.path.join(work, "t3.raw")
    shutil.copyfile(src, raw)
    qcow = os.path.join(work, "t3.qcow2")
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", src, qcow])
    dd_t, cs_t, q_t, fresh_t = [], [], [], []
    fresh = os.path.join(work, "t3-fresh.raw")
    for i in range(reps):
        # A B B A ordering with sync before each, per BENCHMARKING.md.
        order = ["dd", "fresh", "cs", "q"] if i % 2 == 0 else ["q", "cs", "fresh", "dd"]
        for which in order:
            if which == "dd":
                sync()
                t, _, _ = run(["dd", f"if={src}", f"of={raw}", "bs=1M", "conv=notrunc,fsync", "status=none"])
                dd_t.append(t)
            elif which == "fresh":
                # The floor for any copy-on-write design: the same bytes into
                # space the file system has to allocate (as every write over
                # shared blocks must), direct, then fsync.
                if os.path.exists(fresh):
                    os.unlink(fresh)
                sync()
                t, _, _ = run(["dd", f"if={src}", f"of={fresh}", "bs=4M", "oflag=direct", "conv=fsync", "status=none"])
                fresh_t.append(t)
            elif which == "cs":
                run([COWSNAP, "snapshot", "create", pool, "vol", f"w{i}"])
                sync()
                t, rss, _ = run([COWSNAP, "volume", "write", pool, "vol", "--offset", "0", src])
                cs_t.append(t)
                results.setdefault("target6_peak_rss_kib_write", 0)
                results["target6_peak_rss_kib_write"] = max(results["target6_peak_rss_kib_write"], rss)
            else:
                run(["qemu-img", "snapshot", "-c", f"w{i}", qcow])
                sync()
                t, _, _ = run(["qemu-io", "-f", "qcow2", "-c", f"write -s {src} 0 {size}", "-c", "flush", qcow])
                q_t.append(t)
    results["target3"] = {
        "dd_seconds": median(dd_t), "cowsnap_seconds": median(cs_t), "qemu_io_seconds": median(q_t),
        "dd_fresh_space_seconds": median(fresh_t),
        "cowsnap_vs_dd_throughput": median(dd_t) / median(cs_t),
        "qemu_vs_dd_throughput": median(dd_t) / median(q_t),
        "dd_fresh_space_vs_dd_throughput": median(dd_t) / median(fresh_t),
        "cowsnap_vs_dd_fresh_space_throughput": median(fresh_t) / median(cs_t),
    }


def target4(work, size, reps, results):
    """Import and export vs cp --sparse=always of the same raw image."""
    src = os.path.join(work, "io-src.raw")
    make_image(src, size // 2)
    with open(src, "r+b") as f:
        f.truncate(size)  # half data, half hole
    sync()
    cp_t, imp_t, exp_t, qimp_t, qexp_t = [], [], [], [], []
    cps_t = []
    # Every timed copy starts from cold caches: the image cp reads and the
    # pool export reads would otherwise be cached to different degrees.
    for i in range(reps):
        dst = os.path.join(work, f"cp{i}.raw")
        drop_caches()
        cp_t.append(run(["cp", "--sparse=always", src, dst])[0])
        os.unlink(dst)
        # Import makes what it wrote durable before it returns; cp does not.
        drop_caches()
        cps_t.append(run(["sh", "-c", f"cp --sparse=always {src} {dst} && sync {dst}"])[0])
        os.unlink(dst)
        pool = os.path.join(work, f"imp{i}.pool")
        run([COWSNAP, "init", pool])
        drop_caches()
        imp_t.append(run([COWSNAP, "volume", "import", pool, "vol", src])[0])
        out = os.path.join(work, f"exp{i}.raw")
        drop_caches()
        t, rss, _ = run([COWSNAP, "volume", "export", pool, "vol", out])
        exp_t.append(t)
        results["target6_peak_rss_kib_io"] = max(results.get("target6_peak_rss_kib_io", 0), rss)
        if i == 0:
            same = subprocess.run(["cmp", src, out]).returncode == 0
            results["target4_export_identical"] = same
        os.unlink(out)
        shutil.rmtree(pool)
        q = os.path.join(work, f"imp{i}.qcow2")
        drop_caches()
        qimp_t.append(run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", src, q])[0])
        drop_caches()
        qexp_t.append(run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", q, out])[0])
        os.unlink(out)
        os.unlink(q)
    cp = median(cp_t)
    results["target4"] = {
        "cp_seconds": cp, "import_seconds": median(imp_t), "export_seconds": median(exp_t),
        "import_vs_cp": cp / median(imp_t), "export_vs_cp": cp / median(exp_t),
        "cp_then_sync_seconds": median(cps_t), "import_vs_cp_then_sync": median(cps_t) / median(imp_t),
        "qemu_convert_in_vs_cp": cp / median(qimp_t), "qemu_convert_out_vs_cp": cp / median(qexp_t),
    }


def target5(work, results):
    """du after importing 1 GiB of random data, and after deleting everything."""
    src = os.path.join(work, "rand1g.raw")
    with open(src, "wb") as f:
        for _ in range(1024):
            f.write(os.urandom(MiB))
    sync()
    pool = os.path.join(work, "t5.pool")
    run([COWSNAP, "init", pool])
    run([COWSNAP, "volume", "import", pool, "vol", src])
    sync()
    after_import = du(pool)
    ids = [cowsnap_json(["snapshot", "create", pool, "vol", f"s{i}", "--json"])["id"] for i in range(3)]
    run([COWSNAP, "volume", "write", pool, "vol", "--offset", "0", src])
    for sid in ids:
        run([COWSNAP, "snapshot", "delete", pool, str(sid)])
    run([COWSNAP, "volume", "delete", pool, "vol"])
    sync()
    after_delete = du(pool)
    q = os.path.join(work, "t5.qcow2")
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", src, q])
    results["target5"] = {
        "pool_du_after_1GiB_import": after_import, "ratio_to_1GiB": after_import / GiB,
        "pool_du_after_delete_all": after_delete, "after_delete_fraction": after_delete / after_import,
        "qcow2_du_after_1GiB_convert": du(q),
    }


def target7(work, reps, results):
    """1,000 snapshots: create and list cost, bytes per snapshot."""
    img = os.path.join(work, "t7.raw")
    make_image(img, 64 * MiB)
    pool = os.path.join(work, "t7.pool")
    run([COWSNAP, "init", pool])
    run([COWSNAP, "volume", "import", pool, "vol", img])
    q = os.path.join(work, "t7.qcow2")
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", img, q])

    def create_times(prefix):
        return median([run([COWSNAP, "snapshot", "create", pool, "vol", f"{prefix}{i}"])[0] for i in range(reps)])

    def qcreate_times(prefix):
        return median([run(["qemu-img", "snapshot", "-c", f"{prefix}{i}", q])[0] for i in range(reps)])

    c0, q0 = create_times("a"), qcreate_times("a")
    # Listing one snapshot: a fresh pool with exactly one.
    one = os.path.join(work, "t7one.pool")
    run([COWSNAP, "init", one])
    run([COWSNAP, "volume", "import", one, "vol", img])
    run([COWSNAP, "snapshot", "create", one, "vol", "only"])
    list1 = median([run([COWSNAP, "snapshot", "list", one, "--json"])[0] for _ in range(reps)])
    sync()
    du_before, q_before = du(pool), du(q)
    n_before = len(cowsnap_json(["snapshot", "list", pool, "--json"]))
    for i in range(1000 - n_before):
        run([COWSNAP, "snapshot", "create", pool, "vol", f"k{i}"])
        run(["qemu-img", "snapshot", "-c", f"k{i}", q])
    sync()
    du_after, q_after = du(pool), du(q)
    list1000 = median([run([COWSNAP, "snapshot", "list", pool, "--json"])[0] for _ in range(reps)])
    qlist = median([run(["qemu-img", "snapshot", "-l", q])[0] for _ in range(reps)])
    c1000, q1000 = create_times("z"), qcreate_times("z")
    added = 1000 - n_before
    results["target7"] = {
        "create_ratio_1000_vs_0": c1000 / c0, "qemu_create_ratio_1000_vs_0": q1000 / q0,
        "list_1000_vs_1": list1000 / list1, "qemu_list_1000_seconds": qlist, "cowsnap_list_1000_seconds": list1000,
        "bytes_per_snapshot": (du_after - du_before) / added, "qemu_bytes_per_snapshot": (q_after - q_before) / added,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--large-gib", type=float, default=8)
    ap.add_argument("--write-gib", type=float, default=1)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--only", default="1,3,4,5,7")
    args = ap.parse_args()
    if not os.path.exists(COWSNAP):
        sys.exit("build first: cargo build --release")
    for tool in ("qemu-img", "qemu-io"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (apt-get install qemu-utils)")
    work = tempfile.mkdtemp(prefix="cowsnap-cmp-", dir=args.workdir)
    only = set(args.only.split(","))
    results = {"reps": args.reps, "large_gib": args.large_gib}
    try:
        drop_caches()
        if "1" in only:
            small_img = os.path.join(work, "small.raw")
            large_img = os.path.join(work, "large.raw")
            make_image(small_img, 64 * MiB)
            make_image(large_img, int(args.large_gib * GiB))
            small = Side(work, "small", small_img, 64 * MiB)
            large = Side(work, "large", large_img, int(args.large_gib * GiB))
            os.unlink(large_img)
            drop_caches()
            target1_and_2(small, large, args.reps, results)
            shutil.rmtree(large.pool)
            os.unlink(large.qcow)
        if "3" in only:
            drop_caches()
            target3(work, int(args.write_gib * GiB), max(3, args.reps // 2), results)
        if "4" in only:
            drop_caches()
            target4(work, int(args.write_gib * GiB), max(3, args.reps // 2), results)
        if "5" in only:
            drop_caches()
            target5(work, results)
        if "7" in only:
            drop_caches()
            target7(work, args.reps, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(results, indent=2, sort_keys=True)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
