#!/usr/bin/env bash
# Guards the run-time ISA dispatch (README, "Instruction sets"): each include/facet/arch/isa_*.cpp
# is compiled with its own -m flags, and a template or inline function instantiated alike in two
# of them is one weak (COMDAT) symbol the linker keeps from either object. A copy compiled with
# -mavx512f that the linker chose for the SSE4.1 path would crash a CPU without AVX-512. So no weak
# symbol may be defined by two ISA objects, apart from those known to hold no vector code:
# unique_ptr<float[], AlignedDeleter>'s destructor (a call to free) and the exception personality
# reference.
#
# Usage: tests/test_isa_symbols.sh LIBFACET_KERNELS.a
set -euo pipefail
library="$1"
allowed='^(DW\.ref\.__gxx_personality_v0|std::unique_ptr<float \[\], facet::AlignedDeleter>::~unique_ptr\(\))$'
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# nm -A names each symbol's archive member: "lib.a:isa_avx2.cpp.o:0000000000000000 W symbol".
nm -A -C --defined-only "$library" | awk -v dir="$tmp" '
  $2 ~ /^[WVu]$/ && match($1, /isa_[a-z0-9]+\.cpp\.o/) {
    object = substr($1, RSTART, RLENGTH)
    symbol = $0; sub(/^[^ ]+ [^ ]+ /, "", symbol)
    print symbol > (dir "/" object ".txt")
  }'
objects=("$tmp"/*.txt)
[ "${#objects[@]}" -ge 2 ] || { echo "found fewer than two isa_*.cpp objects in $library" >&2; exit 1; }
for f in "${objects[@]}"; do sort -u "$f" -o "$f"; done
status=0
for ((i = 0; i < ${#objects[@]}; ++i)); do
  for ((j = i + 1; j < ${#objects[@]}; ++j)); do
    shared=$(comm -12 "${objects[i]}" "${objects[j]}" | grep -Ev "$allowed" || true)
    if [ -n "$shared" ]; then
      echo "weak symbols defined by both $(basename "${objects[i]}" .txt) and $(basename "${objects[j]}" .txt):" >&2
      echo "$shared" >&2
      status=1
    fi
  done
done
[ "$status" -eq 0 ] && echo "no weak symbol shared between ${#objects[@]} ISA objects (beyond the allowed two)"
exit $status
