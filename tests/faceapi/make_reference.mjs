// The reference 68 landmarks of tests/faceapi/*.png, computed by face-api itself: its FaceLandmark68Net
// on the TensorFlow.js CPU backend bundled in dist/face-api.esm.js (no native addon, no canvas).
//
//   node tests/faceapi/make_reference.mjs PACKAGE_DIR > tests/faceapi/reference.json
//
// PACKAGE_DIR is the unpacked npm package (scripts/fetch-weights.sh leaves it in
// weights/.cache/face-api/package). Each crop is 112x112, the network's input size, so face-api
// neither pads nor resizes it: the output is the network's alone. The JSON lists, per crop, the
// 68 (x, y) in pixels of the 112 px crop, as face-api's detectLandmarks returns them.
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

const crops = [];
for (const file of (await readdir(here)).filter((f) => f.endsWith('.png')).sort()) {
  const image = decodePng(await readFile(path.join(here, file)), file);
  if (image.width !== 112 || image.height !== 112) throw new Error(`${file} is ${image.width}x${image.height}, not 112x112`);
  const input = tf.tensor3d(image.rgb, [112, 112, 3], 'int32');
  const landmarks = await net.detectLandmarks(input);
  input.dispose();
  crops.push({ image: file, landmarks: landmarks.positions.map((p) => [p.x, p.y]) });
}
const text = JSON.stringify({
  generator: 'tests/faceapi/make_reference.mjs',
  face_api: faceapi.version,
  tfjs: tf.version_core,
  backend: tf.getBackend(),
  units: 'pixels of the 112 px crop',
  crops,
}, null, 1);
console.log(text.replace(/\[\s+(\S+),\s+(\S+)\s+\]/g, '[$1, $2]')); // a point per line
