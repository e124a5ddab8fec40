// facet: scalar references of the graph kernels (graph_conv.hpp), written from the definitions in
// MODELS.md section 4 and nothing else: weights in the [K][cin][cout] layout, not the packed one,
// sums in double, only the real channels touched. Slow on purpose: clarity first.
#pragma once
#include <cmath>
#include <cstddef>
#include <vector>

#include "graph_layout.hpp"

namespace facet::ref {

// out = A x.
inline void sparse_dense_product(const SparseMatrix& a, const GraphFeatures& x, const GraphFeatures& out) {
    for (int r = 0; r < a.rows; ++r)
        for (int c = 0; c < x.channels; ++c) {
            double sum = 0.0;
            for (std::int32_t j = a.row_begin[r]; j < a.row_begin[r + 1]; ++j)
                sum += static_cast<double>(a.values[j]) * x.row(a.columns[j])[c];
            out.row(r)[c] = static_cast<float>(sum);
        }
}

inline double elu(double x) { return x > 0.0 ? x : std::expm1(x); }

// out = act(sum_k T_k W_k + b) with T_0 = x, T_1 = L~ x, T_k = 2 L~ T_(k-1) - T_(k-2);
// w is [order][x.channels][cout], act is ELU or nothing.
inline void chebyshev_conv(const SparseMatrix& laplacian, const GraphFeatures& x, const float* w, const float* bias,
                           int order, int cout, bool elu_after, const GraphFeatures& out) {
    const int vertices = x.vertices, cin = x.channels;
    using Matrix = std::vector<double>; // [vertices][cin]
    auto apply_laplacian = [&](const Matrix& t) {
        Matrix lt(t.size(), 0.0);
        for (int r = 0; r < vertices; ++r)
            for (std::int32_t j = laplacian.row_begin[r]; j < laplacian.row_begin[r + 1]; ++j)
                for (int c = 0; c < cin; ++c)
                    lt[static_cast<std::size_t>(r) * cin + c] +=
                        laplacian.values[j] * t[static_cast<std::size_t>(laplacian.columns[j]) * cin + c];
        return lt;
    };
    std::vector<Matrix> terms(static_cast<std::size_t>(order));
    terms[0].resize(static_cast<std::size_t>(vertices) * cin);
    for (int r = 0; r < vertices; ++r)
        for (int c = 0; c < cin; ++c) terms[0][static_cast<std::size_t>(r) * cin + c] = x.row(r)[c];
    for (int k = 1; k < order; ++k) {
        terms[k] = apply_laplacian(terms[k - 1]);
        if (k >= 2)
            for (std::size_t e = 0; e < terms[k].size(); ++e) terms[k][e] = 2.0 * terms[k][e] - terms[k - 2][e];
    }
    for (int r = 0; r < vertices; ++r)
        for (int o = 0; o < cout; ++o) {
            double sum = bias ? bias[o] : 0.0;
            for (int k = 0; k < order; ++k)
                for (int i = 0; i < cin; ++i)
                    sum += terms[k][static_cast<std::size_t>(r) * cin + i] *
                           w[(static_cast<std::size_t>(k) * cin + i) * cout + o];
            out.row(r)[o] = static_cast<float>(elu_after ? elu(sum) : sum);
        }
}

} // namespace facet::ref
