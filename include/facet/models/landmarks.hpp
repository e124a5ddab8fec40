// facet: dense face landmarks (98 WFLW points, or 68) from a landmark network imported as a graph
// model, as PFLD-GhostOne is run upstream (MODELS.md section 6).
//
// For each face: the square of side max(w, h) centred on the detector's box, black where it leaves
// the image, resized to the network's input with OpenCV's bicubic (io/image.hpp, bit for bit as
// upstream's crops), the network, and its output, x and y pairs in [0, 1] of the crop, mapped back
// into image pixels. A network trained on looser crops than RetinaFace's boxes says so in its file
// (metadata "landmarks.crop_margin", FORMAT.md): the square then grows by that fraction of max(w, h)
// on each side. PFLD-GhostOne has none; face-api's face_landmark_68 has one (README, "Dense landmarks").
//
// A model may also estimate the head's angles: a second output named "angles" of 3 values (PFLD's
// auxiliary net, recipe pfld-angles), read for each face beside the landmarks.
//
// The graph runs on one face at a time (ONNX exports have a batch of 1): the faces of an image go
// through it in turn, each on the same network buffers. A FaceLandmarker must not be used by two
// threads at once; make one per thread (the model is shared).
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "../io/image.hpp"
#include "../post/face.hpp"
#include "graph.hpp"

namespace facet {

// The square of the image a face's landmarks are computed on, in image pixels (it may leave the
// image): side max(w, h) (times 1 + 2 margin), centred on the box, its corner and side rounded to
// whole pixels, as upstream crops.
struct LandmarkCrop {
    int x = 0, y = 0, side = 1;
};

inline LandmarkCrop landmark_crop(const std::array<float, 4>& box, float margin = 0.0f) {
    LandmarkCrop crop;
    const float side = std::max(box[2] - box[0], box[3] - box[1]) * (1 + 2 * margin);
    crop.side = std::max(1, static_cast<int>(std::lround(side)));
    // The corner is rounded as a whole, as PIL rounds the float box upstream crops with: the
    // square's centre stays within half a pixel of the box's. (Rounding the centre, then taking
    // half the rounded side, was up to a pixel off: face_landmark_68 moves its points by up to 4%
    // of a 60-80 px box for a one-pixel shift of the crop.)
    crop.x = static_cast<int>(std::lround((box[0] + box[2]) / 2 - side / 2));
    crop.y = static_cast<int>(std::lround((box[1] + box[3]) / 2 - side / 2));
    return crop;
}

// The five points faces are aligned on (eyes, nose tip, mouth corners, as seen in the image: see
// post/face.hpp) from dense landmarks, 98 WFLW points or 68 iBUG points: each eye's centre is the
// mean of its contour.
inline std::array<std::array<float, 2>, 5> alignment_points(const LandmarkPoints& dense) {
    struct Layout {
        int left_eye, right_eye, eye_points, nose_tip, mouth_left, mouth_right;
    };
    const Layout l = dense.size() == 98 ? Layout{60, 68, 8, 54, 76, 82} : Layout{36, 42, 6, 30, 48, 54};
    if (dense.size() != 98 && dense.size() != 68) throw Error("alignment points need 98 or 68 landmarks");
    const auto mean = [&](int first) {
        std::array<float, 2> m{0.0f, 0.0f};
        for (int i = first; i < first + l.eye_points; ++i)
            for (int k = 0; k < 2; ++k) m[k] += dense[i][k] / static_cast<float>(l.eye_points);
        return m;
    };
    return {mean(l.left_eye), mean(l.right_eye), dense[l.nose_tip], dense[l.mouth_left], dense[l.mouth_right]};
}

class FaceLandmarker {
public:
    explicit FaceLandmarker(std::shared_ptr<const GraphModel> model, const KernelSet& kernels = default_kernel_set(),
                            int threads = 1)
        : net_(std::move(model), kernels, threads) {
        const GraphModel& m = net_.model();
        m.require_square_input("a landmark model");
        const std::size_t values = net_.output_size(0);
        has_angles_ = m.outputs().size() == 2 && m.outputs()[1].name == "angles" && net_.output_size(1) == 3;
        if ((values != 2 * 98 && values != 2 * 68) || (m.outputs().size() > 1 && !has_angles_))
            throw Error("a landmark model has one output of 98 or 68 (x, y) pairs, and possibly a second, 'angles', of 3 "
                        "values; this one has " + std::to_string(m.outputs().size()) + " outputs, the first of " +
                        std::to_string(values) + " values");
        points_ = static_cast<int>(values / 2);
        values_.resize(values);
        crop_ = Image(m.input().w, m.input().h);
    }
    explicit FaceLandmarker(const std::string& path) : FaceLandmarker(GraphModel::from_file(path)) {}

    int points() const { return points_; }

    // Whether the model estimates head angles, and those of the last face given to landmarks(), as
    // the model was trained to give them (PFLD-pytorch: pitch, yaw, roll in degrees).
    bool has_angles() const { return has_angles_; }
    const std::array<float, 3>& last_angles() const { return angles_; }

    // The landmarks of the face in `box`, in image pixels.
    LandmarkPoints landmarks(const Image& image, const std::array<float, 4>& box) {
        const LandmarkCrop crop = landmark_crop(box, net_.model().landmark_crop_margin);
        cut(image, crop);
        net_.set_input(crop_);
        net_.run();
        net_.read_output(0, values_.data());
        if (has_angles_) net_.read_output(1, angles_.data());
        LandmarkPoints points(static_cast<std::size_t>(points_));
        for (int i = 0; i < points_; ++i)
            points[i] = {static_cast<float>(crop.x + static_cast<double>(values_[2 * i]) * crop.side),
                         static_cast<float>(crop.y + static_cast<double>(values_[2 * i + 1]) * crop.side)};
        return points;
    }

    // The landmarks of every face, in the faces' order.
    std::vector<LandmarkPoints> landmarks(const Image& image, const std::vector<Face>& faces) {
        std::vector<LandmarkPoints> out;
        for (const Face& f : faces) out.push_back(landmarks(image, f.box));
        return out;
    }

    // Sees the network's convs' inputs in later calls (GraphExecutor::set_calibration_observer).
    void set_calibration_observer(CalibrationObserver observer) { net_.set_calibration_observer(std::move(observer)); }

    // The network input of the last face, as 8-bit RGB (for tests and inspection).
    const Image& last_crop() const { return crop_; }

private:
    // crop_ = the square `crop` of `image` (black outside it), bicubic to the network's input size.
    void cut(const Image& image, const LandmarkCrop& crop) {
        if (crop.side != taps_side_) {
            taps_ = cubic_taps(crop.side, crop_.width);
            taps_side_ = crop.side;
        }
        // The square at full resolution first: the image's pixels where it overlaps it, black elsewhere.
        const std::size_t row_bytes = static_cast<std::size_t>(crop.side) * 3;
        square_.assign(row_bytes * crop.side, 0);
        const int x_begin = std::clamp(-crop.x, 0, crop.side), x_end = std::clamp(image.width - crop.x, x_begin, crop.side);
        const int y_begin = std::clamp(-crop.y, 0, crop.side), y_end = std::clamp(image.height - crop.y, y_begin, crop.side);
        for (int y = y_begin; y < y_end && x_begin < x_end; ++y)
            std::copy_n(image.pixel(crop.x + x_begin, crop.y + y), 3 * (x_end - x_begin), square_.data() + y * row_bytes + 3 * x_begin);
        resample_cubic<3>(
            taps_, taps_, sums_, [&](int y) { return square_.data() + y * row_bytes; }, [&](int y) { return crop_.pixel(0, y); });
    }

    GraphExecutor net_;
    int points_ = 0;
    Image crop_;
    std::vector<CubicTap> taps_; // for a crop of side taps_side_, both axes
    int taps_side_ = -1;
    std::vector<std::uint8_t> square_; // the crop before resizing, side x side x 3
    std::vector<std::int32_t> sums_;
    std::vector<float> values_; // the network's output, x0, y0, x1, y1 ... in [0, 1] of the crop
    bool has_angles_ = false;
    std::array<float, 3> angles_{};
};

} // namespace facet
