#!/usr/bin/env bash
# The bad-input table (tests/bad_inputs.hpp) through facet-detect: every refused image or weight
# file gives exit status 1 and a message naming the file and the reason; every accepted image
# exits 0. Outside the sanitizer build, facet-detect runs under a 1 GB address-space limit, so an
# image refused "before any pixel is allocated" cannot have allocated its 1.2 GB of pixels first.
# Usage: test_bad_inputs.sh FACET_DETECT FACET_MAKE_BAD_INPUTS RETINAFACE.facet
set -uo pipefail
exe="$1" make="$2" model="$3"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$make" "$tmp" "$model" || { echo "FAIL: $make $tmp $model"; exit 1; }

# ASan reserves terabytes of address space, so the limit is set only where it lets the program run.
limit=unlimited
if { (ulimit -v 1048576 && "$exe" --help) >/dev/null 2>&1; } 2>/dev/null; then limit=1048576; fi

failures=0
passed=0
while IFS=$'\t' read -r file kind status message; do
  [ "$kind" != graph_seed ] || continue
  case "$kind" in
    weights) args=(--model "$tmp/$file" "$tmp/1x1.png") ;;
    graph) args=(--model "$model" --landmarks 68 --landmark-model "$tmp/$file" "$tmp/1x1.png") ;;
    *) args=(--model "$model" "$tmp/$file") ;;
  esac
  out=$(ulimit -v "$limit"; "$exe" "${args[@]}" 2>"$tmp/stderr"); code=$?
  err=$(cat "$tmp/stderr")
  ok=1
  [ "$code" -eq "$status" ] || ok=0
  if [ "$status" -eq 0 ]; then
    grep -qF '"faces": []' <<<"$out" || ok=0
  else
    grep -qF -- "$tmp/$file: " <<<"$err" && grep -qF -- "$message" <<<"$err" || ok=0
  fi
  if [ "$ok" -eq 1 ]; then
    passed=$((passed + 1))
  else
    echo "FAIL: facet-detect ${args[*]} -> exit $code (want $status, '$message')"; echo "  stderr: $err"
    failures=$((failures + 1))
  fi
done < "$tmp/table.tsv"

echo "$passed passed, $failures failed"
[ "$failures" -eq 0 ] && [ "$passed" -gt 30 ]
