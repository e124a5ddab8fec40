// face-api in node, as tests/faceapi's scripts run it: the bundle dist/face-api.esm.js on its own
// TensorFlow.js CPU backend (no native addon, no canvas), nets loaded from the package's model/
// folder as face-api's loadFromDisk loads them, and 8-bit RGB PNGs decoded without a canvas.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { types } from 'node:util';
import { inflateSync } from 'node:zlib';

// face-api (with its `tf`) from the unpacked npm package at `packageDir`, on the CPU backend.
export async function loadFaceApi(packageDir) {
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
  return faceapi;
}

// Net (a face-api class) with the weights of model/NAME-weights_manifest.json and its shards.
export async function loadNet(faceapi, packageDir, Net, name) {
  const modelDir = path.resolve(packageDir, 'model');
  const manifest = JSON.parse(await readFile(path.join(modelDir, `${name}-weights_manifest.json`), 'utf8'));
  const loadWeights = faceapi.tf.io.weightsLoaderFactory((files) => Promise.all(files.map(async (file) => {
    const data = await readFile(file);
    return data.buffer.slice(data.byteOffset, data.byteOffset + data.length);
  })));
  const net = new Net();
  net.loadFromWeightMap(await loadWeights(manifest, `${modelDir}/`));
  return net;
}

// An 8-bit RGB, non-interlaced PNG (what tests/faceapi holds) as [height, width, 3] bytes.
export function decodePng(bytes, file) {
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
