#!/usr/bin/env bash
# Runs Baton's whole test suite on a fresh machine: installs what the tests need
# (idempotently), builds the binaries the cross-process tests start, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Python tools some tests use (Prometheus text parser); a project-local venv.
if [ -x shared-stats/scripts/setup-python.sh ]; then
  shared-stats/scripts/setup-python.sh
fi

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
cargo build --workspace --bins
cargo test --workspace "$@"
