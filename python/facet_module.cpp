// facet's Python binding (module facet._facet; python/facet/__init__.py re-exports it).
//
// Images are NumPy uint8 arrays of shape (H, W, 3), RGB. A C-contiguous RGB array is read in place
// (facet::Image::view): no copy; any other layout, or bgr=True, is copied once into RGB. Inference
// runs without the GIL, so Python threads with one model object each run in parallel; each object
// also holds a mutex, so that two threads sharing one object wait for each other instead of
// corrupting its scratch memory.
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <facet/facet.hpp>
#include <facet/io/y4m.hpp>

namespace py = pybind11;

namespace {

using Pixels = py::array_t<std::uint8_t, py::array::c_style>;

// A facet::Image over a NumPy array: a view of the array's buffer when it is C-contiguous RGB,
// else a copy. Keeps the array alive while in use.
struct ImageArg {
    py::object array; // the caller's array, referenced while the view reads it
    std::optional<facet::Image> copy;
    facet::Image view;
    const facet::Image& image() const { return copy ? *copy : view; }
};

ImageArg image_arg(const py::handle& obj, bool bgr) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error("expected an image as a numpy.ndarray of dtype uint8 and shape (H, W, 3), got " +
                             std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
    const auto array = py::reinterpret_borrow<py::array>(obj);
    if (!array.dtype().is(py::dtype::of<std::uint8_t>()))
        throw py::type_error("expected an image of dtype uint8, got " + std::string(py::str(array.dtype())));
    if (array.ndim() != 3 || array.shape(2) != 3) {
        std::string shape = "(";
        for (py::ssize_t d = 0; d < array.ndim(); ++d) shape += (d ? ", " : "") + std::to_string(array.shape(d));
        throw py::value_error("expected an image of shape (H, W, 3), got " + shape + (array.ndim() == 1 ? ",)" : ")"));
    }
    if (array.shape(0) < 1 || array.shape(1) < 1 || array.shape(0) > INT32_MAX || array.shape(1) > INT32_MAX)
        throw py::value_error("expected an image of at least 1 x 1 pixels, got " + std::to_string(array.shape(1)) + " x " +
                              std::to_string(array.shape(0)));
    const int h = static_cast<int>(array.shape(0)), w = static_cast<int>(array.shape(1));
    facet::check_image_size(w, h, "image array");
    ImageArg arg;
    arg.array = py::reinterpret_borrow<py::object>(obj);
    const bool contiguous = (array.flags() & py::array::c_style) != 0;
    if (contiguous && !bgr) {
        arg.view = facet::Image::view(static_cast<const std::uint8_t*>(array.data()), w, h);
        return arg;
    }
    // Any strides: read element by element through NumPy's view of the array.
    const auto pixels = array.unchecked<std::uint8_t, 3>();
    arg.copy.emplace(w, h);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int c = 0; c < 3; ++c) arg.copy->pixel(x, y)[c] = pixels(y, x, bgr ? 2 - c : c);
    return arg;
}

// A NumPy array that owns `values` (moved, not copied) with the given shape.
template <class T>
py::array_t<T> owning_array(std::vector<T>&& values, std::vector<py::ssize_t> shape) {
    auto* heap = new std::vector<T>(std::move(values));
    py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
    return py::array_t<T>(shape, heap->data(), owner);
}

Pixels image_array(facet::Image&& image) {
    const py::ssize_t h = image.height, w = image.width;
    return owning_array(std::move(image.rgb), {h, w, 3});
}

py::array_t<float> box_array(const facet::Face& f) { return owning_array(std::vector<float>(f.box.begin(), f.box.end()), {4}); }

py::array_t<float> landmark_array(const std::vector<std::array<float, 2>>& points) {
    std::vector<float> values;
    for (const auto& p : points) values.insert(values.end(), p.begin(), p.end());
    return owning_array(std::move(values), {static_cast<py::ssize_t>(points.size()), 2});
}

// The (N, 15) form: x1, y1, x2, y2, score, then the five landmarks' x, y.
py::array_t<float> faces_array(const std::vector<facet::Face>& faces) {
    std::vector<float> values;
    values.reserve(faces.size() * 15);
    for (const facet::Face& f : faces) {
        values.insert(values.end(), f.box.begin(), f.box.end());
        values.push_back(f.score);
        for (const auto& p : f.landmarks) values.insert(values.end(), p.begin(), p.end());
    }
    return owning_array(std::move(values), {static_cast<py::ssize_t>(faces.size()), 15});
}

facet::LandmarkPoints points_arg(const py::array_t<float, py::array::forcecast>& points, const char* what) {
    if (points.ndim() != 2 || points.shape(1) != 2)
        throw py::value_error(std::string("expected ") + what + " as an array of shape (N, 2)");
    facet::LandmarkPoints out(static_cast<std::size_t>(points.shape(0)));
    const auto p = points.unchecked<2>();
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = {p(i, 0), p(i, 1)};
    return out;
}

std::array<float, 4> box_arg(const py::array_t<float, py::array::forcecast>& box) {
    if (box.ndim() != 1 || box.shape(0) != 4) throw py::value_error("expected a box as 4 numbers: x1, y1, x2, y2");
    return {box.at(0), box.at(1), box.at(2), box.at(3)};
}

// A detector (RetinaFace or Mtcnn) and the lock that serialises calls on it.
template <class Detector>
struct Locked {
    Detector detector;
    std::mutex mutex;
    template <class... Args, class = std::enable_if_t<std::is_constructible_v<Detector, Args&&...>>>
    explicit Locked(Args&&... args) : detector(std::forward<Args>(args)...) {}

    // f(detector) without the GIL, and with the object's lock.
    template <class F>
    auto locked(F&& f) {
        py::gil_scoped_release released;
        std::lock_guard<std::mutex> lock(mutex);
        return f(detector);
    }

    std::vector<facet::Face> detect(const py::handle& image, bool bgr) {
        const ImageArg arg = image_arg(image, bgr);
        return locked([&](Detector& d) { return d.detect(arg.image()); });
    }
};

using PyRetinaFace = Locked<facet::RetinaFace>;
using PyMtcnn = Locked<facet::Mtcnn>;
using PyLandmarker = Locked<facet::FaceLandmarker>;
using PyRecognizer = Locked<facet::FaceRecognizer>;
// face-api's attribute nets (models/attributes.hpp), together: what facet-detect --attributes runs.
struct FaceAttributeNets {
    facet::AgeGender age_gender;
    facet::FaceExpression expression;
};
using PyFaceAttributes = Locked<FaceAttributeNets>;
using PyMeshDecoder = Locked<facet::MeshDecoder>;
using PyGraphExecutor = Locked<facet::GraphExecutor>;

constexpr const char* kImageDoc =
    "image: numpy.ndarray, uint8, shape (H, W, 3), RGB (pass bgr=True for OpenCV's BGR). A C-contiguous "
    "RGB array is read in place, without a copy; other layouts are copied.";

template <class Detector>
void def_detect(py::class_<Locked<Detector>>& cls) {
    cls.def("detect", &Locked<Detector>::detect, py::arg("image"), py::kw_only(), py::arg("bgr") = false,
            (std::string("detect(image, *, bgr=False) -> list[Face]\n\nThe faces in an image, in image pixels.\n") + kImageDoc)
                .c_str())
        .def(
            "detect_array",
            [](Locked<Detector>& self, const py::handle& image, bool bgr) { return faces_array(self.detect(image, bgr)); },
            py::arg("image"), py::kw_only(), py::arg("bgr") = false,
            "detect_array(image, *, bgr=False) -> numpy.ndarray\n\nThe faces as one float32 array of shape (N, 15): "
            "x1, y1, x2, y2, score, then the five landmarks' x and y.")
        .def("clone", [](const Locked<Detector>& self) { return new Locked<Detector>(self.detector.clone()); },
             "Another detector sharing the (immutable) weights, with its own scratch memory: one per thread.");
}

// A YUV4MPEG2 file and its reader (io/y4m.hpp).
class Y4mFile {
public:
    explicit Y4mFile(const std::string& path) : file_(std::fopen(path.c_str(), "rb")) {
        if (!file_) throw facet::Error(path + ": cannot open video");
        try {
            reader_.emplace(file_, path);
        } catch (...) {
            std::fclose(file_);
            throw;
        }
    }
    ~Y4mFile() { std::fclose(file_); }
    Y4mFile(const Y4mFile&) = delete;
    Y4mFile& operator=(const Y4mFile&) = delete;

    facet::Y4mReader& reader() { return *reader_; }

private:
    std::FILE* file_;
    std::optional<facet::Y4mReader> reader_;
};

} // namespace

PYBIND11_MODULE(_facet, m) {
    m.doc() = "facet: face detection, landmarks, alignment and head pose on the CPU (C++ SIMD kernels).";
    py::register_exception<facet::Error>(m, "Error", PyExc_RuntimeError);
    m.attr("__version__") = "0.1.0";
    m.def(
        "_pixels_address",
        [](const py::handle& image, bool bgr) {
            const ImageArg arg = image_arg(image, bgr);
            return reinterpret_cast<std::uintptr_t>(arg.image().data());
        },
        py::arg("image"), py::kw_only(), py::arg("bgr") = false,
        "Test hook: the address of the pixels facet reads for this array (its own buffer when used in place).");
    m.def("isa", [] { return std::string(facet::default_kernel_set().isa); },
          "The instruction set the kernels run with: sse41, avx2 or avx512 (FACET_ISA forces one).");

    py::class_<facet::Face>(m, "Face", "One detected face, in input-image pixels.\n\nFace(box, score, landmarks): "
                                       "one made from your own detections, e.g. for align_face.")
        .def(py::init([](const py::array_t<float, py::array::forcecast>& box, float score,
                         const py::array_t<float, py::array::forcecast>& landmarks) {
                 const facet::LandmarkPoints points = points_arg(landmarks, "landmarks");
                 if (points.size() != 5) throw py::value_error("expected 5 landmarks (5, 2), got " + std::to_string(points.size()));
                 facet::Face f;
                 f.box = box_arg(box);
                 f.score = score;
                 std::copy(points.begin(), points.end(), f.landmarks.begin());
                 return f;
             }),
             py::arg("box"), py::arg("score"), py::arg("landmarks"))
        .def_property_readonly("box", &box_array, "float32 (4,): x1, y1, x2, y2")
        .def_readonly("score", &facet::Face::score, "face probability")
        .def_property_readonly(
            "landmarks",
            [](const facet::Face& f) { return landmark_array({f.landmarks.begin(), f.landmarks.end()}); },
            "float32 (5, 2): left eye, right eye, nose, left and right mouth corner as seen in the image")
        .def("__repr__", [](const facet::Face& f) {
            char text[128];
            std::snprintf(text, sizeof text, "Face(score=%.3f, box=[%.1f, %.1f, %.1f, %.1f])", f.score, f.box[0], f.box[1],
                          f.box[2], f.box[3]);
            return std::string(text);
        });
    m.def("faces_array", &faces_array, py::arg("faces"),
          "faces_array(faces) -> numpy.ndarray\n\nFaces as one float32 array of shape (N, 15): x1, y1, x2, y2, score, "
          "then the five landmarks' x and y.");

    m.def("load_image", [](const std::string& path) { return image_array(facet::load_image(path)); }, py::arg("path"),
          "load_image(path) -> numpy.ndarray\n\nA PNG or JPEG file as uint8 (H, W, 3) RGB. Raises facet.Error naming the "
          "file and the reason for a missing, corrupt or oversized image.");

    py::class_<Y4mFile>(m, "Y4mReader", R"(Frames of a YUV4MPEG2 (.y4m) video file as RGB arrays.

Y4mReader(path): 8-bit 4:2:0, 4:4:4 or grey, as `ffmpeg -f yuv4mpegpipe` writes. Iterating
yields uint8 (H, W, 3) RGB frames; read() gives the next one or None at the end. Raises
facet.Error naming the file for an unreadable, malformed or truncated stream.)")
        .def(py::init<const std::string&>(), py::arg("path"))
        .def_property_readonly("width", [](Y4mFile& self) { return self.reader().width(); })
        .def_property_readonly("height", [](Y4mFile& self) { return self.reader().height(); })
        .def("read", [](Y4mFile& self) -> std::optional<Pixels> {
            facet::Image frame;
            if (!self.reader().read(frame)) return std::nullopt;
            return image_array(std::move(frame));
        })
        .def("__iter__", [](py::object self) { return self; })
        .def("__next__", [](Y4mFile& self) {
            facet::Image frame;
            if (!self.reader().read(frame)) throw py::stop_iteration();
            return image_array(std::move(frame));
        });

    py::class_<PyRetinaFace> retinaface(m, "RetinaFace", R"(RetinaFace face detector (MobileNet-0.25).

RetinaFace(model, *, score_threshold=0.5, nms_iou=0.4, top_k=5000, max_faces=750, max_side=640, threads=1)

model: a .facet weight file (weights/retinaface_mnet025_official.facet, or its _int8 / _bf16 twin;
`precision` says which). Images whose longer side
exceeds max_side are shrunk before the network (0: never) and results mapped back. Faces are
returned best first. One detector per thread (clone()); calls on one detector are serialised.
Raises facet.Error for a missing or wrong weight file.)");
    retinaface.def(py::init([](const std::string& path, float score_threshold, float nms_iou, int top_k, int max_faces,
                               int max_side, int threads) {
                       facet::RetinaFaceOptions o;
                       o.score_threshold = score_threshold;
                       o.nms_iou = nms_iou;
                       o.top_k = top_k;
                       o.max_faces = max_faces;
                       o.max_side = max_side;
                       o.threads = threads;
                       return new PyRetinaFace(path, o);
                   }),
                   py::arg("model"), py::kw_only(), py::arg("score_threshold") = 0.5f, py::arg("nms_iou") = 0.4f,
                   py::arg("top_k") = 5000, py::arg("max_faces") = 750, py::arg("max_side") = 640, py::arg("threads") = 1);
    def_detect(retinaface);
    retinaface.def_property_readonly("precision", [](PyRetinaFace& self) { return self.detector.model().precision; },
                                     "the weight file's precision: 'fp32', 'bf16' or 'int8'");

    py::class_<PyMtcnn> mtcnn(m, "Mtcnn", R"(MTCNN face detector (P-, R- and O-Net cascade).

Mtcnn(model, *, min_face=None, factor=None, thresholds=None, threads=1)

model: a .facet weight file (weights/mtcnn.facet); options left None take the file's defaults
(min_face 20 px, factor 0.709, thresholds (0.6, 0.7, 0.7)). Faces are returned largest first.
Raises facet.Error for a missing or wrong weight file or an option out of range.)");
    mtcnn.def(py::init([](const std::string& path, std::optional<double> min_face, std::optional<double> factor,
                          std::optional<std::array<float, 3>> thresholds, int threads) {
                  auto* d = new PyMtcnn(path);
                  facet::MtcnnOptions& o = d->detector.options();
                  if (min_face) o.min_face = *min_face;
                  if (factor) o.factor = *factor;
                  if (thresholds) o.thresholds = *thresholds;
                  o.threads = threads;
                  try {
                      facet::check_options(o);
                  } catch (...) {
                      delete d;
                      throw;
                  }
                  return d;
              }),
              py::arg("model"), py::kw_only(), py::arg("min_face") = py::none(), py::arg("factor") = py::none(),
              py::arg("thresholds") = py::none(), py::arg("threads") = 1);
    def_detect(mtcnn);
    mtcnn.def_property_readonly("precision", [](PyMtcnn& self) { return self.detector.model().precision; },
                                "the weight file's precision: 'fp32' or 'int8'");

    py::class_<PyLandmarker>(m, "FaceLandmarker", R"(Dense face landmarks (98 WFLW or 68 iBUG points).

FaceLandmarker(model)

model: an imported landmark network (weights/pfld_ghostone.facet, weights/face_landmark_68.facet).
landmarks(image, box) gives the points of the face in box (x1, y1, x2, y2) in image pixels.)")
        .def(py::init([](const std::string& path) { return new PyLandmarker(path); }), py::arg("model"))
        .def_property_readonly("points", [](PyLandmarker& self) { return self.detector.points(); },
                               "landmarks per face: 98 or 68")
        .def_property_readonly("has_angles", [](PyLandmarker& self) { return self.detector.has_angles(); },
                               "whether the model also estimates head angles (last_angles)")
        .def_property_readonly(
            "last_angles", [](PyLandmarker& self) { return self.detector.last_angles(); },
            "pitch, yaw, roll in degrees of the last face, as the model gives them (if has_angles)")
        .def(
            "landmarks",
            [](PyLandmarker& self, const py::handle& image, const py::array_t<float, py::array::forcecast>& box, bool bgr) {
                const ImageArg arg = image_arg(image, bgr);
                const std::array<float, 4> b = box_arg(box);
                return landmark_array(self.locked([&](facet::FaceLandmarker& d) { return d.landmarks(arg.image(), b); }));
            },
            py::arg("image"), py::arg("box"), py::kw_only(), py::arg("bgr") = false,
            "landmarks(image, box, *, bgr=False) -> numpy.ndarray\n\nfloat32 (points, 2): the landmarks of the face in "
            "box (x1, y1, x2, y2, e.g. Face.box), in image pixels.");

    py::class_<PyRecognizer>(m, "FaceRecognizer", R"(128-d face descriptors (face-api's face recognition network).

FaceRecognizer(model)

model: weights/face_recognition.facet. embed(image, face) gives the descriptor of a detected face;
two faces whose descriptors lie less than 0.6 apart (distance) are the same person.)")
        .def(py::init([](const std::string& path) { return new PyRecognizer(path); }), py::arg("model"))
        .def(
            "embed",
            [](PyRecognizer& self, const py::handle& image, const facet::Face& face, bool bgr) {
                const ImageArg arg = image_arg(image, bgr);
                const facet::FaceDescriptor d = self.locked([&](facet::FaceRecognizer& r) { return r.embed(arg.image(), face); });
                return owning_array(std::vector<float>(d.begin(), d.end()), {facet::kDescriptorSize});
            },
            py::arg("image"), py::arg("face"), py::kw_only(), py::arg("bgr") = false,
            "embed(image, face, *, bgr=False) -> numpy.ndarray\n\nfloat32 (128,): the descriptor of a face a detector "
            "found in image.")
        .def_static(
            "distance",
            [](const py::array_t<float, py::array::forcecast>& a, const py::array_t<float, py::array::forcecast>& b) {
                const auto descriptor = [](const py::array_t<float, py::array::forcecast>& x, const char* name) {
                    if (x.ndim() != 1 || x.shape(0) != facet::kDescriptorSize) {
                        std::string shape = "(";
                        for (py::ssize_t i = 0; i < x.ndim(); ++i) shape += (i ? ", " : "") + std::to_string(x.shape(i));
                        throw py::value_error(std::string(name) + " must be a descriptor of shape (128,), got " + shape +
                                              (x.ndim() == 1 ? ",)" : ")"));
                    }
                    facet::FaceDescriptor d;
                    std::copy_n(x.data(), facet::kDescriptorSize, d.begin());
                    return d;
                };
                return facet::FaceRecognizer::distance(descriptor(a, "a"), descriptor(b, "b"));
            },
            py::arg("a"), py::arg("b"),
            "distance(a, b) -> float\n\nThe Euclidean distance between two descriptors; below 0.6, the same person.");

    py::class_<PyFaceAttributes>(m, "FaceAttributes", R"(face-api's age / gender and expression nets on a detected face.

FaceAttributes(age_gender_model, expression_model)

age_gender_model, expression_model: weights/age_gender.facet, weights/face_expression.facet. Each face
is cropped as face-api crops its detector's box (README, "Face attributes"). One object per thread;
calls on one object are serialised.)")
        .def(py::init([](const std::string& age_gender, const std::string& expression) {
                 return new PyFaceAttributes(FaceAttributeNets{facet::AgeGender(age_gender), facet::FaceExpression(expression)});
             }),
             py::arg("age_gender_model"), py::arg("expression_model"))
        .def(
            "expression",
            [](PyFaceAttributes& self, const py::handle& image, const facet::Face& face, bool bgr) {
                const ImageArg arg = image_arg(image, bgr);
                const std::vector<float> probabilities =
                    self.locked([&](FaceAttributeNets& n) { return n.expression.probabilities(arg.image(), face); });
                py::dict out;
                for (std::size_t k = 0; k < probabilities.size(); ++k)
                    out[py::str(self.detector.expression.labels()[k])] = probabilities[k];
                return out;
            },
            py::arg("image"), py::arg("face"), py::kw_only(), py::arg("bgr") = false,
            "expression(image, face, *, bgr=False) -> dict[str, float]\n\nThe probability of each expression (neutral, "
            "happy, sad, angry, fearful, disgusted, surprised), summing to 1.")
        .def(
            "age_gender",
            [](PyFaceAttributes& self, const py::handle& image, const facet::Face& face, bool bgr) {
                const ImageArg arg = image_arg(image, bgr);
                const facet::AgeGenderEstimate e =
                    self.locked([&](FaceAttributeNets& n) { return n.age_gender.estimate(arg.image(), face); });
                return py::make_tuple(e.age, e.gender, e.gender_probability);
            },
            py::arg("image"), py::arg("face"), py::kw_only(), py::arg("bgr") = false,
            "age_gender(image, face, *, bgr=False) -> tuple[float, str, float]\n\nThe age in years, the more probable "
            "gender ('male' or 'female') and its probability (>= 0.5).");

    m.def(
        "align_face",
        [](const py::handle& image, const facet::Face& face, bool bgr) {
            const ImageArg arg = image_arg(image, bgr);
            facet::Image crop;
            {
                py::gil_scoped_release released;
                crop = facet::align_face(arg.image(), face);
            }
            return image_array(std::move(crop));
        },
        py::arg("image"), py::arg("face"), py::kw_only(), py::arg("bgr") = false,
        "align_face(image, face, *, bgr=False) -> numpy.ndarray\n\nThe 112x112 RGB crop of a face aligned on the ArcFace "
        "template by its five landmarks (a least-squares similarity transform).");

    py::class_<facet::HeadPose>(m, "HeadPose", "A head pose: yaw, pitch, roll in degrees, and the rigid transform.")
        .def_readonly("yaw", &facet::HeadPose::yaw)
        .def_readonly("pitch", &facet::HeadPose::pitch)
        .def_readonly("roll", &facet::HeadPose::roll)
        .def_readonly("reprojection_error", &facet::HeadPose::reprojection_error, "RMS over the model's points, pixels")
        .def_property_readonly("rotation", [](const facet::HeadPose& p) {
            std::vector<double> r(9);
            for (int i = 0; i < 3; ++i)
                for (int j = 0; j < 3; ++j) r[3 * i + j] = p.rotation(i, j);
            return owning_array(std::move(r), {3, 3});
        }, "float64 (3, 3): model -> camera")
        .def_property_readonly("translation", [](const facet::HeadPose& p) {
            return owning_array(std::vector<double>(p.translation.data(), p.translation.data() + 3), {3});
        }, "float64 (3,): the nose tip in the camera frame, mm")
        .def("__repr__", [](const facet::HeadPose& p) {
            char text[128];
            std::snprintf(text, sizeof text, "HeadPose(yaw=%.1f, pitch=%.1f, roll=%.1f)", p.yaw, p.pitch, p.roll);
            return std::string(text);
        });
    m.def(
        "estimate_head_pose",
        [](const py::array_t<float, py::array::forcecast>& landmarks, int width, int height) {
            return facet::estimate_head_pose(points_arg(landmarks, "landmarks"), width, height);
        },
        py::arg("landmarks"), py::arg("width"), py::arg("height"),
        "estimate_head_pose(landmarks, width, height) -> HeadPose\n\nThe head pose from 68 or 98 landmarks (N, 2) in "
        "the pixels of a width x height image.");

    py::class_<PyMeshDecoder>(m, "MeshDecoder", R"(Mesh decoder: a latent code -> the vertices of a face mesh.

MeshDecoder(model, *, threads=1)

decode(latent) takes float32 (latent_size,) and returns float32 (vertex_count, 3 or 6): xyz (and rgb).)")
        .def(py::init([](const std::string& path, int threads) {
                 facet::MeshDecoderOptions o;
                 o.threads = threads;
                 return new PyMeshDecoder(path, o);
             }),
             py::arg("model"), py::kw_only(), py::arg("threads") = 1)
        .def_property_readonly("latent_size", [](PyMeshDecoder& self) { return self.detector.model().latent_size(); })
        .def_property_readonly("vertex_count", [](PyMeshDecoder& self) { return self.detector.model().vertex_count(); })
        .def_property_readonly("faces", [](PyMeshDecoder& self) {
            std::vector<int> t;
            for (const auto& f : self.detector.model().faces()) t.insert(t.end(), f.begin(), f.end());
            return owning_array(std::move(t), {static_cast<py::ssize_t>(self.detector.model().faces().size()), 3});
        }, "int32 (triangles, 3), counter-clockwise seen from outside")
        .def(
            "decode",
            [](PyMeshDecoder& self, const py::array_t<float, py::array::c_style | py::array::forcecast>& latent) {
                const facet::MeshDecoderModel& model = self.detector.model();
                if (latent.ndim() != 1 || latent.shape(0) != model.latent_size())
                    throw py::value_error("expected a latent code of shape (" + std::to_string(model.latent_size()) + ",)");
                std::vector<float> vertices(static_cast<std::size_t>(model.vertex_count()) * model.output_channels());
                self.locked([&](facet::MeshDecoder& d) { d.decode(latent.data(), vertices.data()); });
                return owning_array(std::move(vertices), {model.vertex_count(), model.output_channels()});
            },
            py::arg("latent"));

    py::class_<facet::GraphModel, std::shared_ptr<facet::GraphModel>>(m, "GraphModel",
        R"(An imported network (ONNX or TF.js through converters/), loaded once and shared by executors.

GraphModel(model): model is a .facet file written by converters/onnx2facet.py or tfjs2facet.py.)")
        .def(py::init([](const std::string& path) {
                 return std::const_pointer_cast<facet::GraphModel>(facet::GraphModel::from_file(path));
             }),
             py::arg("model"))
        .def_property_readonly("input_shape", [](const facet::GraphModel& g) {
            return py::make_tuple(g.input().h, g.input().w, g.input().c);
        }, "(H, W, C) of the network input")
        .def_property_readonly("output_names", [](const facet::GraphModel& g) {
            std::vector<std::string> names;
            for (const auto& o : g.outputs()) names.push_back(o.name);
            return names;
        });

    py::class_<PyGraphExecutor>(m, "GraphExecutor", R"(Runs a GraphModel: its own scratch memory, one per thread.

GraphExecutor(model, *, threads=1)

run(image) takes a uint8 (H, W, 3) image of exactly the input's size, normalised as the file says,
and returns the outputs as float32 arrays in their ONNX shapes.)")
        .def(py::init([](std::shared_ptr<facet::GraphModel> model, int threads) {
                 return new PyGraphExecutor(std::shared_ptr<const facet::GraphModel>(std::move(model)),
                                            facet::default_kernel_set(), threads);
             }),
             py::arg("model"), py::kw_only(), py::arg("threads") = 1)
        .def(
            "run",
            [](PyGraphExecutor& self, const py::handle& image, bool bgr) {
                const ImageArg arg = image_arg(image, bgr);
                std::vector<std::vector<float>> outputs = self.locked([&](facet::GraphExecutor& d) {
                    d.set_input(arg.image());
                    d.run();
                    std::vector<std::vector<float>> values;
                    for (std::size_t i = 0; i < d.model().outputs().size(); ++i) values.push_back(d.output(i));
                    return values;
                });
                py::list result;
                for (std::size_t i = 0; i < outputs.size(); ++i) {
                    std::vector<py::ssize_t> shape;
                    for (int d : self.detector.model().outputs()[i].onnx_shape) shape.push_back(d);
                    result.append(owning_array(std::move(outputs[i]), shape));
                }
                return result;
            },
            py::arg("image"), py::kw_only(), py::arg("bgr") = false);
}
