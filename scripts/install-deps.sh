#!/usr/bin/env bash
# Installs the Debian packages facet builds and tests with, if any is missing; arguments name more
# (scripts/sanitize.sh and scripts/fuzz.sh add clang and libclang-rt-dev).
set -euo pipefail

packages=(cmake g++ make libeigen3-dev libxsimd-dev libstb-dev libjpeg-dev doctest-dev libbenchmark-dev
          python3 python3-numpy pkg-config
          python3-dev python3-pybind11 python3-pytest python3-dask python3-distributed "$@")
# npm fetches face-api's landmark model (scripts/fetch-weights.sh); any npm on the PATH will do, so
# Debian's is installed only when there is none (it would clash with a Node.js from elsewhere).
command -v npm >/dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "facet: installing Debian packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "facet: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
