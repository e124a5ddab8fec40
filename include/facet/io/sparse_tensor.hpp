// facet: sparse matrices in a weight file (weights/FORMAT.md, "Sparse matrices").
//
// A CSR matrix is four tensors, `<name>.shape`, `.indptr`, `.indices` and `.values`. The kernels
// index rows and columns with these numbers unchecked, so everything that would send them out of
// bounds is refused here, by name: a wrong shape or nnz, a row pointer that starts elsewhere than 0
// or goes backwards, a column out of range, columns not strictly increasing within a row.
#pragma once
#include <string>
#include <vector>

#include "../kernels/graph_layout.hpp"
#include "weights.hpp"

namespace facet {

// The rows x cols sparse matrix `name` of file `f`, checked.
inline SparseMatrix read_sparse_matrix(const WeightFile& f, const std::string& name, int rows, int cols) {
    const auto fail = [&](const std::string& why) { throw Error(f.path() + ": sparse matrix '" + name + "' " + why); };
    const WeightTensor& shape = f.int32_tensor(name + ".shape");
    if (shape.shape != std::vector<int>{2}) fail("has a .shape tensor that is not [2]");
    if (shape.ints[0] != rows || shape.ints[1] != cols)
        fail("is " + std::to_string(shape.ints[0]) + " x " + std::to_string(shape.ints[1]) + ", expected " +
             std::to_string(rows) + " x " + std::to_string(cols));

    const WeightTensor& indptr = f.int32_tensor(name + ".indptr");
    const WeightTensor& indices = f.int32_tensor(name + ".indices");
    const WeightTensor& values = f.tensor(name + ".values");
    if (indptr.shape != std::vector<int>{rows + 1}) fail("has " + indptr.shape_string() + " row pointers, expected rows + 1");
    if (indices.shape.size() != 1 || values.shape != indices.shape)
        fail("has " + indices.shape_string() + " indices and " + values.shape_string() + " values: not one nnz");
    const std::int32_t nnz = indices.shape[0];
    if (indptr.ints[0] != 0) fail("has row pointers that do not start at 0");
    if (indptr.ints[rows] != nnz)
        fail("has row pointers that end at " + std::to_string(indptr.ints[rows]) + ", not at nnz " + std::to_string(nnz));
    for (int r = 0; r < rows; ++r) {
        const std::int32_t begin = indptr.ints[r], end = indptr.ints[r + 1];
        if (end < begin || end > nnz) fail("row " + std::to_string(r) + " has bad row pointers");
        for (std::int32_t j = begin; j < end; ++j) {
            const std::int32_t c = indices.ints[j];
            if (c < 0 || c >= cols) fail("row " + std::to_string(r) + " has column " + std::to_string(c) + " out of range");
            if (j > begin && c <= indices.ints[j - 1])
                fail("row " + std::to_string(r) + " has columns that are not strictly increasing");
        }
    }

    SparseMatrix m;
    m.rows = rows;
    m.cols = cols;
    m.row_begin.assign(indptr.ints, indptr.ints + rows + 1);
    m.columns.assign(indices.ints, indices.ints + nnz);
    m.values.assign(values.data, values.data + nnz);
    return m;
}

} // namespace facet
