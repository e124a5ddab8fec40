#!/usr/bin/env bash
# facet-quantize: a valid run writes an int8 file facet-detect runs and reports as int8; every
# user error is refused with its exit status (2: usage, 1: bad input) and a message naming it,
# and writes no file.
# Then the same for an MTCNN file: every conv int8 still finds the one face of a portrait.
# Usage: test_quantize_cli.sh FACET_QUANTIZE FACET_DETECT FLOAT.facet IMAGE MTCNN.facet PORTRAIT
set -uo pipefail
quantize="$1" detect="$2" model="$3" image="$4" mtcnn="$5" portrait="$6"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
# expect CODE MESSAGE ARGS...: exit status CODE, MESSAGE on stderr, no output file.
expect() {
  local code="$1" message="$2"; shift 2
  local err status
  err=$(timeout 120 "$quantize" "$@" 2>&1 >/dev/null); status=$?
  if [ "$status" -eq "$code" ] && grep -qF -- "$message" <<<"$err" && [ ! -e "$tmp/out.facet" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); echo "FAIL: facet-quantize $* -> exit $status (want $code): $err"
  fi
}
expect 2 "wants IN.facet and OUT.facet" "$model"
expect 2 "wants --calibrate" "$model" "$tmp/out.facet"
expect 2 "--percentile wants a number in [90, 100]" "$model" "$tmp/out.facet" --calibrate "$image" --percentile 50
expect 2 "--method must be" "$model" "$tmp/out.facet" --calibrate "$image" --method kl
expect 2 "--keep-fp32 '(' is no regular expression" "$model" "$tmp/out.facet" --calibrate "$image" --keep-fp32 "("
expect 2 "--minmax '(' is no regular expression" "$model" "$tmp/out.facet" --calibrate "$image" --minmax "("
expect 2 "--face-crops wants a whole number in [0, 64], got '2.5'" "$model" "$tmp/out.facet" --calibrate "$image" --face-crops 2.5
expect 1 "missing.facet: cannot open weight file" "$tmp/missing.facet" "$tmp/out.facet" --calibrate "$image"
expect 1 "missing.jpg: cannot open image" "$model" "$tmp/out.facet" --calibrate "$tmp/missing.jpg"
expect 1 "--keep-fp32 fpn.nothing: no such conv" "$model" "$tmp/out.facet" --calibrate "$image" --keep-fp32 fpn.nothing
expect 1 "--minmax ssh9: no such conv" "$model" "$tmp/out.facet" --calibrate "$image" --minmax ssh9
# fpn.output2.0 and body.stage3.0.0 read one uint8 map, so they must share its quantisation.
expect 1 "(--minmax must match every conv reading one map)" "$model" "$tmp/out.facet" --calibrate "$image" --minmax 'fpn\.output2'
expect 1 "keeps every conv float32" "$model" "$tmp/out.facet" --calibrate "$image" --keep-fp32 .

if "$quantize" "$model" "$tmp/int8.facet" --calibrate "$image" --keep-fp32 'stage2\.1\.3$' --keep-fp32 '^ssh3' 2>/dev/null &&
   grep -qa '"float32_layers": \["body.stage2.1.0", "body.stage2.1.3", "ssh3.conv3X3.0"' "$tmp/int8.facet" &&
   "$detect" --model "$tmp/int8.facet" "$image" --json "$tmp/faces.json" >/dev/null && grep -q '"precision": "int8"' "$tmp/faces.json"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: quantising $model and detecting with it"
fi
# The metadata says how the file was calibrated.
if "$quantize" "$model" "$tmp/minmax.facet" --calibrate "$image" --minmax '^ssh2' --face-crops 1 --no-bias-correction 2>/dev/null &&
   grep -qa '"minmax_layers": \["ssh2.conv3X3.0", "ssh2.conv5X5_1.0", "ssh2.conv5X5_2.0", "ssh2.conv7X7_2.0", "ssh2.conv7x7_3.0"\], "channel_equalisation": true, "bias_correction": false' "$tmp/minmax.facet" &&
   grep -qa '"face_crops": 1,' "$tmp/minmax.facet" && "$detect" --model "$tmp/minmax.facet" "$image" >/dev/null; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: quantising $model with --minmax, --face-crops and --no-bias-correction and detecting with it"
fi
# Entropy calibration writes a file that runs and says how it was calibrated.
if "$quantize" "$model" "$tmp/entropy.facet" --calibrate "$image" --method entropy 2>/dev/null &&
   grep -qa '"method": "entropy", "percentile": 99.99' "$tmp/entropy.facet" && "$detect" --model "$tmp/entropy.facet" "$image" >/dev/null; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: quantising $model with --method entropy and detecting with it"
fi
expect 1 "is already int8" "$tmp/int8.facet" "$tmp/out.facet" --calibrate "$image"

# MTCNN: all ten convs int8 (P-Net's and R-Net's uint8 chains, the 2x2 convs into the dense
# layers' batch, the first convs reading uint8 straight from the resampling).
if "$quantize" "$mtcnn" "$tmp/mtcnn_int8.facet" --calibrate "$image" --face-crops 1 2>/dev/null &&
   grep -qa '"int8_layers": \["pnet.conv1", "pnet.conv2", "pnet.conv3", "rnet.conv1", "rnet.conv2", "rnet.conv3", "onet.conv1", "onet.conv2", "onet.conv3", "onet.conv4"\], "float32_layers": \[\]' "$tmp/mtcnn_int8.facet" &&
   "$detect" --detector mtcnn --model "$tmp/mtcnn_int8.facet" "$portrait" --json "$tmp/mtcnn.json" >/dev/null &&
   grep -q '"precision": "int8"' "$tmp/mtcnn.json" && [ "$(grep -c '"score"' "$tmp/mtcnn.json")" -eq 1 ]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: quantising $mtcnn and detecting the face of $portrait with it"
fi
expect 1 "--keep-fp32 ^pnet\.conv9: no such conv" "$mtcnn" "$tmp/out.facet" --calibrate "$image" --keep-fp32 '^pnet\.conv9'
expect 1 "is already int8" "$tmp/mtcnn_int8.facet" "$tmp/out.facet" --calibrate "$image"
# A landmark graph (PFLD-GhostOne, next to the RetinaFace file): calibrated on the face crops of
# --detector's faces. Its first conv reads the image and is no int8 candidate.
graph="$(dirname "$model")/pfld_ghostone.facet"
expect 1 "wants --detector RETINAFACE.facet" "$graph" "$tmp/out.facet" --calibrate "$image"
expect 1 "--keep-fp32 ^Conv_0\$: no such conv" "$graph" "$tmp/out.facet" --calibrate "$image" --detector "$model" --keep-fp32 '^Conv_0$'
if "$quantize" "$graph" "$tmp/graph_int8.facet" --calibrate "$image" --detector "$model" --keep-fp32 '^Conv_(7|13)$' 2>/dev/null &&
   grep -qa '"detector": "retinaface_mnet025_official.facet", "calibration_faces": 6' "$tmp/graph_int8.facet" &&
   grep -qa '"float32_layers": \["Conv_7", "Conv_13"\]' "$tmp/graph_int8.facet" &&
   "$detect" --model "$model" --landmark-model "$tmp/graph_int8.facet" "$image" >/dev/null; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: quantising $graph and running it as facet-detect's landmark model"
fi
expect 1 "is already int8" "$tmp/graph_int8.facet" "$tmp/out.facet" --calibrate "$image" --detector "$model"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
