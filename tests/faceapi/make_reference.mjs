// The reference outputs for tests/faceapi/*.png, computed by face-api itself on the TensorFlow.js CPU
// backend bundled in dist/face-api.esm.js (no native addon, no canvas): FaceLandmark68Net's 68 landmarks,
// and (attributes, below) FaceExpressionNet's seven probabilities and AgeGenderNet's age and gender.
//
//   node tests/faceapi/make_reference.mjs PACKAGE_DIR > tests/faceapi/reference.json
//
// PACKAGE_DIR is the unpacked npm package (scripts/fetch-weights.sh leaves it in
// weights/.cache/face-api/package). Each crop is 112x112, the network's input size, so face-api
// neither pads nor resizes it: the output is the network's alone. The JSON lists, per crop, the
// 68 (x, y) in pixels of the 112 px crop, as face-api's detectLandmarks returns them, the expression
// probabilities (predictExpressions) and the age, gender and its probability (predictAgeAndGender).
// `face_crops` runs the same two nets on faces face-api cuts itself out of a crop (extractFaceTensors:
// the box clipped to the image and floored, padded to a square, resized bilinearly to 112), boxes
// chosen to be fractional, non-square and partly outside the picture.
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { loadFaceApi } from './faceapi_node.mjs';

const packageDir = process.argv[2];
if (!packageDir) {
  console.error('usage: node make_reference.mjs PACKAGE_DIR (the unpacked @vladmandic/face-api)');
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));

const { faceapi, tf, decodePng, loadNet } = await loadFaceApi(packageDir);
const net = await loadNet(new faceapi.FaceLandmark68Net(), 'face_landmark_68_model');

// Attributes: face-api's FaceExpressionNet and AgeGenderNet.
const expressionNet = await loadNet(new faceapi.FaceExpressionNet(), 'face_expression_model');
const ageGenderNet = await loadNet(new faceapi.AgeGenderNet(), 'age_gender_model');
async function attributes(face) {
  const expression = await expressionNet.predictExpressions(face);
  const { age, gender, genderProbability } = await ageGenderNet.predictAgeAndGender(face);
  return { expression: faceapi.FACE_EXPRESSION_LABELS.map((label) => expression[label]), age, gender, gender_probability: genderProbability };
}
// Boxes [x, y, width, height] in pixels of a 112 px crop: tall, wide, and leaving the picture.
const attributeBoxes = [[10.6, 3.2, 81.7, 98.4], [-7.3, 20.5, 120.2, 70.9], [30.5, -12.25, 90.5, 95.0]];
const faceCrops = [];

const crops = [];
for (const file of (await readdir(here)).filter((f) => f.endsWith('.png')).sort()) {
  const image = decodePng(await readFile(path.join(here, file)), file);
  if (image.width !== 112 || image.height !== 112) throw new Error(`${file} is ${image.width}x${image.height}, not 112x112`);
  const input = tf.tensor3d(image.rgb, [112, 112, 3], 'int32');
  const landmarks = await net.detectLandmarks(input);
  crops.push({ image: file, landmarks: landmarks.positions.map((p) => [p.x, p.y]), ...await attributes(input) });
  for (const [x, y, width, height] of file === 'angelina_jolie.png' ? attributeBoxes : []) {
    const [face] = await faceapi.extractFaceTensors(input, [new faceapi.Rect(x, y, width, height)]);
    faceCrops.push({ image: file, box: [x, y, width, height], ...await attributes(face) });
    face.dispose();
  }
  input.dispose();
}
const text = JSON.stringify({
  generator: 'tests/faceapi/make_reference.mjs',
  face_api: faceapi.version,
  tfjs: tf.version_core,
  backend: tf.getBackend(),
  units: 'pixels of the 112 px crop',
  expression_labels: faceapi.FACE_EXPRESSION_LABELS,
  crops,
  face_crops: faceCrops,
}, null, 1);
console.log(text.replace(/\[\s+(\S+),\s+(\S+)\s+\]/g, '[$1, $2]') // a point per line
  .replace(/\[\s+((?:[-\w."]+,\s+)+[-\w."]+)\s+\]/g, (_, list) => `[${list.split(/,\s+/).join(', ')}]`)); // a list per line
