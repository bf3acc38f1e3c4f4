#!/usr/bin/env bash
# The test suite, on a fresh machine: install the real clients the NBD and
# QEMU tests drive (and curl for the API examples), then run every target.
# README's test command, and what .ci/run runs.
#
# Without root (and without sudo) missing tools are reported and the tests
# that need them skip loudly; with COWSNAP_REQUIRE_TOOLS=1 they fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v qemu-img >/dev/null || missing+=(qemu-utils)
command -v nbdinfo >/dev/null || missing+=(libnbd-bin)
command -v nbdcopy >/dev/null || missing+=(libnbd-bin)
command -v fio >/dev/null || missing+=(fio)
command -v cmp >/dev/null || missing+=(diffutils)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
  as_root=()
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      as_root=(sudo -n)
    else
      as_root=(false)
    fi
  fi
  if [ "${as_root[*]}" = false ]; then
    echo "scripts/test.sh: cannot install ${missing[*]} (not root, no sudo); the tests that need them will skip" >&2
  else
    "${as_root[@]}" apt-get update -q
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  fi
fi
if [ "${COWSNAP_REQUIRE_TOOLS:-}" = 1 ]; then
  for tool in qemu-io qemu-img qemu-nbd nbdinfo nbdcopy fio cmp curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool after installing packages" >&2; exit 1; }
  done
fi

cargo test --all-targets
