// face-api's own attribute pipeline on whole images, for tests/faceapi/measure_attribute_boxes.py:
// its SSD MobileNet v1 detector (minConfidence 0.5), then per face what
// detectAllFaces(...).withAgeAndGender().withFaceExpressions() does without landmarks: the face cut
// from the detection box (extractFaceTensors) and AgeGenderNet and FaceExpressionNet on it.
//
//   node tests/faceapi/attribute_pipeline.mjs PACKAGE_DIR IMAGE.png... > faces.json
//
// IMAGE.png: 8-bit RGB, non-interlaced. Prints a JSON array, one record per face: image, box
// [x1, y1, x2, y2] in image pixels, score, expression (face-api's seven, in its order), age, gender,
// gender_probability.
import { readFile } from 'node:fs/promises';

import { loadFaceApi } from './faceapi_node.mjs';

const [packageDir, ...images] = process.argv.slice(2);
if (!packageDir || !images.length) {
  console.error('usage: node attribute_pipeline.mjs PACKAGE_DIR IMAGE.png...');
  process.exit(2);
}
const { faceapi, decodePng, loadNet } = await loadFaceApi(packageDir);
const detector = await loadNet(new faceapi.SsdMobilenetv1(), 'ssd_mobilenetv1_model');
const expressionNet = await loadNet(new faceapi.FaceExpressionNet(), 'face_expression_model');
const ageGenderNet = await loadNet(new faceapi.AgeGenderNet(), 'age_gender_model');
const records = [];
for (const file of images) {
  const image = decodePng(await readFile(file), file);
  const input = faceapi.tf.tensor3d(image.rgb, [image.height, image.width, 3], 'int32');
  const detections = await detector.locateFaces(input, new faceapi.SsdMobilenetv1Options({ minConfidence: 0.5 }));
  const faces = await faceapi.extractFaceTensors(input, detections);
  for (const [k, detection] of detections.entries()) {
    const expression = await expressionNet.predictExpressions(faces[k]);
    const { age, gender, genderProbability } = await ageGenderNet.predictAgeAndGender(faces[k]);
    const { x, y, width, height } = detection.box;
    records.push({ image: file, box: [x, y, x + width, y + height], score: detection.score,
      expression: faceapi.FACE_EXPRESSION_LABELS.map((label) => expression[label]), age, gender, gender_probability: genderProbability });
    faces[k].dispose();
  }
  input.dispose();
}
console.log(JSON.stringify(records, null, 1));
