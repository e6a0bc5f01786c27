#!/usr/bin/env bash
# Installs everything cachesync needs on Debian 12, as root. Idempotent.
#   scripts/install.sh              build deps, local test servers, Python test tools (in .venv)
#   scripts/install.sh --build-only only the C libraries and tools needed to build (used by the Dockerfile)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_only=false
[ "${1:-}" = "--build-only" ] && build_only=true

if [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (it installs Debian packages)" >&2
    exit 1
fi

build_pkgs=(pkg-config libmongoc-dev libbson-dev libhiredis-dev libssl-dev ca-certificates)
# openssl: the TLS tests make their certificates with it; stunnel4 puts TLS in front of nx-27017.
run_pkgs=(redis-server redis-tools openssl stunnel4 curl python3 python3-venv procps psmisc)
pkgs=("${build_pkgs[@]}")
$build_only || pkgs+=("${run_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
$build_only && exit 0

# The Debian redis-server service is not needed: tests and the demo start their own servers.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now redis-server >/dev/null 2>&1 || true; fi

if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then :; fi
if ! command -v swift >/dev/null 2>&1 && ! [ -x /opt/swift/usr/bin/swift ]; then
    echo "install.sh: no Swift toolchain found (need Swift 6.x on PATH or at /opt/swift); see https://www.swift.org/install/linux/" >&2
    exit 1
fi
# The release binary is linked by the toolchain's own lld (Package.swift), which swift.org toolchains ship since 6.0.
swift_bin="$(dirname "$(readlink -f "$(command -v swift || echo /opt/swift/usr/bin/swift)")")"
if ! [ -x "$swift_bin/ld.lld" ]; then
    echo "install.sh: the Swift toolchain in $swift_bin has no ld.lld (swift.org toolchains 6.0 and later ship it)" >&2
    exit 1
fi

# Python tools (local MongoDB wire server, scripted server, chart checks) live in a project venv.
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
stamp="$venv/.requirements.sha"
want="$(sha256sum "$here/scripts/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$venv/bin/python" -m pip install -q -r "$here/scripts/requirements.txt"
    echo "$want" > "$stamp"
fi
echo "install.sh: done"
