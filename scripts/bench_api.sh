#!/usr/bin/env bash
# The service's two performance targets (docs/SERVICE.md, "Performance"):
#  (a) POST /snapshots/ + DELETE on a server with 4 GiB allocated, against the
#      in-process engine call plus a loopback HTTP no-op: benches/service_api.rs;
#  (b) GET /snapshots/ (first page) for an account with 1,000 servers x 5
#      snapshots under wrk, against the authenticated no-op's p99, same run.
# Needs: curl, python3, wrk (apt-get install -y wrk). Traffic stays on loopback.
# Usage: bash scripts/bench_api.sh [--skip-a] ; SERVERS=1000 DURATION=10s by default.
set -euo pipefail
cd "$(dirname "$0")/.."
SERVERS="${SERVERS:-1000}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-8}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }

cargo build --release --quiet
BIN=target/release/cowsnap

if [ "${1:-}" != "--skip-a" ]; then
  echo "== (a) create + delete round trip, 4 GiB allocated"
  cargo bench --quiet --bench service_api 2>/dev/null
fi

echo "== (b) listing with $SERVERS servers x 5 snapshots"
WORK="$(mktemp -d)"
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
COWSNAP_LOG=warn "$BIN" serve --pool "$WORK/pool" --listen 127.0.0.1:0 >"$WORK/out" 2>"$WORK/log" &
SERVER_PID=$!
for _ in $(seq 1 200); do
  grep -q '^listening on ' "$WORK/out" && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/log" >&2; exit 1; }
  sleep 0.05
done
BASE="$(sed -n 's/^listening on //p' "$WORK/out")"
ADMIN="$(sed -n 's/^admin token (shown once, store it now): //p' "$WORK/out")"

# Setup over one keep-alive connection: account, servers, snapshots.
TOKEN="$(python3 - "$BASE" "$ADMIN" "$SERVERS" <<'PY'
import http.client, json, sys, time
base, admin, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection(base.removeprefix("http://"))
def call(method, path, token, body=None):
    headers = {"Authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body)
    conn.request(method, path, data, headers)
    r = conn.getresponse()
    out = r.read()
    if r.status >= 300:
        sys.exit(f"{method} {path}: {r.status} {out!r}")
    return json.loads(out) if out else None
start = time.time()
call("POST", "/api/v1/admin/accounts/", admin, {"name": "bench"})
token = call("POST", "/api/v1/admin/accounts/bench/tokens/", admin)["token"]
for i in range(1, n + 1):
    call("POST", "/api/v1/admin/servers/", admin,
         {"id": i, "name": f"vps-{i}", "account": "bench", "size_bytes": 1 << 20})
    for s in range(5):
        call("POST", "/api/v1/snapshots/", token, {"server_id": i, "name": f"snap-{s}"})
page = call("GET", "/api/v1/snapshots/", token)
assert page["count"] == 5 * n and len(page["results"]) == 50, page["count"]
print(f"setup: {n} servers, {5 * n} snapshots in {time.time() - start:.1f} s", file=sys.stderr)
print(token)
PY
)"

p99() { # wrk --latency output -> p99 in milliseconds
  python3 -c '
import re, sys
text = sys.stdin.read()
m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
if not m: sys.exit("no p99 in wrk output:\n" + text)
v, unit = float(m.group(1)), m.group(2)
print(v * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit])'
}
run_wrk() {
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" "$BASE$1" | tee "$WORK/wrk.txt" >&2
  p99 <"$WORK/wrk.txt"
}
NOOP="$(run_wrk /api/v1/ping/)"
LIST="$(run_wrk /api/v1/snapshots/)"
python3 - "$NOOP" "$LIST" <<'PY'
import sys
noop, lst = float(sys.argv[1]), float(sys.argv[2])
ratio = lst / noop
print(f"p99 GET /ping/:      {noop:.3f} ms")
print(f"p99 GET /snapshots/: {lst:.3f} ms")
print(f"ratio: {ratio:.2f} (target <= 3.00: {'met' if ratio <= 3 else 'MISSED'})")
PY
