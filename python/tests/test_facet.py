"""The Python package against facet-detect (the C++ command line) on the golden images, and its
input checks, zero-copy input and threads. Run by ctest (test `python`), which sets PYTHONPATH to
<build>/python and FACET_DETECT, FACET_SOURCE_DIR, FACET_BINARY_DIR."""
import json
import os
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

import facet

SOURCE = Path(os.environ.get("FACET_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BINARY = Path(os.environ.get("FACET_BINARY_DIR", SOURCE / "build"))
DETECT = os.environ.get("FACET_DETECT", str(BINARY / "bin" / "facet-detect"))
IMAGES = Path(os.environ.get("FACET_SHARED", SOURCE.parent / "shared")) / "upstream" / "images"
WEIGHTS = SOURCE / "weights"
RETINAFACE = str(WEIGHTS / "retinaface_mnet025_official.facet")
MTCNN = str(WEIGHTS / "mtcnn.facet")
PFLD = str(WEIGHTS / "pfld_ghostone.facet")
RECOGNITION = str(WEIGHTS / "face_recognition.facet")


def facet_detect(*args):
    out = subprocess.run([DETECT, *map(str, args)], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["faces"]


def assert_same_faces(faces, expected):
    """facet-detect prints coordinates with 3 decimals and scores with 5."""
    assert len(faces) == len(expected) > 0
    for face, want in zip(faces, expected):
        np.testing.assert_allclose(face.box, want["box"], atol=1e-3)
        assert face.score == pytest.approx(want["score"], abs=1e-5)
        np.testing.assert_allclose(face.landmarks, want["landmarks"], atol=1e-3)


@pytest.mark.parametrize("name", ["crowd.jpg", "multiface.jpg"])
def test_retinaface_matches_the_command_line(name):
    detector = facet.RetinaFace(RETINAFACE)
    assert detector.precision == "fp32"
    assert_same_faces(detector.detect(facet.load_image(str(IMAGES / name))), facet_detect(IMAGES / name))


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_reduced_precision_files_run_and_say_so(precision):
    model = str(WEIGHTS / f"retinaface_mnet025_official_{precision}.facet")
    detector = facet.RetinaFace(model)
    assert detector.precision == precision
    name = IMAGES / "selfie_group.jpg"
    assert_same_faces(detector.detect(facet.load_image(str(name))), facet_detect("--model", model, name))


@pytest.mark.parametrize("name", ["crowd.jpg", "multiface.jpg"])
def test_mtcnn_matches_the_command_line(name):
    detector = facet.Mtcnn(MTCNN)
    assert detector.precision == "fp32"
    expected = facet_detect("--detector", "mtcnn", "--model", MTCNN, IMAGES / name)
    assert_same_faces(detector.detect(facet.load_image(str(IMAGES / name))), expected)


def test_int8_mtcnn_runs_and_says_so():
    model = str(WEIGHTS / "mtcnn_int8.facet")
    detector = facet.Mtcnn(model)
    assert detector.precision == "int8"
    name = IMAGES / "selfie_group.jpg"
    assert_same_faces(detector.detect(facet.load_image(str(name))), facet_detect("--detector", "mtcnn", "--model", model, name))


def test_landmarks_and_head_pose_match_the_command_line():
    path = IMAGES / "portrait_kate_siegel.jpg"
    expected = facet_detect("--landmarks", "98", path)
    image = facet.load_image(str(path))
    faces = facet.RetinaFace(RETINAFACE).detect(image)
    landmarker = facet.FaceLandmarker(PFLD)
    assert landmarker.points == 98
    for face, want in zip(faces, expected, strict=True):
        points = landmarker.landmarks(image, face.box)
        np.testing.assert_allclose(points, want["landmarks98"], atol=1e-3)
        pose = facet.estimate_head_pose(points, image.shape[1], image.shape[0])
        np.testing.assert_allclose([pose.yaw, pose.pitch, pose.roll],
                                   [want["head_pose"][k] for k in ("yaw", "pitch", "roll")], atol=0.01)


def test_descriptors_match_the_command_line_and_tell_people_apart():
    kate, paul = (IMAGES / f"portrait_{name}.jpg" for name in ("kate_siegel", "paul_rudd"))
    expected = facet_detect("--embed", kate)
    recognizer = facet.FaceRecognizer(RECOGNITION)
    detector = facet.RetinaFace(RETINAFACE)
    image = facet.load_image(str(kate))
    descriptors = [recognizer.embed(image, face) for face in detector.detect(image)]
    for descriptor, want in zip(descriptors, expected, strict=True):
        assert descriptor.shape == (128,) and descriptor.dtype == np.float32
        np.testing.assert_allclose(descriptor, want["embedding"], atol=1e-6)
    mirrored = np.ascontiguousarray(image[:, ::-1])
    same = recognizer.embed(mirrored, detector.detect(mirrored)[0])
    other_image = facet.load_image(str(paul))
    other = recognizer.embed(other_image, detector.detect(other_image)[0])
    assert facet.FaceRecognizer.distance(descriptors[0], same) < 0.6 < facet.FaceRecognizer.distance(descriptors[0], other)
    assert facet.FaceRecognizer.distance(same, same) == 0
    with pytest.raises(ValueError, match=r"b must be a descriptor of shape \(128,\), got \(127,\)"):
        facet.FaceRecognizer.distance(same, same[:127])
    with pytest.raises(facet.Error, match="one output of 128 values"):
        facet.FaceRecognizer(PFLD)


def test_attributes_match_the_command_line():
    path = IMAGES / "multiface.jpg"
    expected = facet_detect("--attributes", path)
    image = facet.load_image(str(path))
    faces = facet.RetinaFace(RETINAFACE).detect(image)
    attributes = facet.FaceAttributes(str(WEIGHTS / "age_gender.facet"), str(WEIGHTS / "face_expression.facet"))
    for face, want in zip(faces, expected, strict=True):
        age, label, probability = attributes.age_gender(image, face)
        assert age == pytest.approx(want["age"], abs=0.006)
        assert (label, probability) == (want["gender"]["label"], pytest.approx(want["gender"]["probability"], abs=6e-6))
        expression = attributes.expression(image, face)
        assert list(expression) == list(want["expression"])
        np.testing.assert_allclose(list(expression.values()), list(want["expression"].values()), atol=6e-6)
    with pytest.raises(facet.Error, match="not a face attribute model"):
        facet.FaceAttributes(PFLD, str(WEIGHTS / "face_expression.facet"))


def test_alignment_matches_the_command_line(tmp_path):
    path = IMAGES / "multiface.jpg"
    facet_detect("--crops", tmp_path, path)
    image = facet.load_image(str(path))
    faces = facet.RetinaFace(RETINAFACE).detect(image)
    for k, face in enumerate(faces):
        crop = facet.align_face(image, face)
        assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
        np.testing.assert_array_equal(crop, facet.load_image(str(tmp_path / f"multiface_{k}.png")))


def test_a_face_made_in_python_aligns_like_a_detected_one():
    image = facet.load_image(str(IMAGES / "multiface.jpg"))
    detected = facet.RetinaFace(RETINAFACE).detect(image)[0]
    made = facet.Face(detected.box.tolist(), detected.score, detected.landmarks.tolist())
    np.testing.assert_array_equal(facet.align_face(image, made), facet.align_face(image, detected))
    with pytest.raises(ValueError, match="expected 5 landmarks"):
        facet.Face([0, 0, 1, 1], 1.0, np.zeros((4, 2)))


def test_array_form_holds_box_score_landmarks():
    image = facet.load_image(str(IMAGES / "multiface.jpg"))
    detector = facet.RetinaFace(RETINAFACE)
    faces = detector.detect(image)
    rows = detector.detect_array(image)
    assert rows.shape == (len(faces), 15) and rows.dtype == np.float32
    np.testing.assert_array_equal(rows, facet.faces_array(faces))
    for row, face in zip(rows, faces):
        np.testing.assert_array_equal(row[:4], face.box)
        assert row[4] == np.float32(face.score)
        np.testing.assert_array_equal(row[5:].reshape(5, 2), face.landmarks)


def test_contiguous_rgb_is_read_in_place_and_other_layouts_are_copied():
    image = facet.load_image(str(IMAGES / "multiface.jpg"))
    assert facet._facet._pixels_address(image) == image.ctypes.data
    assert facet._facet._pixels_address(image, bgr=True) != image.ctypes.data
    mirrored = image[:, ::-1]
    assert facet._facet._pixels_address(mirrored) not in (image.ctypes.data, mirrored.ctypes.data)
    # In place: the detector sees a change made to the same array object between two calls.
    detector = facet.RetinaFace(RETINAFACE)
    assert len(detector.detect(image)) == 6
    original = image.copy()
    image[:] = 0
    assert detector.detect(image) == []
    image[:] = original
    assert len(detector.detect(image)) == 6


def test_copied_layouts_give_the_same_faces():
    image = facet.load_image(str(IMAGES / "multiface.jpg"))
    detector = facet.RetinaFace(RETINAFACE)
    want = detector.detect_array(image)
    np.testing.assert_array_equal(detector.detect_array(np.ascontiguousarray(image[..., ::-1]), bgr=True), want)
    np.testing.assert_array_equal(detector.detect_array(image[..., ::-1], bgr=True), want)  # strided and BGR
    fortran = np.asfortranarray(image)
    assert not fortran.flags.c_contiguous
    np.testing.assert_array_equal(detector.detect_array(fortran), want)


@pytest.mark.parametrize("bad, error, message", [
    ([[[0, 0, 0]]], TypeError, "numpy.ndarray of dtype uint8 and shape (H, W, 3), got list"),
    (None, TypeError, "got NoneType"),
    (np.zeros((8, 8, 3), np.float32), TypeError, "dtype uint8, got float32"),
    (np.zeros((8, 8), np.uint8), ValueError, "shape (H, W, 3), got (8, 8)"),
    (np.zeros((8, 8, 4), np.uint8), ValueError, "shape (H, W, 3), got (8, 8, 4)"),
    (np.zeros((0, 8, 3), np.uint8), ValueError, "at least 1 x 1 pixels, got 8 x 0"),
])
def test_bad_images_are_refused_with_what_was_expected(bad, error, message):
    detector = facet.RetinaFace(RETINAFACE)
    with pytest.raises(error) as raised:
        detector.detect(bad)
    assert message in str(raised.value)


def test_facet_errors_carry_the_cpp_message(tmp_path):
    assert issubclass(facet.Error, RuntimeError)
    with pytest.raises(facet.Error, match="nonexistent.facet"):
        facet.RetinaFace(str(tmp_path / "nonexistent.facet"))
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(facet.Error, match="corrupt.jpg"):
        facet.load_image(str(corrupt))
    with pytest.raises(facet.Error, match="factor"):
        facet.Mtcnn(MTCNN, factor=1.5)


def test_two_threads_with_two_detectors_give_the_serial_results():
    images = [facet.load_image(str(IMAGES / name)) for name in ("crowd.jpg", "multiface.jpg")]
    first = facet.RetinaFace(RETINAFACE)
    detectors = [first, first.clone()]
    serial = [detectors[i].detect_array(images[i]) for i in range(2)]
    results = [[], []]

    def work(i):
        for _ in range(5):
            results[i].append(detectors[i].detect_array(images[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        assert len(results[i]) == 5
        for r in results[i]:
            np.testing.assert_array_equal(r, serial[i])


def test_graph_executor_runs_the_landmark_network():
    model = facet.GraphModel(PFLD)
    h, w, c = model.input_shape
    assert c == 3
    executor = facet.GraphExecutor(model)
    outputs = executor.run(np.full((h, w, 3), 128, np.uint8))
    assert outputs[0].size == 2 * 98 and np.isfinite(outputs[0]).all()
    with pytest.raises(facet.Error, match="graph input is"):
        executor.run(np.zeros((h + 1, w, 3), np.uint8))


def test_mesh_decoder_decodes_a_latent_code():
    decoders = sorted((BINARY / "mesh").glob("*.facet"))
    if not decoders:
        pytest.skip("no mesh decoder fixtures in the build tree")
    decoder = facet.MeshDecoder(str(decoders[0]))
    vertices = decoder.decode(np.zeros(decoder.latent_size, np.float32))
    assert vertices.shape[0] == decoder.vertex_count and vertices.shape[1] in (3, 6)
    assert decoder.faces.shape[1] == 3 and decoder.faces.max() < decoder.vertex_count
    with pytest.raises(ValueError, match="latent code of shape"):
        decoder.decode(np.zeros(decoder.latent_size + 1, np.float32))


def test_help_explains_the_classes():
    assert "RetinaFace(model, *, score_threshold=0.5" in facet.RetinaFace.__doc__
    assert "bgr=True" in facet.RetinaFace.detect.__doc__
