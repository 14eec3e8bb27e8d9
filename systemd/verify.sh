#!/usr/bin/env bash
# Checks the units in this directory with `systemd-analyze verify`.
# - Installs Debian's `systemd` package (idempotently) when systemd-analyze is missing.
# - Works in containers where systemd is not PID 1: verify runs offline on copies of the
#   units whose /usr/bin paths point at stand-in executables in a temp dir, with
#   --man=no (no man pages needed) and --recursive-errors=no.
# - baton.service uses Type=notify-reload (systemd >= 253). On an older systemd, it is
#   verified with Type=notify substituted (everything else checked) and legacy/baton.service
#   (the 252 variant) is verified as is.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "verify.sh: installing the systemd package for systemd-analyze" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

version="$(systemd-analyze --version | awk 'NR==1 {print $2}')"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/units"
for exe in baton baton-supervisor; do
  printf '#!/bin/sh\nexit 0\n' > "$work/bin/$exe"
  chmod 755 "$work/bin/$exe"
done

# copy SRC NAME [sed-expr...]: rewrites executable paths into the temp dir.
copy() {
  local src="$1" name="$2"; shift 2
  sed -e "s#/usr/bin/#$work/bin/#g" "$@" "$src" > "$work/units/$name"
}

export SYSTEMD_LOG_LEVEL="${SYSTEMD_LOG_LEVEL:-notice}"
run_verify() {
  local out
  # verify prints problems on stderr and may exit 0 for some of them: fail on any output
  # line that is not about the host (missing /etc/machine-id etc. in containers).
  if ! out="$(cd "$work/units" && systemd-analyze verify --man=no --recursive-errors=no "$@" 2>&1)"; then
    echo "$out" >&2
    return 1
  fi
  out="$(echo "$out" | grep -v -e 'machine-id' -e '^$' || true)"
  if [ -n "$out" ]; then
    echo "$out" >&2
    return 1
  fi
}

status=0
if [ "$version" -ge 253 ]; then
  copy "$here/baton.service" baton.service
  echo "verify.sh: systemd $version: checking baton.service (Type=notify-reload) + baton.socket"
else
  copy "$here/baton.service" baton.service -e 's/^Type=notify-reload$/Type=notify/' -e '/^ReloadSignal=/d'
  echo "verify.sh: systemd $version < 253: checking baton.service with Type=notify substituted"
fi
cp "$here/baton.socket" "$work/units/baton.socket"
run_verify "$work/units/baton.service" "$work/units/baton.socket" || status=1

mkdir -p "$work/units/legacy"
copy "$here/legacy/baton.service" legacy/baton.service
cp "$here/baton.socket" "$work/units/legacy/baton.socket"
echo "verify.sh: checking legacy/baton.service (Type=notify + ExecReload=) + baton.socket"
run_verify "$work/units/legacy/baton.service" "$work/units/legacy/baton.socket" || status=1

if [ "$status" -eq 0 ]; then
  echo "verify.sh: OK"
fi
exit "$status"
