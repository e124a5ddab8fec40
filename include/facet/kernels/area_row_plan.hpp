// facet: what the area-resampling row kernels (area_resample.hpp) read for one image region.
//
// MTCNN area-resamples (PyTorch's interpolate(mode="area")) an 8-bit image to a dozen pyramid
// levels and hundreds of crops a frame, from the image's summed-area table (io/image.hpp), and
// normalises each value as its first conv expects. One output row of a region is a function of two
// table rows (at the windows' top and bottom edges) and of the region's columns, which are the same
// for every row: so the columns are planned once per region (plan_area_row in io/image.hpp), and
// the kernel runs per row, with a scratch array of `entries` uint32 (it first takes the
// differences of the two table rows over the region, then each window's sums from them).
//
// Value i of a row (output pixel i / 3, channel i % 3) is
//   (float(sum_i) / rows / width[i] - mean[i]) * scale[i],
//   sum_i = (bottom[last[i]] - top[last[i]]) - (bottom[first[i]] - top[first[i]])   (modulo 2^32)
// with top / bottom the table rows from the region's left column, rows the windows' height, and
// first / last offsets into them in uint32 entries (the window's left and right edge column times
// 3, plus the image channel the value reads). The order of the operations is the reference's
// (PyTorch's mean, a division by rows then by columns; then the normalisation), so every kernel
// gives its bits. An int8 reader quantises the value (QuantParams::quantize).
#pragma once
#include <cstdint>
#include <vector>

namespace facet {

struct AreaRowPlan {
    // Entries in first / last / width / mean / scale are a multiple of this (the widest vector's
    // lanes), the padding a harmless value (offset 0, width 1, mean and scale 0), so that kernels
    // run whole vectors; their output rows hold padded() values.
    static constexpr int kPad = 16;
    int values = 0;  // the row's real values: output width x 3
    int entries = 0; // the table entries a row reads from the region's left column: 3 x (the last window's end + 1)
    std::vector<std::int32_t> first, last;
    std::vector<float> width, mean, scale;

    int padded() const { return static_cast<int>(first.size()); }
};

} // namespace facet
