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
import { types } from 'node:util';
import { inflateSync } from 'node:zlib';

const packageDir = process.argv[2];
if (!packageDir) {
  console.error('usage: node make_reference.mjs PACKAGE_DIR (the unpacked @vladmandic/face-api)');
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));

// The bundle's TF.js takes Node for a platform whose `util` module the bundler stubbed out (and
// fails on it), so Node is hidden while the bundle loads and a platform made of Node's own
// TextEncoder and typed-array checks is given to TF.js after.
const versions = Object.getOwnPropertyDescriptor(process, 'versions');
Object.defineProperty(process, 'versions', { value: {}, configurable: true });
const faceapi = await import(path.resolve(packageDir, 'dist/face-api.esm.js'));
Object.defineProperty(process, 'versions', versions);
const { tf } = faceapi;
tf.env().setPlatform('node', {
  fetch: () => { throw new Error('no network'); },
  now: () => performance.now(),
  encode: (text) => new TextEncoder().encode(text),
  decode: (bytes, encoding) => new TextDecoder(encoding).decode(bytes),
  isTypedArray: (a) => types.isFloat32Array(a) || types.isInt32Array(a) || types.isUint8Array(a) || types.isUint8ClampedArray(a),
});
faceapi.env.initialize(); // face-api's own environment, now that Node is visible again
await tf.setBackend('cpu');
await tf.ready();

// An 8-bit RGB, non-interlaced PNG (what tests/faceapi holds) as [height, width, 3] bytes.
function decodePng(bytes, file) {
  let width = 0; let height = 0; const idat = [];
  for (let at = 8; at < bytes.length;) {
    const length = bytes.readUInt32BE(at);
    const type = bytes.toString('latin1', at + 4, at + 8);
    const body = bytes.subarray(at + 8, at + 8 + length);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0); height = body.readUInt32BE(4);
      if (body[8] !== 8 || body[9] !== 2 || body[12] !== 0) throw new Error(`${file}: not an 8-bit RGB non-interlaced PNG`);
    } else if (type === 'IDAT') idat.push(body);
    at += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * 3; const out = new Uint8Array(height * stride);
  for (let y = 0; y < height; y += 1) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i += 1) {
      const a = i >= 3 ? out[y * stride + i - 3] : 0;
      const b = y > 0 ? out[(y - 1) * stride + i] : 0;
      const c = i >= 3 && y > 0 ? out[(y - 1) * stride + i - 3] : 0;
      const p = a + b - c; const pa = Math.abs(p - a); const pb = Math.abs(p - b); const pc = Math.abs(p - c);
      const predictor = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][filter];
      if (predictor === undefined) throw new Error(`${file}: PNG filter ${filter}`);
      out[y * stride + i] = (line[i] + predictor) & 255;
    }
  }
  return { width, height, rgb: out };
}

// The weights as face-api's loadFromDisk reads them: TF.js's loader on the manifest and its .bin.
const modelDir = path.resolve(packageDir, 'model');
const manifest = JSON.parse(await readFile(path.join(modelDir, 'face_landmark_68_model-weights_manifest.json'), 'utf8'));
const loadWeights = tf.io.weightsLoaderFactory((files) => Promise.all(files.map(async (file) => {
  const data = await readFile(file);
  return data.buffer.slice(data.byteOffset, data.byteOffset + data.length);
})));
const net = new faceapi.FaceLandmark68Net();
net.loadFromWeightMap(await loadWeights(manifest, `${modelDir}/`));

// Attributes: face-api's FaceExpressionNet and AgeGenderNet, loaded as loadFromDisk loads them.
async function loadNet(Net, name) {
  const attributeNet = new Net();
  const netManifest = JSON.parse(await readFile(path.join(modelDir, `${name}-weights_manifest.json`), 'utf8'));
  attributeNet.loadFromWeightMap(await loadWeights(netManifest, `${modelDir}/`));
  return attributeNet;
}
const expressionNet = await loadNet(faceapi.FaceExpressionNet, 'face_expression_model');
const ageGenderNet = await loadNet(faceapi.AgeGenderNet, 'age_gender_model');
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
