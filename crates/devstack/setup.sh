#!/usr/bin/env bash
# Prepares a fresh Debian/Ubuntu machine for `make test` and `make demo`:
#   1. checks the system tools the dev stack starts (Python venv support, PostgreSQL server
#      binaries, a C compiler for the TLS crate); installs the missing Debian packages when
#      running as root, otherwise exits with the exact apt-get command to run;
#   2. creates the project venv ($AUDITKIT_VENV, default <repo>/.venv) with the pinned
#      Python tools from requirements.txt. Re-running is cheap: a stamp records what was installed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${AUDITKIT_VENV:-$root/.venv}
requirements=$here/requirements.txt

missing=()
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v python3 >/dev/null || missing+=(python3)
command -v cc >/dev/null || missing+=(gcc)
command -v make >/dev/null || missing+=(make)
# Images without a Docker engine (release path tests): build, push, inspect, unpack, serve.
command -v buildah >/dev/null || missing+=(buildah)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v umoci >/dev/null || missing+=(umoci)
command -v docker-registry >/dev/null || missing+=(docker-registry)
# pg-auditor's HTML page is checked in a real headless browser.
command -v chromium >/dev/null || missing+=(chromium)
pg_bindir() {
  if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/postgres" ]; then pg_config --bindir; return; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}
bindir=$(pg_bindir || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ] || [ ! -x "$bindir/postgres" ]; then
  missing+=(postgresql)
fi

if [ ${#missing[@]} -gt 0 ]; then
  cmd="apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $cmd >/dev/null
  else
    echo "setup: missing system packages; run: sudo apt-get update && sudo $cmd" >&2
    exit 1
  fi
fi

# Parallel test processes may all arrive here on a fresh machine: one builds, the rest wait.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
stamp=$venv/.auditkit-requirements
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$stamp" "$requirements"; then
  exit 0
fi
echo "setup: creating Python venv $venv from $requirements" >&2
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
cp "$requirements" "$stamp"
