#!/usr/bin/env bash
# Builds Baton and serves the bundled default config (examples/quickstart.yaml):
# direct responses on 127.0.0.1:10000, /service proxied to a second local listener,
# admin on 127.0.0.1:9901. Ctrl-C drains and exits.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin baton
exec target/release/baton -c examples/quickstart.yaml "$@"
