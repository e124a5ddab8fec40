#!/usr/bin/env bash
# Installs facet from BUILD_DIR into a temporary prefix, then configures, builds and runs the
# consumer project (tests/consumer) against it with find_package(facet).
set -euo pipefail
build_dir="$1"
source_dir="$(cd "$(dirname "$0")/.." && pwd)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build_dir" --prefix "$tmp/prefix" >/dev/null
cmake -S "$source_dir/tests/consumer" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$tmp/build" -j2 >/dev/null
out=$("$tmp/build/consumer" "$source_dir/weights/retinaface_mnet025_official.facet" \
      "${FACET_SHARED:-$source_dir/../shared}/upstream/images/multiface.jpg")
echo "$out"
[ "$(grep -c ': face ' <<<"$out")" -eq 6 ]
echo "1 passed, 0 failed"
