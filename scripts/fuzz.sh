#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/) with clang, AddressSanitizer and UndefinedBehaviorSanitizer
# in build-fuzz, replays the committed crash regressions (fuzz/regressions/), makes seed corpora
# from valid files, and runs each harness for a bounded time; .ci/run calls it after
# scripts/sanitize.sh.
#
#   scripts/fuzz.sh [SECONDS [HARNESS...]]    SECONDS per harness (default $FACET_FUZZ_SECONDS or
#                                             60); harnesses: weights detect y4m (default all)
#
# The corpora grow in build-fuzz/corpus/<harness> from run to run; a crash leaves its input in
# build-fuzz/artifacts/<harness>/ and fails the script. A longer run (README, "Fuzzing"), e.g.
# an hour each on 4 cores:
#   scripts/fuzz.sh 3600
#   build-fuzz/bin/fuzz_detect -fork=4 -max_total_time=3600 build-fuzz/corpus/detect
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-${FACET_FUZZ_SECONDS:-60}}"
shift || true
[ $# -gt 0 ] || set -- weights detect y4m
jobs=$(nproc)
scripts/install-deps.sh clang libclang-rt-dev

san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -gline-tables-only" -DCMAKE_CXX_FLAGS="$san" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" -DFACET_BUILD_BENCHMARKS=OFF -DFACET_BUILD_FUZZERS=ON >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_weights fuzz_detect fuzz_y4m facet-make-bad-inputs facet-mesh-decoders

# Every crash found so far must stay fixed.
ctest --test-dir build-fuzz --output-on-failure -R '^fuzz_'

# Seeds: the bad-input table's images, weight files and graph files of extreme geometry (tests/bad_inputs.hpp), a face photo shrunk
# to 192 px, the weight files (float32, and the int8 and bf16 ones setup makes), small YUV4MPEG2 streams. Weight-file seeds start with the mode byte
# 1 (fuzz_weights.cpp: size and CRC fixed up), so mutations reach the metadata and table.
upstream="${FACET_UPSTREAM:-../shared/upstream}"
photo="$upstream/images/multiface.jpg"
[ -f "$photo" ] || photo=weights/.cache/images/multiface.jpg
seeds=build-fuzz/seeds
rm -rf "$seeds"
mkdir -p "$seeds"/{inputs,weights,detect,y4m}
build-fuzz/bin/facet-make-bad-inputs "$seeds/inputs" weights/retinaface_mnet025.facet "$photo"
while IFS=$'\t' read -r file kind _; do
  if [ "$kind" = image ]; then cp "$seeds/inputs/$file" "$seeds/detect/"; fi
  if [ "$kind" != image ] && [ "$(stat -c %s "$seeds/inputs/$file")" -lt 200000 ]; then
    { printf '\001'; cat "$seeds/inputs/$file"; } > "$seeds/weights/$file"
  fi
done < "$seeds/inputs/table.tsv"
cp "$seeds"/inputs/face.* "$seeds/detect/"
for f in build-fuzz/mesh/k1_xyz.facet build-fuzz/mesh/k6_xyzrgb.facet weights/retinaface_mnet025.facet weights/mtcnn.facet \
         weights/pfld_ghostone.facet weights/*_int8.facet weights/*_bf16.facet; do
  [ ! -f "$f" ] || { printf '\001'; cat "$f"; } > "$seeds/weights/$(basename "$f")"
done
y4m() { # NAME HEADER FRAME_BYTES FRAMES
  { printf '%s\n' "$2"; for ((i = 0; i < $4; i++)); do printf 'FRAME\n'; head -c "$3" /dev/urandom; done; } > "$seeds/y4m/$1"
}
y4m c420.y4m "YUV4MPEG2 W16 H8 F25:1 Ip A1:1 C420jpeg" $((16 * 8 + 2 * 8 * 4)) 2
y4m c420_odd.y4m "YUV4MPEG2 W5 H3 F30000:1001 C420mpeg2 XYSCSS=420MPEG2" $((5 * 3 + 2 * 3 * 2)) 2
y4m c444_full.y4m "YUV4MPEG2 W8 H4 C444 XCOLORRANGE=FULL" $((8 * 4 * 3)) 1
y4m mono.y4m "YUV4MPEG2 W7 H7 Cmono" 49 3
y4m default.y4m "YUV4MPEG2 W4 H4" 24 1

status=0
for harness in "$@"; do
  corpus=build-fuzz/corpus/$harness artifacts=build-fuzz/artifacts/$harness
  mkdir -p "$corpus" "$artifacts"
  echo "facet: fuzzing $harness for $seconds s"
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: more than 2 GB is a bug too.
  if ! build-fuzz/bin/fuzz_"$harness" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "$corpus" "$seeds/$harness" 2>build-fuzz/fuzz_"$harness".log; then
    tail -n 60 build-fuzz/fuzz_"$harness".log
    echo "facet: fuzz_$harness failed; the input is in $artifacts/ (add it to fuzz/regressions/$harness/)" >&2
    status=1
  else
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' build-fuzz/fuzz_"$harness".log | tr '\n' ' '
    echo "corpus: $(ls "$corpus" | wc -l) inputs"
  fi
done
exit $status
