#!/usr/bin/env bash
# Runs every fuzz target briefly, starting from its checked-in seed corpus,
# so none can rot. One build without a sanitizer serves all targets: the
# engine forbids unsafe code, and overflow checks stay on.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${FUZZ_RUNS:-2000}"
secs="${FUZZ_SECONDS:-60}"
if ! command -v cargo-fuzz >/dev/null; then
  cargo install cargo-fuzz --locked
fi
cd fuzz
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in $(cargo fuzz list); do
  # Copy the seeds: libFuzzer adds what it finds to the corpus directory.
  mkdir -p "$work/$target"
  if [ -d "corpus/$target" ]; then cp -r "corpus/$target/." "$work/$target/"; fi
  echo "--- $target (at most $runs runs or $secs s)"
  RUSTC_BOOTSTRAP=1 cargo fuzz run -s none "$target" "$work/$target" -- \
    -runs="$runs" -max_total_time="$secs" -print_final_stats=1 2>&1 | tail -n 12
  test "${PIPESTATUS[0]}" -eq 0
done
