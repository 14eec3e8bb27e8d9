#!/usr/bin/env bash
# Runs Baton's whole test suite on a fresh machine: installs what the tests need
# (idempotently: Debian's systemd package for systemd-socket-activate/systemd-analyze,
# python3, openssl; the Prometheus parser venv is made by the test that uses it), checks the
# systemd units, builds the binaries the cross-process tests start, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

systemd/install-test-deps.sh
systemd/verify.sh

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
cargo build --workspace --bins
cargo test --workspace --no-fail-fast "$@"
