#!/usr/bin/env bash
# facet-compare and facet-detect --embed as a user runs them: same / different on the shared
# portraits, the gallery's ranking, and a clear message with the right exit status for every
# mistake a user can make.
# Usage: test_compare_cli.sh FACET_COMPARE FACET_DETECT (from the source folder: weights/ and tests/)
set -uo pipefail
compare="$1" detect="$2"
images="${FACET_SHARED:-../shared}/upstream/images"
kate="$images/portrait_kate_siegel.jpg" paul="$images/portrait_paul_rudd.jpg"
# The portrait's face box, cut out unresized (tests/faceapi/make_recognition_crops.py): the same
# person in another file.
kate_crop=tests/faceapi/recognition/kate_siegel_box.png
source "$(dirname "$0")/cli_test_lib.sh"

expect 0 "usage: facet-compare" -- "$compare" --help
expect 0 "^0\.[0-5][0-9]* same$" -- "$compare" "$kate" "$kate_crop"
expect 0 "^0\.0000 same$" -- "$compare" "$kate" "$kate"
expect 0 "^0\.[6-9][0-9]* different$" -- "$compare" "$kate" "$paul"
# The threshold decides: the portrait and its crop are different people below 0.05.
expect 0 " different$" -- "$compare" --threshold 0.05 "$kate" "$kate_crop"
mkdir "$tmp/gallery"
cp "$paul" "$images/selfie_group.jpg" "$tmp/gallery/"
cp "$kate_crop" "$tmp/gallery/kate.PNG"
echo "not an image" > "$tmp/gallery/notes.txt" # not a JPEG or PNG by name: skipped
gallery=$(timeout 120 "$compare" --gallery "$tmp/gallery" "$kate" 2>"$tmp/stderr"); code=$?
if [ "$code" -eq 0 ] && /usr/bin/python3 -c '
import json, sys
g = json.loads(sys.argv[1])
m = g["matches"]
assert m[0]["image"].endswith("kate.PNG") and m[0]["same"], m[0]
assert all(not x["same"] for x in m[1:]) and len(m) > 10, m[1]
assert [x["distance"] for x in m] == sorted(x["distance"] for x in m) and g["errors"] == []' "$gallery"; then
  passed=$((passed + 1))
else
  echo "FAIL: facet-compare --gallery -> exit $code: ${gallery:0:300} $(cat "$tmp/stderr")"; failures=$((failures + 1))
fi
echo "not an image" > "$tmp/gallery/broken.jpg"
expect 1 "broken.jpg: not a readable image" -- "$compare" --gallery "$tmp/gallery" "$kate"

expect 2 "two images to compare wanted, got 1" -- "$compare" "$kate"
expect 2 "one query image with --gallery wanted, got 2" -- "$compare" --gallery "$tmp/gallery" "$kate" "$paul"
expect 2 "--threshold wants a number in \[0, 100\], got 'x'" -- "$compare" --threshold x "$kate" "$paul"
expect 2 "unknown option --frobnicate" -- "$compare" --frobnicate 1 "$kate" "$paul"
expect 2 "--gallery needs a value" -- "$compare" "$kate" --gallery
expect 1 "/nonexistent.jpg: cannot open image" -- "$compare" "$kate" /nonexistent.jpg
# A picture without a face: the gallery's notes file, named as a PNG, is no picture at all; a
# blank image is one.
/usr/bin/python3 -c '
import struct, sys, zlib
w = h = 64
raw = b"".join(b"\0" + b"\x80" * (3 * w) for _ in range(h))
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                               chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))' "$tmp/grey.png"
expect 1 "grey.png: no face found" -- "$compare" "$kate" "$tmp/grey.png"
expect 1 "notes.txt: not a directory" -- "$compare" --gallery "$tmp/gallery/notes.txt" "$kate"
mkdir "$tmp/empty"
expect 1 "empty: no JPEG or PNG images in the folder" -- "$compare" --gallery "$tmp/empty" "$kate"
expect 1 "is a 'retinaface' model" -- "$compare" --recognition-model weights/retinaface_mnet025.facet "$kate" "$paul"
expect 1 "a face recognition model has one output of 128 values" -- "$compare" --recognition-model weights/face_landmark_68.facet "$kate" "$paul"

# facet-detect --embed: 128 numbers per face, the same descriptors facet-compare compares.
json=$(timeout 120 "$detect" --embed "$kate" 2>"$tmp/stderr"); code=$?
if [ "$code" -eq 0 ] && /usr/bin/python3 -c '
import json, sys
faces = json.loads(sys.argv[1])["faces"]
assert faces and all(len(f["embedding"]) == 128 for f in faces), faces' "$json"; then
  passed=$((passed + 1))
else
  echo "FAIL: facet-detect --embed -> exit $code: ${json:0:300} $(cat "$tmp/stderr")"; failures=$((failures + 1))
fi
expect 0 '"embedding": \[' -- "$detect" --recognition-model weights/face_recognition.facet "$kate"
expect 1 "/nonexistent.facet: cannot open weight file" -- "$detect" --recognition-model /nonexistent.facet "$kate"

summary
