// Runs one ONNX model with ONNX Runtime (onnxruntime-node, CPU, one thread) on several inputs and
// writes every output, for make_qdq.py's calibration and run.py's accuracy check (not timed).
//
//   node ort_run.js JOB.json
//
// JOB.json: {"model": PATH, "optimization": "disabled" | "all", "inputs": [{"file": INPUT.f32,
// "shape": [1, 3, H, W], "out_dir": DIR}, ...]}. INPUT.f32 is the float32 NCHW input, raw
// little-endian. For each input the outputs go to DIR/<k>.f32 (raw float32, k = the output's index
// in the session) and DIR/outputs.json lists [{"name", "file", "dims"}] in that order.
// Output names can hold any character (ONNX tensor names such as "/body/stage1/Conv_output_0"),
// hence numbered files. Module resolution: the caller sets NODE_PATH to its npm cache directory.
'use strict';

const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

function readFloat32(file) {
    const bytes = fs.readFileSync(file);
    // Copy into a fresh, aligned ArrayBuffer: a Buffer may be a view at any offset of a shared pool.
    return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

async function main() {
    const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
    const session = await ort.InferenceSession.create(job.model, {
        executionProviders: ['cpu'],
        intraOpNumThreads: 1,
        interOpNumThreads: 1,
        graphOptimizationLevel: job.optimization,
    });
    for (const input of job.inputs) {
        const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', readFloat32(input.file), input.shape)};
        const results = await session.run(feeds);
        const listing = session.outputNames.map((name, k) => {
            const tensor = results[name];
            if (tensor.type !== 'float32') throw new Error(`output ${name} is ${tensor.type}, not float32`);
            const file = `${k}.f32`;
            fs.writeFileSync(path.join(input.out_dir, file),
                             Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength));
            return {name, file, dims: tensor.dims};
        });
        fs.writeFileSync(path.join(input.out_dir, 'outputs.json'), JSON.stringify(listing));
    }
}

main().catch((err) => {
    process.stderr.write(`ort_run.js: ${err.stack || err}\n`);
    process.exit(1);
});
