#!/usr/bin/env bash
# deps.sh: installs the Debian packages cuvae needs, only those missing.
# Used by `make deps` (and so by `make run` / `make test`).
set -euo pipefail
need=()
for pkg in libcjson-dev libopenblas-dev libdnnl-dev zlib1g-dev libpng-dev gzip gnuplot-nox g++ python3 nodejs npm ${CUVAE_EXTRA_DEBS:-}; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
# npm may come from elsewhere than Debian (node images): accept it if on PATH
if command -v npm >/dev/null 2>&1; then
    need=("${need[@]/nodejs/}"); need=("${need[@]/npm/}")
fi
pkgs=()
for p in "${need[@]}"; do [ -n "$p" ] && pkgs+=("$p"); done
if [ ${#pkgs[@]} -eq 0 ]; then
    echo "deps: all present"
    exit 0
fi
echo "deps: installing ${pkgs[*]}"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ -n "$SUDO" ] && ! command -v sudo >/dev/null 2>&1; then
    echo "deps: error: installing needs root, and sudo is not installed: run as root, or install ${pkgs[*]} yourself" >&2
    exit 1
fi
if ! $SUDO apt-get update -qq; then
    echo "deps: error: apt-get update failed (is the Debian mirror reachable?)" >&2; exit 1
fi
if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null; then
    echo "deps: error: apt-get install ${pkgs[*]} failed" >&2; exit 1
fi
echo "deps: done"
