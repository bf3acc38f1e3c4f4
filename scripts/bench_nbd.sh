#!/usr/bin/env bash
# NBD export benchmark: fio's nbd engine against `cowsnap nbd` (64 KiB and
# 4 KiB block pools, each with the data file direct and through the page
# cache: `-pc`) and qemu-nbd serving a raw file (cache=writeback, and
# cache=none: `raw-direct`) and a qcow2 file, all on this host, over Unix
# sockets, in one run. Like compares with like: cowsnap direct with
# raw-direct, cowsnap -pc with raw.
#
# Tests (docs/NBD.md, "Performance"):
#   seqwrite   1 MiB sequential writes over the whole disk, then a flush
#   seqread    1 MiB sequential reads
#   randwrite  4 KiB random writes, iodepth 16, just after a snapshot: the
#              first 64 MiB of them (BENCH_COW_IO), so most land on blocks
#              the snapshot still shares (about 63% with 64 KiB blocks or
#              clusters). A timed run over a 1 GiB disk would soon be
#              rewriting blocks already copied, measuring plain overwrites.
#              (cowsnap: `snapshot create`; qcow2: `qemu-img snapshot -c`)
#   randread   4 KiB random reads, iodepth 16
#
# Fairness (shared/BENCHMARKING.md): caches are dropped before each test,
# the sides run in order A B C D then D C B A, and `sync` precedes every
# run. Every server is restarted for every run (qemu-img needs the qcow2
# file closed to snapshot it), and every run ends with a flush.
#
# Usage: scripts/bench_nbd.sh   (BENCH_SIZE=1G BENCH_RUNTIME=15 BENCH_COW_IO=64M
#                                BENCH_SIDES="cowsnap64k raw ..." BENCH_TESTS="randwrite ...")
# Needs: fio (with the nbd engine), qemu-img, qemu-nbd, python3; root for
# dropping caches (skipped with a warning otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE="${BENCH_SIZE:-1G}"
RUNTIME="${BENCH_RUNTIME:-15}"
COW_IO="${BENCH_COW_IO:-64M}"
read -r -a TESTS <<<"${BENCH_TESTS:-seqwrite seqread randwrite randread}"
WORK="${BENCH_DIR:-/var/tmp/cowsnap-bench}"
BIN="${COWSNAP_BIN:-target/release/cowsnap}"
read -r -a SIDES <<<"${BENCH_SIDES:-cowsnap64k cowsnap4k cowsnap64k-pc cowsnap4k-pc raw raw-direct qcow2}"

for tool in fio qemu-img qemu-nbd python3; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[ -n "${COWSNAP_BIN:-}" ] || cargo build --release --quiet
rm -rf "$WORK"
mkdir -p "$WORK"
SERVER_PID=
trap 'stop_server; rm -rf "$WORK"' EXIT

sock() { echo "$WORK/$1.sock"; }

drop_caches() {
  sync
  if ! echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then
    echo "warning: cannot drop caches (not root?)" >&2
  fi
}

setup() {
  case "$1" in
    cowsnap*)
      local bs=64K
      case "$1" in cowsnap4k*) bs=4K ;; esac
      "$BIN" init "$WORK/$1" --block-size "$bs" >/dev/null
      "$BIN" volume create "$WORK/$1" vol --size "$SIZE" >/dev/null
      ;;
    raw | raw-direct) qemu-img create -q -f raw "$WORK/$1.img" "$SIZE" ;;
    qcow2) qemu-img create -q -f qcow2 "$WORK/qcow2.img" "$SIZE" ;;
  esac
}

# The snapshot taken just before each write test.
snapshot() {
  local name="s$RANDOM$RANDOM"
  case "$1" in
    cowsnap*) "$BIN" snapshot create "$WORK/$1" vol "$name" >/dev/null ;;
    qcow2) qemu-img snapshot -c "$name" "$WORK/qcow2.img" ;;
    raw | raw-direct) ;;
  esac
}

start_server() {
  local s
  s=$(sock "$1")
  rm -f "$s"
  case "$1" in
    cowsnap*)
      local cache=direct
      case "$1" in *-pc) cache=page-cache ;; esac
      "$BIN" nbd "$WORK/$1" --listen "unix:$s" --data-cache "$cache" \
        >"$WORK/server.out" 2>"$WORK/server.err" &
      SERVER_PID=$!
      until grep -q "nbd listening on" "$WORK/server.out" 2>/dev/null; do
        kill -0 "$SERVER_PID" || { cat "$WORK/server.err" >&2; exit 1; }
        sleep 0.05
      done
      ;;
    raw | raw-direct | qcow2)
      local fmt=$1 cache=writeback
      [ "$1" = raw-direct ] && fmt=raw cache=none
      qemu-nbd -f "$fmt" -k "$s" -x vol -t --cache="$cache" --aio=threads \
        "$WORK/$1.img" 2>"$WORK/server.err" &
      SERVER_PID=$!
      until [ -S "$s" ]; do
        kill -0 "$SERVER_PID" || { cat "$WORK/server.err" >&2; exit 1; }
        sleep 0.05
      done
      ;;
  esac
}

stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
}

# fio_json SIDE TEST -> fio's JSON on stdout (fio prints a line before it).
fio_json() {
  local side=$1 test=$2 args
  case "$test" in
    seqwrite) args=(--rw=write --bs=1M --iodepth=8 --size="$SIZE") ;;
    seqread) args=(--rw=read --bs=1M --iodepth=8 --size="$SIZE") ;;
    randwrite) args=(--rw=randwrite --bs=4k --iodepth=16 --size="$SIZE" --io_size="$COW_IO") ;;
    randread) args=(--rw=randread --bs=4k --iodepth=16 --time_based --runtime="$RUNTIME") ;;
  esac
  fio --name="$test" --ioengine=nbd --uri="nbd+unix:///vol?socket=$(sock "$side")" \
    --end_fsync=1 --randrepeat=0 --output-format=json "${args[@]}" |
    python3 -c 'import sys; t = sys.stdin.read(); print(t[t.index("{"):])'
}

# One measurement into $WORK/result: IOPS and MiB/s of the run's main
# direction. Runs in this shell, so the exit trap knows the server.
measure() {
  local side=$1 test=$2
  case "$test" in *write) snapshot "$side" ;; esac
  sync
  start_server "$side"
  fio_json "$side" "$test" >"$WORK/out.json"
  stop_server
  python3 - "$WORK/out.json" "$test" >"$WORK/result" <<'EOF'
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]
d = job["write" if "write" in sys.argv[2] else "read"]
print(f'{d["iops"]:.0f} {d["bw_bytes"] / 2**20:.1f}')
EOF
}

for side in "${SIDES[@]}"; do setup "$side"; done
RESULTS="$WORK/results.txt"
: >"$RESULTS"
for test in "${TESTS[@]}"; do
  drop_caches
  order=("${SIDES[@]}")
  for ((i = ${#SIDES[@]} - 1; i >= 0; i--)); do order+=("${SIDES[$i]}"); done
  for side in "${order[@]}"; do
    measure "$side" "$test"
    read -r iops mibs <"$WORK/result"
    echo "$test $side $iops $mibs" | tee -a "$RESULTS" >&2
  done
done

python3 - "$RESULTS" "$SIZE" "$RUNTIME" "${SIDES[*]}" <<'EOF'
import sys
from collections import defaultdict
runs = defaultdict(list)
for line in open(sys.argv[1]):
    test, side, iops, mibs = line.split()
    runs[(test, side)].append((float(iops), float(mibs)))
sides = sys.argv[4].split()
bases = [b for b in ["raw", "raw-direct", "qcow2"] if b in sides]
mean = lambda xs: sum(xs) / len(xs)
print(f"\nfio nbd engine, Unix sockets, disk {sys.argv[2]}, random tests {sys.argv[3]} s; mean of 2 runs (A B C ... C B A)\n")
print("| test | side | IOPS | MiB/s | " + " | ".join(f"vs {b}" for b in bases) + " |")
print("| --- | --- | ---: | ---: | " + " | ".join("---:" for _ in bases) + " |")
for test in [t for t in ["seqwrite", "seqread", "randwrite", "randread"] if any(k[0] == t for k in runs)]:
    metric = 1 if test.startswith("seq") else 0
    base = {s: mean([r[metric] for r in runs[(test, s)]]) for s in bases}
    for side in sides:
        rs = runs[(test, side)]
        v = mean([r[metric] for r in rs])
        ratios = " | ".join(f"{v / base[b]:.2f}x" for b in bases)
        print(f"| {test} | {side} | {mean([r[0] for r in rs]):.0f} | {mean([r[1] for r in rs]):.1f} | {ratios} |")
EOF
