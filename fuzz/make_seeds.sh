#!/bin/sh
# Regenerate the checked-in seed corpus, fuzz/corpus/<target>/seed-*, from
# the generators in tests/model_proptest.rs (the same test then checks that
# every seed runs clean through its target). Run from anywhere.
set -eu
cd "$(dirname "$0")/.."
COWSNAP_WRITE_SEEDS=1 cargo test --test model_proptest fuzz_seed_corpus_is_valid
find fuzz/corpus -type f -name 'seed-*' -printf '%s\n' | awk '{ s += $1 } END { print s " bytes of seeds" }'
