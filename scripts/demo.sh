#!/usr/bin/env bash
# The main job, end to end: build cowsnap, make a pool, import a disk image,
# snapshot it, change it, restore it, export it, and check the pool.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/cowsnap
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pool="$work/pool"

$bin init "$pool"
head -c 8M /dev/urandom > "$work/disk.raw"
truncate -s 64M "$work/disk.raw"                      # 8 MiB of data, 56 MiB of hole
$bin volume import "$pool" web01 "$work/disk.raw"
$bin snapshot create "$pool" web01 before-update --description "Before the update" --json
printf 'new content' | $bin volume write "$pool" web01 --offset 0 -
$bin snapshot list "$pool" --json
id=$($bin snapshot list "$pool" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
$bin snapshot restore "$pool" "$id"
$bin volume export "$pool" web01 "$work/restored.raw"
cmp "$work/disk.raw" "$work/restored.raw" && echo "restored image is byte-identical to the original"
du -h --apparent-size "$work/restored.raw"; du -h "$work/restored.raw"
$bin volume list "$pool" --json
$bin check "$pool" --json
