#!/usr/bin/env bash
# examples/api_example.cpp built with plain g++, no CMake, the two ways the README describes:
#   headers alone (kernels for the program's own flags: here baseline x86-64, so SSE2), and
#   headers plus the three ISA objects (run-time choice; every file compiled with -DFACET_WITH_ISA_OBJECTS).
# Both must link, run and find the same faces on a golden image. A third build mixes the two (the
# main file without the macro, linked with the ISA objects): its kernels must stay apart, so no
# kernel symbol of the linked program may be weak (a weak one is merged across objects built with
# different flags; kernels/kernel_set.hpp says why that is unsafe).
#
# Usage: tests/test_headers_alone.sh [CXX]
set -euo pipefail
cxx="${1:-g++}"
source_dir="$(cd "$(dirname "$0")/.." && pwd)"
model="$source_dir/weights/retinaface_mnet025_official.facet"
image="${FACET_SHARED:-$source_dir/../shared}/upstream/images/multiface.jpg"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags=(-std=c++17 -O2 -pthread -I"$source_dir/include" -I/usr/include/eigen3)
arch="$source_dir/include/facet/arch"

"$cxx" "${flags[@]}" -DFACET_WITH_ISA_OBJECTS -c "$source_dir/examples/api_example.cpp" -o "$tmp/main_isa.o"
"$cxx" "${flags[@]}" -c "$source_dir/examples/api_example.cpp" -o "$tmp/main_native.o"
"$cxx" -pthread "$tmp/main_native.o" -o "$tmp/headers_alone"
"$cxx" "${flags[@]}" -DFACET_WITH_ISA_OBJECTS -msse4.1 -c "$arch/isa_sse41.cpp" -o "$tmp/isa_sse41.o" &
"$cxx" "${flags[@]}" -DFACET_WITH_ISA_OBJECTS -mavx2 -mfma -c "$arch/isa_avx2.cpp" -o "$tmp/isa_avx2.o" &
"$cxx" "${flags[@]}" -DFACET_WITH_ISA_OBJECTS -mavx512f -mavx512bw -mavx512bf16 -mavx2 -mfma -Wno-maybe-uninitialized -c "$arch/isa_avx512.cpp" \
    -o "$tmp/isa_avx512.o"
wait %1 %2
"$cxx" -pthread "$tmp/main_isa.o" "$tmp"/isa_*.o -o "$tmp/with_objects"
"$cxx" -pthread "$tmp/main_native.o" "$tmp"/isa_*.o -o "$tmp/mixed"

"$tmp/headers_alone" "$model" "$image" > "$tmp/headers_alone.txt"
FACET_ISA=sse41 "$tmp/with_objects" "$model" "$image" > "$tmp/with_objects_sse41.txt"
"$tmp/with_objects" "$model" "$image" > "$tmp/with_objects.txt"
"$tmp/mixed" "$model" "$image" > "$tmp/mixed.txt"
cat "$tmp/headers_alone.txt"
faces=$(grep -c ': face ' "$tmp/headers_alone.txt")
[ "$faces" -eq 6 ] || { echo "headers alone: $faces faces in $image, expected 6" >&2; exit 1; }
for run in with_objects_sse41 with_objects mixed; do
  diff -u "$tmp/headers_alone.txt" "$tmp/$run.txt" || { echo "$run finds other faces than the headers alone" >&2; exit 1; }
done
# The headers-alone build refuses a path it does not have, with a message (not a crash).
if FACET_ISA=avx2 "$tmp/headers_alone" "$model" "$image" 2> "$tmp/refused.txt"; then
  echo "FACET_ISA=avx2 ran a headers-alone build that has only SSE2 kernels" >&2; exit 1
fi
grep -q "no avx2 kernels in this program" "$tmp/refused.txt"
weak=$(nm -C "$tmp/mixed" | grep -E ' [WVu] .*facet::simd::' || true)
[ -z "$weak" ] || { echo "kernel symbols merged across objects:" >&2; echo "$weak" >&2; exit 1; }
echo "headers alone, with the ISA objects and mixed: the same $faces faces; no weak kernel symbol"
