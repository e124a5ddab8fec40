#!/usr/bin/env bash
# Gets the upstream checkpoints, ONNX models and sample images listed in weights/manifest and
# converts the models into weights/*.facet.
#
# Each file is taken from ../shared/upstream (FACET_UPSTREAM overrides) when present, otherwise
# downloaded into weights/.cache (an npm: entry by `npm pack`, the others by curl); either way its
# sha256 must match the manifest.
set -euo pipefail
cd "$(dirname "$0")/.."
upstream="${FACET_UPSTREAM:-../shared/upstream}"
cache=weights/.cache
python=/usr/bin/python3

# download URL PATH: an npm package (npm:NAME@VERSION) through npm's own client, anything else by curl.
download() {
  local url="$1" path="$2" packed
  if [[ "$url" == npm:* ]]; then
    command -v npm >/dev/null || { echo "facet: npm is needed to fetch ${url#npm:} (Debian: apt-get install npm)" >&2; exit 1; }
    packed=$(cd "$(dirname "$path")" && npm pack --silent "${url#npm:}" 2>/dev/null | tail -n 1) ||
      { echo "facet: npm cannot fetch ${url#npm:}" >&2; exit 1; }
    mv "$(dirname "$path")/$packed" "$path"
  else
    curl -fsSL --retry 3 -o "$path" "$url" || { echo "facet: cannot download $url" >&2; exit 1; }
  fi
}

# Prints the local path of a manifest entry, fetching and verifying it as needed.
fetch() {
  local rel="$1" line sha url path
  line=$(awk -F'\t' -v f="$rel" '$1 == f' weights/manifest)
  [ -n "$line" ] || { echo "facet: $rel is not in weights/manifest" >&2; exit 1; }
  sha=$(cut -f2 <<<"$line")
  url=$(cut -f3 <<<"$line")
  path="$upstream/$rel"
  if [ ! -f "$path" ]; then
    path="$cache/$rel"
    if [ ! -f "$path" ]; then
      mkdir -p "$(dirname "$path")"
      echo "facet: downloading $url" >&2
      download "$url" "$path.part"
      mv "$path.part" "$path"
    fi
  fi
  echo "$sha  $path" | sha256sum --check --status || {
    echo "facet: $path does not have the sha256 in weights/manifest ($sha)" >&2; exit 1; }
  echo "$path"
}

convert() {
  local out="weights/$1.facet" recipe="$2"; shift 2
  local inputs=()
  for rel in "$@"; do inputs+=("$(fetch "$rel")"); done
  if [ -f "$out" ] && [ "$out" -nt converters/recipes.py ] && [ "$out" -nt converters/facetfile.py ]; then
    for input in "${inputs[@]}"; do [ "$out" -nt "$input" ] || { rm -f "$out"; break; }; done
  fi
  [ -f "$out" ] || "$python" converters/pth2facet.py --recipe "$recipe" --out "$out" "${inputs[@]}"
}

# An ONNX model: convert_onnx NAME PATH [onnx2facet options].
convert_onnx() {
  local out="weights/$1.facet" input
  input="$(fetch "$2")"; shift 2
  if [ -f "$out" ]; then
    for dependency in "$input" converters/onnx2facet.py converters/onnxproto.py converters/facetgraph.py converters/facetfile.py \
        converters/cli.py; do
      [ "$out" -nt "$dependency" ] || { rm -f "$out"; break; }
    done
  fi
  [ -f "$out" ] || "$python" converters/onnx2facet.py --out "$out" "$@" "$input"
}

convert retinaface_mnet025_official retinaface-mnet025-official retinaface/official/mobilenet0.25_Final.pth
convert retinaface_mnet025 retinaface-mnet025 retinaface/mobilenet0.25_Final.pth
convert retinaface_mnet025_1mb retinaface-mnet025-1mb retinaface/face-detector-1mb/mobilenet0.25_Final.pth
convert mtcnn mtcnn mtcnn/pnet.pt mtcnn/rnet.pt mtcnn/onet.pt
# The bf16 RetinaFace and landmark graphs (README, "bf16 weights"), from their fp32 files:
# quantize_bf16 NAME makes weights/NAME_bf16.facet.
quantize_bf16() {
  local source="weights/$1.facet" out="weights/$1_bf16.facet" dependency
  for dependency in "$source" converters/quantize_bf16.py converters/facetfile.py converters/cli.py; do
    [ ! -f "$out" ] || [ "$out" -nt "$dependency" ] || rm -f "$out"
  done
  [ -f "$out" ] || "$python" converters/quantize_bf16.py --out "$out" "$source"
}
quantize_bf16 retinaface_mnet025_official
# PFLD-GhostOne, 98 landmarks (MODELS.md section 6): RGB, (x / 255 - 0.5) / 0.5.
convert_onnx pfld_ghostone pfld/PFLD_GhostOne_112_1_opt_sim.onnx --color rgb --mean 127.5,127.5,127.5 \
  --scale 0.00784313725490196,0.00784313725490196,0.00784313725490196
quantize_bf16 pfld_ghostone
# face-api's networks (TF.js weights in the npm package), converted by tfjs2facet:
# convert_faceapi_model PACKAGE NAME MANIFEST_STEM [tfjs2facet options] writes weights/NAME.facet
# from PACKAGE/model/MANIFEST_STEM-weights_manifest.json.
convert_faceapi_model() {
  local package="$1" out="weights/$2.facet" manifest="$1/model/$3-weights_manifest.json"; shift 3
  if [ -f "$out" ]; then
    for dependency in "$package" converters/tfjs2facet.py converters/facetgraph.py converters/facetfile.py converters/cli.py; do
      [ "$out" -nt "$dependency" ] || { rm -f "$out"; break; }
    done
  fi
  [ -f "$out" ] || "$python" converters/tfjs2facet.py --out "$out" "$@" "$manifest"
}
convert_faceapi() {
  local tarball package=weights/.cache/face-api/package
  tarball="$(fetch face-api/vladmandic-face-api-1.7.15.tgz)"
  if [ ! -d "$package" ] || [ "$tarball" -nt "$package" ]; then
    rm -rf "$package" && mkdir -p "$(dirname "$package")"
    tar -xzf "$tarball" -C "$(dirname "$package")" && touch "$package"
  fi
  # The 68-point landmark network (tests/faceapi has its reference outputs). Around RetinaFace's
  # boxes it agrees best with PFLD-GhostOne with a crop 2% of the box larger on each side (README,
  # "Dense landmarks"; FORMAT.md, "landmarks.crop_margin").
  convert_faceapi_model "$package" face_landmark_68 face_landmark_68_model --crop-margin 0.02
  # The face recognition network: 128-d descriptors (tests/faceapi/recognition has its reference
  # outputs; README, "Face verification").
  convert_faceapi_model "$package" face_recognition face_recognition_model --net face_recognition
  # The attribute nets, FaceExpressionNet and AgeGenderNet, cropped as face-api crops its detector's
  # box (tests/faceapi has their reference outputs; README, "Face attributes").
  convert_faceapi_model "$package" face_expression face_expression_model --net face_expression
  convert_faceapi_model "$package" age_gender age_gender_model --net age_gender
}
convert_faceapi
quantize_bf16 face_landmark_68
# The demo and test images.
for image in images/crowd.jpg images/multiface.jpg images/portrait_kate_siegel.jpg; do fetch "$image" >/dev/null; done
