// The reference 128-d face descriptors of tests/faceapi/recognition/*.png, computed by face-api
// itself: its FaceRecognitionNet on the TensorFlow.js CPU backend bundled in dist/face-api.esm.js.
//
//   node tests/faceapi/make_recognition_reference.mjs PACKAGE_DIR > tests/faceapi/recognition/reference.json
//
// PACKAGE_DIR is the unpacked npm package (scripts/fetch-weights.sh leaves it in
// weights/.cache/face-api/package). Each crop goes in as an image tensor, as face-api's
// computeFaceDescriptor takes a face extracted from a tensor (extractFaceTensors): the 150x150
// crops reach the network as they are; the others are first padded to a square (zeros, centred)
// and resized bilinearly to 150x150 by face-api's NetInput.toBatchTensor(150, true), the step
// facet::FaceRecognizer reproduces for the faces it cuts out.
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { loadFaceApi } from './faceapi_node.mjs';

const packageDir = process.argv[2];
if (!packageDir) {
  console.error('usage: node make_recognition_reference.mjs PACKAGE_DIR (the unpacked @vladmandic/face-api)');
  process.exit(2);
}
const folder = path.join(path.dirname(fileURLToPath(import.meta.url)), 'recognition');
const { faceapi, tf, decodePng, loadNet } = await loadFaceApi(packageDir);
const net = await loadNet(new faceapi.FaceRecognitionNet(), 'face_recognition_model');

const crops = [];
for (const file of (await readdir(folder)).filter((f) => f.endsWith('.png')).sort()) {
  const image = decodePng(await readFile(path.join(folder, file)), file);
  const input = tf.tensor3d(image.rgb, [image.height, image.width, 3], 'int32');
  const descriptor = await net.computeFaceDescriptor(input);
  input.dispose();
  crops.push({ image: file, width: image.width, height: image.height, descriptor: Array.from(descriptor) });
}
const text = JSON.stringify({
  generator: 'tests/faceapi/make_recognition_reference.mjs',
  face_api: faceapi.version,
  tfjs: tf.version_core,
  backend: tf.getBackend(),
  crops,
}, null, 1);
console.log(text.replace(/\[\n([-\d.e\s,]+)\n\s*\]/g, (_, numbers) => `[${numbers.trim().split(/\s*,\s*/).join(', ')}]`));
