#!/usr/bin/env bash
# Creates (once) a Python venv with the official prometheus_client package, used by the
# tests to parse Baton's /stats/prometheus output with a real Prometheus text parser.
# Usage: prometheus-venv.sh VENV_DIR   (prints the venv's python path on success)
set -euo pipefail
venv="${1:?usage: $0 VENV_DIR}"
python="$venv/bin/python"
if [ -x "$python" ] && "$python" -c 'import prometheus_client.parser' 2>/dev/null; then
  echo "$python"
  exit 0
fi
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check 'prometheus_client>=0.17' >&2
"$python" -c 'import prometheus_client.parser'
echo "$python"
