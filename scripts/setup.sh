#!/usr/bin/env bash
# Install what imgsieve needs on a Debian/Ubuntu machine, idempotently: apt packages, then a venv
# with the project and its pinned dependencies. A second run with nothing changed does nothing.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
APT_PACKAGES=(
    python3-venv curl mariadb-server mariadb-client
    podman runc mmdebstrap netavark aardvark-dns iptables nftables openssh-client
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup: installing apt packages: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating virtualenv $VENV"
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.imgsieve-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -e "$stamp" ]; then
    echo "setup: installing imgsieve and its pinned dependencies into $VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e '.[model,ops,dev]'
    rm -f "$VENV"/.imgsieve-*
    touch "$stamp"
fi
echo "setup: ready ($("$VENV/bin/imgsieve" --version))"
