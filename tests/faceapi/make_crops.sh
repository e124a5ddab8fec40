#!/usr/bin/env bash
# Makes the 112x112 face crops of tests/faceapi (committed; rerun only to change them): for the best
# face facet-detect finds in each image, the square of 1.3 times the box's longer side around its
# centre, black outside the image, resized by ffmpeg (bicubic). Any face-like crop serves: the parity
# test feeds the same pixels to face-api and to facet.
#
#   tests/faceapi/make_crops.sh build/bin/facet-detect ../shared/upstream/images
set -euo pipefail
detect="$1" images="$2"
out="$(dirname "$0")"
crop() { # crop IMAGE NAME [FACE]
  local box
  box=$("$detect" "$images/$1" | /usr/bin/python3 -c '
import json, sys
x1, y1, x2, y2 = json.load(sys.stdin)["faces"][int(sys.argv[1])]["box"]
side = round(1.3 * max(x2 - x1, y2 - y1))
print(side, round((x1 + x2 - side) / 2), round((y1 + y2 - side) / 2))' "${3:-0}")
  read -r side x y <<<"$box"
  # Padded by the crop's side on every border first, so that the crop never leaves the picture.
  ffmpeg -loglevel error -y -i "$images/$1" -frames:v 1 -pix_fmt rgb24 -vf \
    "pad=iw+2*$side:ih+2*$side:$side:$side:black,crop=$side:$side:$x+$side:$y+$side,scale=112:112:flags=bicubic" \
    "$out/$2.png"
}
crop portrait_angelina_jolie.jpg angelina_jolie
crop portrait_kate_siegel.jpg kate_siegel
crop portrait_paul_rudd.jpg paul_rudd
crop multiface.jpg multiface_0
crop selfie_group.jpg selfie_group_0
