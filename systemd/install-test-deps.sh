#!/usr/bin/env bash
# Installs (idempotently) what the cross-process tests use besides cargo:
# - systemd-socket-activate and systemd-analyze (Debian package `systemd`; not started,
#   the tests only run the tools),
# - python3, which runs the stand-in baton of tests/tests/supervisor_lifecycle.rs,
# - openssl, which makes the RSA keys of tests/tests/tls.rs (ring cannot generate them).
set -euo pipefail
missing=()
command -v systemd-socket-activate >/dev/null 2>&1 || missing+=(systemd)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-test-deps.sh: nothing to install"
  exit 0
fi
mapfile -t unique < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "install-test-deps.sh: installing ${unique[*]}"
export DEBIAN_FRONTEND=noninteractive
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${unique[@]}" >/dev/null
