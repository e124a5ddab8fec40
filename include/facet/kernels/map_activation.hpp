// facet: an activation applied to a feature map on its own, when no kernel before it can apply it
// as an epilogue (after a concatenation or an addition, or clip and sigmoid, which epilogues do
// not have).
#pragma once
#include <algorithm>
#include <cmath>

#include "conv_weights.hpp"

namespace facet {

struct MapActivation {
    enum class Kind { epilogue, clip, sigmoid };
    Kind kind = Kind::epilogue;
    Epilogue epilogue;     // kind == epilogue: ReLU, leaky ReLU or PReLU (slopes padded to the channel stride)
    float low = 0, high = 0; // kind == clip

    float apply(float x, int channel) const {
        switch (kind) {
        case Kind::clip: return std::min(std::max(x, low), high);
        case Kind::sigmoid: return 1.0f / (1.0f + std::exp(-x));
        case Kind::epilogue: break;
        }
        return epilogue.apply(x, channel);
    }
};

} // namespace facet
