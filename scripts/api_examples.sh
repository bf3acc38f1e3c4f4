#!/usr/bin/env bash
# Run every curl example in docs/SERVICE.md against a fresh `cowsnap serve
# --demo` and check the HTTP status and the shape of each answer. Each
# example is written here exactly as in the documentation; the script fails
# if the documentation no longer contains one of them, or contains a curl
# example this script does not run, so the two cannot drift apart.
#
# Needs: curl, python3. Usage: bash scripts/api_examples.sh [path/to/cowsnap]
set -euo pipefail
cd "$(dirname "$0")/.."
DOC=docs/SERVICE.md
BIN="${1:-}"
if [ -z "$BIN" ]; then
  cargo build --release --quiet
  BIN=target/release/cowsnap
fi

WORK="$(mktemp -d)"
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" serve --pool "$WORK/pool" --listen 127.0.0.1:0 --demo >"$WORK/out" 2>"$WORK/log" &
SERVER_PID=$!
for _ in $(seq 1 200); do
  grep -q '^listening on ' "$WORK/out" && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/log" >&2; exit 1; }
  sleep 0.05
done
BASE="$(sed -n 's/^listening on //p' "$WORK/out")"
TOKEN="$(sed -n 's/^demo token: //p' "$WORK/out")"
ADMIN_TOKEN="$(sed -n 's/^admin token (shown once, store it now): //p' "$WORK/out")"
[ -n "$BASE" ] && [ -n "$TOKEN" ] && [ -n "$ADMIN_TOKEN" ] || { echo "serve printed no URL or tokens" >&2; exit 1; }
export BASE TOKEN ADMIN_TOKEN
SNAPSHOT_ID=
TOKEN_ID=
export SNAPSHOT_ID TOKEN_ID

passed=0
failed=0
LAST=
RAN="$WORK/ran"
: >"$RAN"

# Every curl in an example reports the HTTP status on a last line of its
# own. The documented commands run unchanged: this function stands in for
# curl in their shells, and its --write-out comes last, so it wins over one
# an example has (the status is what that one printed anyway).
curl() { command curl "$@" --write-out '\n%{http_code}'; }
export -f curl

# example NAME STATUS COMMAND CHECK: COMMAND must appear verbatim in the
# docs and answer with STATUS; its body is parsed as JSON into `o` (None
# when empty), and the Python expression CHECK must hold.
example() {
  local name="$1" status="$2" cmd="$3" check="$4" out got
  printf '%s\n' "$cmd" >>"$RAN"
  if ! grep -qxF -- "$cmd" "$DOC"; then
    echo "FAIL $name: not in $DOC: $cmd"; failed=$((failed + 1)); return
  fi
  out="$(bash -c "$cmd")"
  got="${out##*$'\n'}"
  LAST="${out%$'\n'*}"
  [ "$got" = "$out" ] && LAST=
  if [ "$got" != "$status" ]; then
    echo "FAIL $name: HTTP $got, expected $status"; echo "     got: $LAST"; failed=$((failed + 1)); return
  fi
  if python3 -c '
import json, sys
o = json.loads(sys.argv[1]) if sys.argv[1].strip() else None
sys.exit(0 if eval(sys.argv[2]) else 1)
' "$LAST" "$check" 2>"$WORK/err"; then
    echo "ok   $name ($got)"; passed=$((passed + 1))
  else
    echo "FAIL $name: $check"; echo "     got: $LAST"; cat "$WORK/err"; failed=$((failed + 1))
  fi
}

field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$LAST" "$1"; }

SNAP_KEYS='{"id","server","name","status","size_mb","created_at","description"}'
PAGE_KEYS='{"count","next","previous","results"}'
SERVER_KEYS='{"id","name","status","disk_size_bytes","snapshot_count","snapshot_limit"}'

example "list snapshots" 200 \
  'curl -s "$BASE/api/v1/snapshots/?server_id=12345" -H "Authorization: Bearer $TOKEN"' \
  "set(o) == $PAGE_KEYS and o['count'] == 0 and o['results'] == []"

example "create snapshot" 201 \
  "curl -s -X POST \"\$BASE/api/v1/snapshots/\" -H \"Authorization: Bearer \$TOKEN\" -H \"Content-Type: application/json\" -d '{\"server_id\": 12345, \"name\": \"before-update-snapshot\", \"description\": \"Before the kernel update\"}'" \
  "set(o) == $SNAP_KEYS | {'message'} and o['server'] == {'id': 12345, 'name': 'web-server-01'} and o['status'] == 'completed' and isinstance(o['size_mb'], int) and o['created_at'].endswith('Z')"
SNAPSHOT_ID="$(field id)"

example "list again" 200 \
  'curl -s "$BASE/api/v1/snapshots/?server_id=12345" -H "Authorization: Bearer $TOKEN"' \
  "o['count'] == 1 and set(o['results'][0]) == $SNAP_KEYS and o['results'][0]['id'] == $SNAPSHOT_ID"

example "show snapshot" 200 \
  'curl -s "$BASE/api/v1/snapshots/$SNAPSHOT_ID/" -H "Authorization: Bearer $TOKEN"' \
  "set(o) == $SNAP_KEYS and o['name'] == 'before-update-snapshot'"

example "patch snapshot" 200 \
  "curl -s -X PATCH \"\$BASE/api/v1/snapshots/\$SNAPSHOT_ID/\" -H \"Authorization: Bearer \$TOKEN\" -H \"Content-Type: application/json\" -d '{\"description\": \"Before the 6.8 kernel update\"}'" \
  "set(o) == $SNAP_KEYS and o['description'] == 'Before the 6.8 kernel update'"

example "restore snapshot" 200 \
  'curl -s -X POST "$BASE/api/v1/snapshots/$SNAPSHOT_ID/restore/" -H "Authorization: Bearer $TOKEN" -H "Idempotency-Key: restore-2025-01-15-a"' \
  "o['status'] == 'success' and isinstance(o['message'], str) and set(o['snapshot']) == {'id','name','created_at'} and o['server'] == {'id': 12345, 'name': 'web-server-01', 'status': 'stopped'}"

example "restore retried with the same key" 200 \
  'curl -s -X POST "$BASE/api/v1/snapshots/$SNAPSHOT_ID/restore/" -H "Authorization: Bearer $TOKEN" -H "Idempotency-Key: restore-2025-01-15-a"' \
  "o['status'] == 'success' and o['server']['status'] == 'stopped'"

example "list servers" 200 \
  'curl -s "$BASE/api/v1/servers/" -H "Authorization: Bearer $TOKEN"' \
  "set(o) == $PAGE_KEYS and o['count'] == 1 and set(o['results'][0]) == $SERVER_KEYS"

example "show server" 200 \
  'curl -s "$BASE/api/v1/servers/12345/" -H "Authorization: Bearer $TOKEN"' \
  "set(o) == $SERVER_KEYS and o['status'] == 'stopped' and o['snapshot_count'] == 1 and o['snapshot_limit'] == 5"

example "start server" 200 \
  'curl -s -X POST "$BASE/api/v1/servers/12345/start/" -H "Authorization: Bearer $TOKEN"' \
  "o['status'] == 'success' and o['server']['status'] == 'running'"

example "stop server" 200 \
  'curl -s -X POST "$BASE/api/v1/servers/12345/stop/" -H "Authorization: Bearer $TOKEN"' \
  "o['status'] == 'success' and o['server']['status'] == 'stopped'"

example "delete snapshot" 204 \
  "curl -s -o /dev/null -w '%{http_code}\\n' -X DELETE \"\$BASE/api/v1/snapshots/\$SNAPSHOT_ID/\" -H \"Authorization: Bearer \$TOKEN\"" \
  "o is None"

example "ping" 200 \
  'curl -s "$BASE/api/v1/ping/" -H "Authorization: Bearer $TOKEN"' \
  "o == {'status': 'ok', 'account': 'demo'}"

example "schema" 200 \
  'curl -s "$BASE/api/v1/schema/" -H "Authorization: Bearer $TOKEN"' \
  "o['openapi'].startswith('3.') and '/api/v1/snapshots/{id}/restore/' in o['paths']"

example "admin: create account" 201 \
  "curl -s -X POST \"\$BASE/api/v1/admin/accounts/\" -H \"Authorization: Bearer \$ADMIN_TOKEN\" -H \"Content-Type: application/json\" -d '{\"name\": \"acme\"}'" \
  "o['name'] == 'acme' and 'created_at' in o"

example "admin: create token" 201 \
  'curl -s -X POST "$BASE/api/v1/admin/accounts/acme/tokens/" -H "Authorization: Bearer $ADMIN_TOKEN"' \
  "set(o) == {'id','account','created_at','revoked','token'} and o['token'].startswith('csk_') and o['id'].startswith('tok_')"
TOKEN_ID="$(field id)"

example "admin: create server" 201 \
  "curl -s -X POST \"\$BASE/api/v1/admin/servers/\" -H \"Authorization: Bearer \$ADMIN_TOKEN\" -H \"Content-Type: application/json\" -d '{\"id\": 20001, \"name\": \"acme-web\", \"account\": \"acme\", \"size_bytes\": 1073741824}'" \
  "o['id'] == 20001 and o['account'] == 'acme' and o['disk_size_bytes'] == 1073741824 and o['status'] == 'running'"

example "admin: list servers" 200 \
  'curl -s "$BASE/api/v1/admin/servers/" -H "Authorization: Bearer $ADMIN_TOKEN"' \
  "o['count'] == 2 and {s['id'] for s in o['results']} == {12345, 20001}"

example "admin: list tokens" 200 \
  'curl -s "$BASE/api/v1/admin/accounts/acme/tokens/" -H "Authorization: Bearer $ADMIN_TOKEN"' \
  "o['count'] == 1 and 'token' not in o['results'][0] and o['results'][0]['revoked'] is False"

example "admin: revoke token" 204 \
  "curl -s -o /dev/null -w '%{http_code}\\n' -X DELETE \"\$BASE/api/v1/admin/tokens/\$TOKEN_ID/\" -H \"Authorization: Bearer \$ADMIN_TOKEN\"" \
  "o is None"

example "admin: delete server" 204 \
  "curl -s -o /dev/null -w '%{http_code}\\n' -X DELETE \"\$BASE/api/v1/admin/servers/20001/\" -H \"Authorization: Bearer \$ADMIN_TOKEN\"" \
  "o is None"

# The other direction: every curl example in the documentation ran above.
while IFS= read -r line; do
  if ! grep -qxF -- "$line" "$RAN"; then
    echo "FAIL documented example not run by this script: $line"; failed=$((failed + 1))
  fi
done < <(grep -E '^curl ' "$DOC")

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
