// facet: what the graph kernels work on: per-vertex feature matrices, CSR sparse matrices, and
// Chebyshev convolution weights repacked once, at load, into the layout the SIMD kernel streams.
//
// Layout of vertex features: one row per vertex, channels innermost, the row stride rounded up to
// kChannelAlign floats (as the feature maps in tensor.hpp, for the same reasons): every kernel
// vectorises over a row's channels with no tail loop, a sparse product reads whole aligned rows of
// its neighbours, and the lanes past the real channels hold zeros that kernels keep zero.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../core/tensor.hpp"

namespace facet {

// A non-owning view of a [vertices, channels] feature matrix.
struct GraphFeatures {
    float* data = nullptr;
    int vertices = 0, channels = 0;
    int stride = 0; // floats between neighbouring rows: channels rounded up to kChannelAlign

    float* row(int v) const { return data + static_cast<std::ptrdiff_t>(v) * stride; }
};

// Owns the storage of one GraphFeatures. resize() reallocates, zeroed, only when the matrix needs
// more room than the buffer has; otherwise the producer overwrites every lane of every row.
class GraphFeatureBuffer {
public:
    GraphFeatureBuffer() = default;
    GraphFeatureBuffer(int vertices, int channels) { resize(vertices, channels); }

    void resize(int vertices, int channels) {
        const int stride = round_up(channels, kChannelAlign);
        const std::size_t need = static_cast<std::size_t>(vertices) * static_cast<std::size_t>(stride);
        if (need > capacity_) {
            storage_ = make_aligned_floats(need);
            capacity_ = need;
        }
        view_ = {storage_.get(), vertices, channels, stride};
    }

    const GraphFeatures& view() const { return view_; }

private:
    AlignedFloats storage_;
    std::size_t capacity_ = 0;
    GraphFeatures view_;
};

// A sparse matrix in compressed sparse row form: row r's non-zeros are at columns
// `columns[row_begin[r] .. row_begin[r + 1])`, strictly increasing, with those `values`.
// io/sparse_tensor.hpp reads one from a weight file and checks all of that.
struct SparseMatrix {
    int rows = 0, cols = 0;
    std::vector<std::int32_t> row_begin; // rows + 1 entries, row_begin[0] == 0
    std::vector<std::int32_t> columns;   // nnz
    std::vector<float> values;           // nnz

    std::size_t nnz() const { return columns.size(); }
};

// A Chebyshev graph convolution of order K (MODELS.md section 4):
//   out = act(sum_k T_k W_k + b),  T_0 = X, T_1 = L~ X, T_k = 2 L~ T_(k-1) - T_(k-2).
// weights: [K][cin][cout_pad], so for one term and one input channel the output channels are one
// contiguous, aligned run (the kernel broadcasts a T value and FMAs it into whole vectors). Lanes
// cout..cout_pad-1 hold zero weights and bias, so padded output channels come out zero (ELU(0) = 0).
struct PackedChebConv {
    int order = 0, cin = 0, cout = 0, cout_pad = 0;
    bool elu = false; // ELU (alpha = 1) after the bias, else none
    AlignedFloats weights, bias;
};

// From the reference layout [K][cin][cout] (PyTorch's Parameter(K, Fin, Fout)).
inline PackedChebConv pack_cheb_conv(const float* w_kio, const float* bias, int order, int cin, int cout, bool elu) {
    PackedChebConv p;
    p.order = order;
    p.cin = cin;
    p.cout = cout;
    p.cout_pad = round_up(cout, kChannelAlign);
    p.elu = elu;
    p.weights = make_aligned_floats(static_cast<std::size_t>(order) * cin * p.cout_pad);
    p.bias = make_aligned_floats(static_cast<std::size_t>(p.cout_pad));
    for (int o = 0; o < cout; ++o) p.bias[o] = bias ? bias[o] : 0.0f;
    for (int k = 0; k < order; ++k)
        for (int i = 0; i < cin; ++i)
            for (int o = 0; o < cout; ++o)
                p.weights[(static_cast<std::size_t>(k) * cin + i) * p.cout_pad + o] =
                    w_kio[(static_cast<std::size_t>(k) * cin + i) * cout + o];
    return p;
}

// Floats of scratch a Chebyshev convolution of `order` needs on `vertices` x `cin`: the terms
// T_1 .. T_(K-1), each a [vertices, cin] matrix with the padded stride (T_0 is the input itself).
inline std::size_t chebyshev_scratch_floats(int order, int vertices, int cin) {
    return static_cast<std::size_t>(order > 1 ? order - 1 : 0) * static_cast<std::size_t>(vertices) *
           static_cast<std::size_t>(round_up(cin, kChannelAlign));
}

} // namespace facet
