#!/usr/bin/env bash
# Installs facet from BUILD_DIR into a temporary prefix, then configures, builds and runs the
# consumer project (tests/consumer) against it with find_package(facet), builds the same example
# with plain g++ and the installed pkg-config file (facet.pc: the headers alone), and imports the
# installed Python package (if built).
set -euo pipefail
build_dir="$1"
source_dir="$(cd "$(dirname "$0")/.." && pwd)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build_dir" --prefix "$tmp/prefix" >/dev/null
cmake -S "$source_dir/tests/consumer" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$tmp/build" -j2 >/dev/null
model="$source_dir/weights/retinaface_mnet025_official.facet"
image="${FACET_SHARED:-$source_dir/../shared}/upstream/images/multiface.jpg"
out=$("$tmp/build/consumer" "$model" "$image")
echo "$out"
[ "$(grep -c ': face ' <<<"$out")" -eq 6 ]
# The CMake consumer has the three ISA objects: the run-time choice can be forced to SSE4.1 (a
# headers-alone build, compiled for baseline x86-64, would have SSE2 kernels only and refuse).
[ "$(FACET_ISA=sse41 "$tmp/build/consumer" "$model" "$image")" = "$out" ]

pc=$(find "$tmp/prefix" -name facet.pc)
[ -n "$pc" ] || { echo "no facet.pc installed under $tmp/prefix" >&2; exit 1; }
# shellcheck disable=SC2046 # pkg-config's output is a list of flags
g++ -O2 "$source_dir/examples/api_example.cpp" -o "$tmp/pkg_config_example" \
    $(PKG_CONFIG_PATH="$(dirname "$pc")" pkg-config --cflags --libs facet)
pkg_out=$("$tmp/pkg_config_example" "$model" "$image")
[ "$pkg_out" = "$out" ] || { echo "the pkg-config build finds other faces:" >&2; echo "$pkg_out" >&2; exit 1; }

# The Python package, when the build has it: importable from the prefix, and finding the faces.
if compgen -G "$build_dir/python/facet/_facet*.so" >/dev/null; then
  package=$(find "$tmp/prefix" -path '*dist-packages/facet/__init__.py')
  [ -n "$package" ] || { echo "the Python package is not installed under $tmp/prefix" >&2; exit 1; }
  faces=$(cd "$tmp" && PYTHONPATH="$(dirname "$(dirname "$package")")" /usr/bin/python3 -c \
    "import facet, sys; assert facet.__file__.startswith('$tmp'), facet.__file__
print(len(facet.RetinaFace(sys.argv[1]).detect(facet.load_image(sys.argv[2]))))" "$model" "$image")
  [ "$faces" -eq 6 ] || { echo "the installed Python package finds $faces faces, not 6" >&2; exit 1; }
fi
echo "passed"
