// face-api's own per-face cost of a descriptor, on its bundled TensorFlow.js CPU backend (one
// thread: plain JavaScript): computeFaceDescriptor on a face crop tensor, which pads it to a
// square, resizes it to 150x150 and runs FaceRecognitionNet. Run by bench/peers/recognition.py.
//
//   node faceapi_recognition.mjs PACKAGE_DIR CROP.png WARMUP RUNS
//
// Prints JSON: {"face_api", "tfjs", "backend", "crop": [w, h], "ms": [per run], "descriptor": [128]}.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const { loadFaceApi } = await import(path.join(here, '../../tests/faceapi/faceapi_node.mjs'));

const [packageDir, cropPath, warmupText, runsText] = process.argv.slice(2);
if (!runsText) {
  console.error('usage: node faceapi_recognition.mjs PACKAGE_DIR CROP.png WARMUP RUNS');
  process.exit(2);
}
const { faceapi, tf, decodePng, loadNet } = await loadFaceApi(packageDir);
const net = await loadNet(new faceapi.FaceRecognitionNet(), 'face_recognition_model');
const image = decodePng(await readFile(cropPath), cropPath);
const input = tf.tensor3d(image.rgb, [image.height, image.width, 3], 'int32');
let descriptor;
const ms = [];
for (let run = 0; run < Number(warmupText) + Number(runsText); run += 1) {
  const start = performance.now();
  descriptor = await net.computeFaceDescriptor(input);
  if (run >= Number(warmupText)) ms.push(performance.now() - start);
}
console.log(JSON.stringify({
  face_api: faceapi.version, tfjs: tf.version_core, backend: tf.getBackend(), crop: [image.width, image.height], ms,
  descriptor: Array.from(descriptor),
}));
