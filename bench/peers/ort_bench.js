// Times one ONNX model with ONNX Runtime (the npm package onnxruntime-node, CPU) on one thread.
//
//   node ort_bench.js MODEL.onnx INPUT.f32 WARMUP RUNS OUT_DIR
//
// INPUT.f32 is the 1x3x480x640 float32 input tensor, raw little-endian. The script runs WARMUP
// untimed inferences, then RUNS timed ones, writes each output of the last run to
// OUT_DIR/<name>.f32 (raw float32, so run.py can check them against PyTorch), and prints one JSON
// object on stdout: {"version", "times_ms": [...], "outputs": {name: shape}}.
//
// Module resolution: run.py sets NODE_PATH to the npm cache directory it installed into.
'use strict';

const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

const INPUT_SHAPE = [1, 3, 480, 640];

function readFloat32(file) {
    const bytes = fs.readFileSync(file);
    // Copy into a fresh, aligned ArrayBuffer: a Buffer may be a view at any offset of a shared pool.
    return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

async function main() {
    const [modelPath, inputPath, warmupArg, runsArg, outDir] = process.argv.slice(2);
    const warmup = Number(warmupArg), runs = Number(runsArg);

    // One thread inside an operator and one across operators: the same single core facet gets.
    const session = await ort.InferenceSession.create(modelPath, {
        executionProviders: ['cpu'],
        intraOpNumThreads: 1,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
    });
    const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', readFloat32(inputPath), INPUT_SHAPE)};

    let results;
    for (let i = 0; i < warmup; ++i) results = await session.run(feeds);
    const times = [];
    for (let i = 0; i < runs; ++i) {
        const start = process.hrtime.bigint();
        results = await session.run(feeds);
        times.push(Number(process.hrtime.bigint() - start) / 1e6);
    }

    const outputs = {};
    for (const name of session.outputNames) {
        const tensor = results[name];
        fs.writeFileSync(path.join(outDir, `${name}.f32`), Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength));
        outputs[name] = tensor.dims;
    }
    const version = require('onnxruntime-node/package.json').version;
    process.stdout.write(JSON.stringify({version, times_ms: times, outputs}) + '\n');
}

main().catch((err) => {
    process.stderr.write(`ort_bench.js: ${err.stack || err}\n`);
    process.exit(1);
});
