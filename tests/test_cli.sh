#!/usr/bin/env bash
# facet-detect as a user runs it: outputs, and a clear message with the right exit status for
# every mistake a user can make.
set -uo pipefail
exe="$1"
shared="${FACET_SHARED:-../shared}"
img="$shared/upstream/images/multiface.jpg"
source "$(dirname "$0")/cli_test_lib.sh"

expect 0 "usage: facet-detect" -- "$exe" --help
expect 2 "unknown option --frobnicate" -- "$exe" --frobnicate 1 "$img"
expect 2 "no image given" -- "$exe"
expect 2 "--threshold wants a number" -- "$exe" --threshold abc "$img"
expect 2 "--threads wants a whole number in \\[1, 256\\]" -- "$exe" --threads 0 "$img"
expect 2 "--max-side wants a whole number" -- "$exe" --max-side 1.5 "$img"
expect 2 "--json needs a value" -- "$exe" "$img" --json
expect 2 "--detector must be retinaface or mtcnn" -- "$exe" --detector yolo "$img"
expect 2 "--max-side applies to --detector retinaface only" -- "$exe" --detector mtcnn --max-side 320 "$img"
expect 2 "--threshold applies to --detector retinaface only" -- "$exe" "$img" --threshold 0.9 --detector mtcnn
expect 2 "--min-face applies to --detector mtcnn only" -- "$exe" --min-face 40 "$img"
expect 2 "--thresholds wants three numbers" -- "$exe" --detector mtcnn --thresholds 0.6,0.7 "$img"
expect 2 "--thresholds wants a number" -- "$exe" --detector mtcnn --thresholds 0.6,0.7,1.5 "$img"
expect 2 "--factor wants a number strictly between 0 and 1" -- "$exe" --detector mtcnn --factor 1 "$img"
expect 1 "is a 'retinaface' model, expected a 'mtcnn' model" -- "$exe" --detector mtcnn --model weights/retinaface_mnet025.facet "$img"
expect 1 "/nonexistent.facet: cannot open weight file" -- "$exe" --model /nonexistent.facet "$img"
head -c 1000 weights/retinaface_mnet025.facet > "$tmp/truncated.facet"
expect 1 "truncated.facet: truncated or padded" -- "$exe" --model "$tmp/truncated.facet" "$img"
expect 1 "is a 'mtcnn' model, expected a 'retinaface' model" -- "$exe" --model weights/mtcnn.facet "$img"
echo "not an image" > "$tmp/fake.png"
expect 1 "fake.png: not a readable image" -- "$exe" "$tmp/fake.png"
expect 1 "/nonexistent.jpg: cannot open image" -- "$exe" /nonexistent.jpg
FACET_WEIGHTS_DIR=/nonexistent expect 0 '"faces"' -- "$exe" "$img"   # falls back to ../../weights next to the exe
FACET_MODEL=/nonexistent.facet expect 1 "/nonexistent.facet: cannot open weight file" -- "$exe" "$img"

# A real run: six faces, annotated PNG, aligned crops, JSON to a file.
expect 0 "" -- "$exe" "$img" --json "$tmp/one.json" --annotate "$tmp/one.png" --crops "$tmp/crops"
/usr/bin/python3 - "$tmp" <<'PY' || failures=$((failures + 1))
import json, os, sys
tmp = sys.argv[1]
doc = json.load(open(f"{tmp}/one.json"))
assert doc["width"] == 1200 and doc["height"] == 630, doc
assert len(doc["faces"]) == 6, len(doc["faces"])
assert all(len(f["landmarks"]) == 5 and len(f["box"]) == 4 and f["score"] > 0.5 for f in doc["faces"])
assert open(f"{tmp}/one.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
assert sorted(os.listdir(f"{tmp}/crops")) == [f"multiface_{k}.png" for k in range(6)]
PY
# Several images: a JSON array, annotations in a directory.
expect 0 "" -- "$exe" "$img" "$shared/upstream/images/crowd.jpg" --json "$tmp/two.json" --annotate "$tmp/annotated"
/usr/bin/python3 -c "
import json, os, sys
d = json.load(open('$tmp/two.json'))
assert isinstance(d, list) and len(d) == 2 and len(d[0]['faces']) == 6 and len(d[1]['faces']) > 20
assert sorted(os.listdir('$tmp/annotated')) == ['crowd.png', 'multiface.png']
" || failures=$((failures + 1))

# One bad image in a batch loses nothing else: the good images' results, an error record for the
# bad one (its message also on stderr), exit 1 at the end; the same with two images at a time.
for threads in 1 2; do
  expect 1 "fake.png: not a readable image" -- "$exe" "$img" "$tmp/fake.png" "$shared/upstream/images/crowd.jpg" \
    --threads "$threads" --json "$tmp/batch$threads.json" --annotate "$tmp/batch$threads"
done
/usr/bin/python3 - "$tmp" <<'PY' || failures=$((failures + 1))
import json, os, sys
tmp = sys.argv[1]
d = json.load(open(f"{tmp}/batch1.json"))
assert len(d) == 3 and len(d[0]["faces"]) == 6 and len(d[2]["faces"]) > 20, d
assert d[1]["image"] == f"{tmp}/fake.png" and "not a readable image" in d[1]["error"] and "faces" not in d[1], d[1]
assert json.load(open(f"{tmp}/batch2.json")) == d   # two images at a time: the same results, in input order
for threads in (1, 2):
    assert sorted(os.listdir(f"{tmp}/batch{threads}")) == ["crowd.png", "multiface.png"]
PY
# Two images of the same name would overwrite each other's annotation or crops: refused up front.
mkdir -p "$tmp/a" "$tmp/b"
cp "$img" "$tmp/a/x.jpg"
cp "$img" "$tmp/b/x.jpg"
expect 1 "a/x.jpg and .*b/x.jpg would write the same --annotate files (named 'x')" -- "$exe" "$tmp/a/x.jpg" "$tmp/b/x.jpg" --annotate "$tmp/same"
expect 1 "would write the same --crops files" -- "$exe" "$tmp/a/x.jpg" "$tmp/b/x.jpg" --crops "$tmp/same_crops"
[ ! -e "$tmp/same" ] && [ ! -e "$tmp/same_crops" ] || { echo "FAIL: refused runs created output directories"; failures=$((failures + 1)); }

# MTCNN: the six faces of the golden file (largest first), annotated, aligned from its landmarks.
# Its default model is mtcnn.facet beside the RetinaFace one; $FACET_MODEL does not apply to it.
FACET_MODEL=/nonexistent.facet expect 0 "" -- "$exe" --detector mtcnn "$img" --json "$tmp/mtcnn.json" --annotate "$tmp/mtcnn.png" --crops "$tmp/mtcnn_crops"
/usr/bin/python3 - "$tmp" "$shared" <<'PY' || failures=$((failures + 1))
import json, os, sys
tmp, shared = sys.argv[1:]
faces = json.load(open(f"{tmp}/mtcnn.json"))["faces"]
golden = json.load(open(f"{shared}/golden/mtcnn_multiface.json"))["faces"]
assert len(faces) == len(golden) == 6, len(faces)
for f, g in zip(faces, golden):
    assert all(abs(a - b) < 0.01 for a, b in zip(f["box"], g["box"])), (f["box"], g["box"])
    assert len(f["landmarks"]) == 5
assert open(f"{tmp}/mtcnn.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
assert sorted(os.listdir(f"{tmp}/mtcnn_crops")) == [f"multiface_{k}.png" for k in range(6)]
PY
# Out of memory inside MTCNN's parallel pyramid loop (--min-face 1 asks for a 7680x5760 first
# level): the message and exit 1, not an abort, on one thread and on two. Not in the sanitizer
# build: ASan reserves terabytes of address space, so no address-space limit lets it start.
limited_runs=(1 2)
{ (ulimit -v 1000000 && "$exe" --help) >/dev/null 2>&1; } 2>/dev/null || limited_runs=()
for threads in "${limited_runs[@]}"; do
  code=0
  (ulimit -v 1000000; exec "$exe" --detector mtcnn --min-face 1 --threads "$threads" "$shared/golden/crowd_640x480.png") \
    >/dev/null 2>"$tmp/oom.err" || code=$?
  if [ "$code" -ne 1 ] || ! grep -q "facet-detect: out of memory" "$tmp/oom.err"; then
    echo "FAIL: MTCNN out of memory, $threads threads -> exit $code: $(cat "$tmp/oom.err")"; failures=$((failures + 1))
  else
    passed=$((passed + 1))
  fi
done
expect 0 '"faces": \[\]' -- "$exe" --detector mtcnn --min-face 2000 --factor 0.5 --thresholds 0.5,0.5,0.5 --threads 2 "$img"

# Dense landmarks: PFLD-GhostOne on the golden face. The golden box is upstream's detector's, the
# 2019 RetinaFace at full size; every one of the 98 points must be within 1 px of the golden file.
portrait="$shared/upstream/images/portrait_kate_siegel.jpg"
expect 0 "" -- "$exe" --model weights/retinaface_mnet025.facet --max-side 0 --landmark-model weights/pfld_ghostone.facet "$portrait" \
  --json "$tmp/landmarks.json" --annotate "$tmp/landmarks.png" --crops "$tmp/landmark_crops"
/usr/bin/python3 - "$tmp" "$shared" <<'PY' || failures=$((failures + 1))
import json, os, sys
tmp, shared = sys.argv[1:]
face = json.load(open(f"{tmp}/landmarks.json"))["faces"][0]
golden = json.load(open(f"{shared}/golden/pfld_ghostone_kate_siegel.json"))["faces"][0]
assert all(abs(a - b) < 0.01 for a, b in zip(face["box"], golden["box"])), face["box"]
assert len(face["landmarks98"]) == 98
worst = max(abs(p[k] - g[k]) for p, g in zip(face["landmarks98"], golden["landmarks98"]) for k in (0, 1))
assert worst < 1.0, worst
assert open(f"{tmp}/landmarks.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
assert "portrait_kate_siegel_0.png" in os.listdir(f"{tmp}/landmark_crops")
pose = face["head_pose"]
assert abs(pose["yaw"]) < 15 and abs(pose["pitch"]) < 20 and abs(pose["roll"]) < 10, pose
PY
expect 0 '"head_pose": {"yaw": ' -- "$exe" --landmarks 98 "$portrait"
expect 2 "--landmarks wants 68 or 98, got '70'" -- "$exe" --landmarks 70 "$img"
expect 2 "--landmarks wants a whole number" -- "$exe" --landmarks many "$img"
expect 1 "gives 98 landmarks, not the 68 --landmarks asks for" -- "$exe" --landmarks 68 --landmark-model weights/pfld_ghostone.facet "$img"
expect 0 '"landmarks98"' -- "$exe" --detector mtcnn --landmark-model weights/pfld_ghostone.facet "$img"
expect 1 "is a 'retinaface' model, expected a 'graph' model" -- "$exe" --landmark-model weights/retinaface_mnet025.facet "$img"
expect 1 "/nonexistent.facet: cannot open weight file" -- "$exe" --landmark-model /nonexistent.facet "$img"
expect 2 "--landmark-model needs a value" -- "$exe" "$img" --landmark-model

# Attributes (face-api's age / gender and expression nets): every face of a group photo gets an age,
# a gender label with its probability and the seven expression probabilities summing to 1.
expect 0 "" -- "$exe" --attributes --threads 2 "$img" "$portrait" --json "$tmp/attributes.json"
/usr/bin/python3 - "$tmp" <<'PY' || failures=$((failures + 1))
import json, sys
labels = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]
records = json.load(open(f"{sys.argv[1]}/attributes.json"))
assert len(records) == 2 and all(record["faces"] for record in records), records
for face in (face for record in records for face in record["faces"]):
    assert 1 < face["age"] < 90, face["age"]
    assert face["gender"]["label"] in ("male", "female") and 0.5 <= face["gender"]["probability"] <= 1, face["gender"]
    assert list(face["expression"]) == labels, face["expression"]
    assert abs(sum(face["expression"].values()) - 1) < 1e-3, face["expression"]
assert records[1]["faces"][0]["gender"]["label"] == "female", records[1]["faces"][0]
PY
expect 2 "--expression-model applies with --attributes only" -- "$exe" --expression-model weights/face_expression.facet "$img"
expect 2 "--age-gender-model needs a value" -- "$exe" "$img" --attributes --age-gender-model
expect 1 "face_landmark_68.facet: bad metadata (attributes): no 'attributes': not a face attribute model" -- "$exe" \
  --attributes --age-gender-model weights/face_landmark_68.facet "$img"
expect 1 "age_gender.facet: bad metadata (attributes): no 'attributes.expression'" -- "$exe" \
  --attributes --expression-model weights/age_gender.facet "$img"
expect 1 "is a 'retinaface' model, expected a 'graph' model" -- "$exe" --attributes --expression-model weights/retinaface_mnet025.facet "$img"
expect 1 "/nonexistent.facet: cannot open weight file" -- "$exe" --attributes --age-gender-model /nonexistent.facet "$img"

# Hostile or careless inputs (issue 21): each a message and exit 1, never a crash or a silent loss.
expect 1 "makes more than 100 pyramid levels" -- "$exe" --detector mtcnn --factor 0.999999 "$img"
expect 1 "weights: is a directory, not a weight file" -- "$exe" --model weights "$img"
expect 1 "tests: is a directory, not an image" -- "$exe" tests
expect 1 "/dev/zero: file larger than 1 GiB, facet's limit for an image" -- "$exe" /dev/zero
# Outputs that cannot be written (a full disk) fail loudly.
if [ -w /dev/full ]; then
  if "$exe" "$img" >/dev/full 2>"$tmp/stderr" || ! grep -q "cannot write to standard output" "$tmp/stderr"; then
    echo "FAIL: facet-detect with standard output on a full disk"; failures=$((failures + 1))
  else
    passed=$((passed + 1))
  fi
  expect 1 "/dev/full: cannot write JSON (No space left on device)" -- "$exe" "$img" --json /dev/full
  expect 1 "/dev/full: cannot write PNG (No space left on device)" -- "$exe" "$img" --annotate /dev/full
fi
# A file name that is not UTF-8 is escaped in the JSON, which stays valid.
cp "$img" "$tmp/$(printf 'caf\xe9')".jpg
"$exe" "$tmp/$(printf 'caf\xe9')".jpg --json "$tmp/latin1.json" 2>/dev/null
if /usr/bin/python3 -c "import json, os, sys; assert os.fsencode(json.load(open(sys.argv[1], 'rb'))['image']).endswith(b'caf\xe9.jpg')" "$tmp/latin1.json"; then
  passed=$((passed + 1))
else
  echo "FAIL: a Latin-1 file name does not come back from the JSON"; failures=$((failures + 1))
fi

summary
