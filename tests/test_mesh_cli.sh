#!/usr/bin/env bash
# facet-mesh refuses a latent code whose decoding is not finite (+-3.4e38 overflows the network)
# instead of writing "nan" vertices, and writes no mesh for it.
# Usage: test_mesh_cli.sh FACET_MESH MODEL.facet
set -uo pipefail
exe="$1" model="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo 0 > "$tmp/one.txt"
size=$("$exe" --model "$model" --latent "$tmp/one.txt" --out "$tmp/m" 2>&1 | sed -n 's/.*the model takes \([0-9]*\).*/\1/p')
[ -n "$size" ] || { echo "FAIL: facet-mesh did not say the latent size"; exit 1; }
for ((i = 0; i < size; i++)); do [ $((i % 2)) -eq 0 ] && echo 3.4e38 || echo -3.4e38; done > "$tmp/huge.txt"
err=$(timeout 60 "$exe" --model "$model" --latent "$tmp/huge.txt" --out "$tmp/m" 2>&1 >/dev/null); code=$?
if [ "$code" -eq 1 ] && grep -q "the decoder's output is not finite" <<<"$err" && [ ! -e "$tmp/m.ply" ]; then
  echo "1 passed, 0 failed"
else
  echo "FAIL: facet-mesh with a latent of +-3.4e38 -> exit $code: $err"; echo "0 passed, 1 failed"; exit 1
fi
