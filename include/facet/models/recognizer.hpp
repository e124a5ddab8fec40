// facet: face descriptors (128 floats) from face-api's FaceRecognitionNet, dlib's ResNet face
// recognition network imported as a graph model (converters/tfjs2facet.py, weights/face_recognition.facet).
// Two faces whose descriptors lie less than 0.6 apart (Euclidean) are the same person, by dlib's and
// face-api's rule (README, "Face verification").
//
// For each face, as face-api computes a descriptor from an image tensor and a face rectangle
// (extractFaceTensors, then FaceRecognitionNet.computeFaceDescriptor):
//   1. the rectangle, clipped to the image and floored to whole pixels (Box.clipAtImageBorders);
//   2. padded to a square with zeros, centred (the larger half of the padding after: padToSquare);
//   3. resized bilinearly to the network's 150x150 (TF.js resizeBilinear, corners not aligned, no
//      half-pixel centres) in floats, never rounded to 8 bits;
//   4. normalised, (pixel - mean) / 255, and the network.
// The rectangle is the one face-api's withFaceDescriptors uses, its "dlib alignment" of the
// landmarks (FaceLandmarks.alignDlib), here from the detector's five points: the eyes and the
// middle of the mouth (face-api takes the centres of its 68 points' eyes and mouth). Of the crops
// measured on the README's verification pairs it separated same from different people best
// (README, "Face verification").
//
// A FaceRecognizer must not be used by two threads at once; make one per thread (the model is shared).
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

// Two descriptors less than this far apart are the same person (FaceRecognizer::distance).
constexpr float kSamePersonDistance = 0.6f;

// A rectangle of whole pixels inside the image.
struct PixelRect {
    int x = 0, y = 0, width = 0, height = 0;
};

// face-api's Box.clipAtImageBorders: x and y raised to 0, the right and bottom edges kept (but not
// past the image), then each of x, y, width and height floored.
inline PixelRect clip_to_image(double x, double y, double width, double height, int image_width, int image_height) {
    const double cx = std::max(x, 0.0), cy = std::max(y, 0.0);
    const double cw = std::min(x + width - cx, image_width - cx), ch = std::min(y + height - cy, image_height - cy);
    return {static_cast<int>(std::floor(cx)), static_cast<int>(std::floor(cy)), static_cast<int>(std::floor(cw)),
            static_cast<int>(std::floor(ch))};
}

// The rectangle face-api's FaceLandmarks.alignDlib gives for a face, from the detector's five
// points: with E1, E2 the eyes and M the middle of the mouth corners, a square of side
// floor(mean(|M - E1|, |M - E2|) / 0.45) whose point (0.5, 0.43) of its side is the three points'
// centre; its corner floored and no less than 0, then clipped to the image.
inline PixelRect recognition_rect(const Face& face, int image_width, int image_height) {
    const auto& p = face.landmarks;
    const double mouth_x = (static_cast<double>(p[3][0]) + p[4][0]) / 2, mouth_y = (static_cast<double>(p[3][1]) + p[4][1]) / 2;
    const auto to_mouth = [&](int eye) { return std::hypot(mouth_x - p[eye][0], mouth_y - p[eye][1]); };
    const double side = std::floor((to_mouth(0) + to_mouth(1)) / 2 / 0.45);
    const double centre_x = (static_cast<double>(p[0][0]) + p[1][0] + mouth_x) / 3;
    const double centre_y = (static_cast<double>(p[0][1]) + p[1][1] + mouth_y) / 3;
    const double x = std::floor(std::max(0.0, centre_x - 0.5 * side)), y = std::floor(std::max(0.0, centre_y - 0.43 * side));
    return clip_to_image(x, y, side, side, image_width, image_height);
}

class FaceRecognizer {
public:
    explicit FaceRecognizer(std::shared_ptr<const GraphModel> model, const KernelSet& kernels = default_kernel_set(),
                            int threads = 1)
        : net_(std::move(model), kernels, threads) {
        const GraphModel& m = net_.model();
        m.require_square_input("a face recognition model");
        if (m.outputs().size() != 1 || net_.output_size(0) != kDescriptorSize)
            throw Error("a face recognition model has one output of " + std::to_string(kDescriptorSize) + " values; this one has " +
                        std::to_string(m.outputs().size()) + " outputs, the first of " + std::to_string(net_.output_size(0)) + " values");
    }
    explicit FaceRecognizer(const std::string& path) : FaceRecognizer(GraphModel::from_file(path)) {}

    int input_size() const { return net_.model().input().w; }

    // The Euclidean distance between two descriptors; below kSamePersonDistance, the same person.
    static float distance(const FaceDescriptor& a, const FaceDescriptor& b) {
        double sum = 0;
        for (int i = 0; i < kDescriptorSize; ++i) {
            const double d = static_cast<double>(a[i]) - b[i];
            sum += d * d;
        }
        return static_cast<float>(std::sqrt(sum));
    }

    // The descriptor of a face the detector found in `image`.
    FaceDescriptor embed(const Image& image, const Face& face) {
        const PixelRect rect = recognition_rect(face, image.width, image.height);
        if (rect.width < 1 || rect.height < 1)
            throw Error("the face at (" + std::to_string(face.box[0]) + ", " + std::to_string(face.box[1]) +
                        ") leaves no pixels of the image to describe");
        return embed(image, rect);
    }

    // The descriptor of the face filling `rect` of `image` (inside it, at least a pixel), as face-api
    // computes it for a face tensor of that size; the whole image when it is the face crop itself.
    FaceDescriptor embed(const Image& image, const PixelRect& rect) {
        if (rect.width < 1 || rect.height < 1 || rect.x < 0 || rect.y < 0 || rect.x + rect.width > image.width ||
            rect.y + rect.height > image.height)
            throw Error("the face rectangle (" + std::to_string(rect.x) + ", " + std::to_string(rect.y) + ") " +
                        std::to_string(rect.width) + "x" + std::to_string(rect.height) + " is not inside the " +
                        std::to_string(image.width) + "x" + std::to_string(image.height) + " image");
        set_input(image, rect);
        net_.run();
        FaceDescriptor out;
        net_.read_output(0, out.data());
        return out;
    }
    FaceDescriptor embed(const Image& face_crop) { return embed(face_crop, PixelRect{0, 0, face_crop.width, face_crop.height}); }

private:
    // The network input from `rect`: padded to a centred square, resized bilinearly, normalised
    // (steps 2 to 4 above), in the arithmetic TF.js uses (doubles, stored as floats).
    void set_input(const Image& image, const PixelRect& rect) {
        const int side = std::max(rect.width, rect.height), size = input_size();
        // padToSquare appends round(diff / 2) after the image, the rest before it.
        const int diff = side - std::min(rect.width, rect.height), before = diff - (diff + 1) / 2;
        const int left = rect.width < side ? before : 0, top = rect.height < side ? before : 0;
        const auto taps = [&](int out_index) {
            const double source = static_cast<double>(side) / size * out_index;
            const int low = static_cast<int>(std::floor(source)), high = std::min(side - 1, static_cast<int>(std::ceil(source)));
            return Tap{low, high, source - low};
        };
        columns_.resize(static_cast<std::size_t>(size));
        for (int x = 0; x < size; ++x) columns_[x] = taps(x);
        const auto sample = [&](int square_y, int square_x, int c) -> double { // zero where the square is padding
            const int x = square_x - left, y = square_y - top;
            return x >= 0 && x < rect.width && y >= 0 && y < rect.height ? image.pixel(rect.x + x, rect.y + y)[c] : 0.0;
        };
        const GraphModel& m = net_.model();
        const FeatureMap& in = net_.input();
        for (int y = 0; y < size; ++y) {
            const Tap row = taps(y);
            for (int x = 0; x < size; ++x) {
                const Tap& col = columns_[x];
                float* pixel = in.at(y, x);
                for (int c = 0; c < 3; ++c) {
                    const int source_channel = m.source_channel[c];
                    const double top_value = sample(row.low, col.low, source_channel) +
                                             (sample(row.low, col.high, source_channel) - sample(row.low, col.low, source_channel)) * col.fraction;
                    const double bottom_value = sample(row.high, col.low, source_channel) +
                                                (sample(row.high, col.high, source_channel) - sample(row.high, col.low, source_channel)) * col.fraction;
                    const float value = static_cast<float>(top_value + (bottom_value - top_value) * row.fraction);
                    pixel[c] = (value - m.mean[c]) * m.scale[c];
                }
            }
        }
    }

    struct Tap {
        int low, high;   // the two source pixels of the padded square
        double fraction; // the weight of `high`
    };

    GraphExecutor net_;
    std::vector<Tap> columns_;
};

} // namespace facet
