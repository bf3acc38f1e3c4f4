#!/usr/bin/env bash
# Runs every fuzz target briefly from its checked-in corpus, so none can rot.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${FUZZ_RUNS:-3000}"
if ! command -v cargo-fuzz >/dev/null; then
  cargo install cargo-fuzz --locked
fi
cd fuzz
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target"
  echo "--- $target ($runs runs)"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "corpus/$target" -- -runs="$runs" -max_total_time=120
done
