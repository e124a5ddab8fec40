// facet: the mesh decoder (MODELS.md section 4): a latent code -> per-vertex xyz (and rgb) of a mesh.
//
//   dense latent -> [V_0, F_0]; for each finer level l = 1 .. L-1: up-sample (U_l X), Chebyshev
//   conv to F_l, ELU; then a last Chebyshev conv on level L-1 to 3 (xyz) or 6 (xyz + rgb) channels.
//
// MeshDecoderModel holds everything the weight file says (weights/FORMAT.md, model
// "mesh_decoder"): sizes, the sparse Laplacians and up-sampling matrices of the mesh hierarchy,
// the weights repacked for the kernels, and the output mesh's triangles. It is immutable and
// shared. MeshDecoder is the model plus the scratch memory of one call; like RetinaFace, one
// decoder must not be used by two threads at once, and clone() gives another one cheaply.
#pragma once
#include <algorithm>
#include <array>
#include <memory>
#include <string>
#include <vector>

#include "../io/sparse_tensor.hpp"
#include "../io/weights.hpp"
#include "../kernels/kernel_set.hpp"

namespace facet {

struct MeshDecoderOptions {
    int threads = 1; // threads inside the kernels (core/parallel.hpp)
};

class MeshDecoderModel {
public:
    explicit MeshDecoderModel(const WeightFile& file) { load(file); }
    static std::shared_ptr<const MeshDecoderModel> from_file(const std::string& path) {
        return std::make_shared<const MeshDecoderModel>(WeightFile::load(path));
    }

    int latent_size() const { return latent_size_; }
    int order() const { return order_; }                                  // K of every Chebyshev conv
    const std::vector<int>& level_vertices() const { return level_vertices_; } // coarsest first
    const std::vector<int>& level_channels() const { return level_channels_; } // F_l after level l's layer
    int output_channels() const { return output_channels_; }              // 3: xyz, 6: xyz + rgb
    int vertex_count() const { return level_vertices_.back(); }
    int levels() const { return static_cast<int>(level_vertices_.size()); }

    // The output mesh: its triangles (counter-clockwise seen from outside) and the rest position
    // of each vertex (the mesh the hierarchy was built on; what the decoded xyz replace).
    const std::vector<std::array<int, 3>>& faces() const { return faces_; }
    const std::vector<float>& rest_vertices() const { return rest_vertices_; } // [vertex_count][3]

    // The dense layer as a Chebyshev conv of order 1 on a single row: x W + b. Its output row is
    // laid out as the [V_0, F_0] matrix with a padded stride, so it is the next layer's input as is.
    PackedChebConv latent_layer;
    std::vector<SparseMatrix> upsample;  // [l - 1]: level l-1 -> level l, [V_l, V_(l-1)]
    std::vector<SparseMatrix> laplacian; // [l - 1]: scaled Laplacian L~ of level l, [V_l, V_l]
    std::vector<PackedChebConv> convs;   // [l - 1]: the conv of level l (ELU); last: the output conv

private:
    void load(const WeightFile& f);

    int latent_size_ = 0, order_ = 0, output_channels_ = 0;
    std::vector<int> level_vertices_, level_channels_;
    std::vector<std::array<int, 3>> faces_;
    std::vector<float> rest_vertices_;
};

inline void MeshDecoderModel::load(const WeightFile& f) {
    f.expect_model("mesh_decoder");
    f.read_metadata("mesh_decoder", [&](const json::Value& m) {
        const json::Value& d = m["mesh_decoder"];
        const auto positive_int = [](const json::Value& v, const char* what) {
            const double x = v.number();
            if (!(x >= 1 && x <= (1 << 24)) || x != static_cast<int>(x)) throw Error(std::string(what) + " must be a positive integer");
            return static_cast<int>(x);
        };
        latent_size_ = positive_int(d["latent"], "latent");
        order_ = positive_int(d["order"], "order");
        for (const auto& v : d["vertices"].array()) level_vertices_.push_back(positive_int(v, "vertices"));
        for (const auto& c : d["channels"].array()) level_channels_.push_back(positive_int(c, "channels"));
        if (level_vertices_.size() < 2) throw Error("vertices must list at least 2 levels");
        if (level_channels_.size() != level_vertices_.size()) throw Error("channels must have one entry per level");
        const std::string& output = d["output"].string();
        if (output != "xyz" && output != "xyz_rgb") throw Error("output must be 'xyz' or 'xyz_rgb'");
        output_channels_ = output == "xyz" ? 3 : 6;
        return 0;
    });

    // Dense layer: nn.Linear [V_0 * F_0, latent]; output (v, c) goes to lane v * stride + c.
    const int v0 = level_vertices_[0], f0 = level_channels_[0], f0_stride = round_up(f0, kChannelAlign);
    const WeightTensor& w = f.tensor("latent.weight", {v0 * f0, latent_size_});
    const WeightTensor& b = f.tensor("latent.bias", {v0 * f0});
    std::vector<float> w_io(static_cast<std::size_t>(latent_size_) * v0 * f0_stride), b_padded(static_cast<std::size_t>(v0) * f0_stride);
    for (int v = 0; v < v0; ++v)
        for (int c = 0; c < f0; ++c) {
            const int row = v * f0 + c, lane = v * f0_stride + c;
            b_padded[lane] = b.data[row];
            for (int i = 0; i < latent_size_; ++i)
                w_io[static_cast<std::size_t>(i) * v0 * f0_stride + lane] = w.data[static_cast<std::size_t>(row) * latent_size_ + i];
        }
    latent_layer = pack_cheb_conv(w_io.data(), b_padded.data(), 1, latent_size_, v0 * f0_stride, false);

    const int levels = this->levels();
    for (int l = 1; l < levels; ++l) {
        const int vertices = level_vertices_[l];
        upsample.push_back(read_sparse_matrix(f, "upsample." + std::to_string(l), vertices, level_vertices_[l - 1]));
        laplacian.push_back(read_sparse_matrix(f, "laplacian." + std::to_string(l), vertices, vertices));
    }
    // Conv i runs on level i + 1 (the output conv, i = levels - 1, on the last level too) and reads
    // the F_i channels up-sampled from level i (the output conv: level L-1's own).
    for (int i = 0; i < levels; ++i) {
        const bool output_conv = i == levels - 1;
        const int cin = level_channels_[i];
        const int cout = output_conv ? output_channels_ : level_channels_[i + 1];
        const std::string name = "convs." + std::to_string(i);
        const WeightTensor& cw = f.tensor(name + ".weight", {order_, cin, cout});
        const WeightTensor& cb = f.tensor(name + ".bias", {cout});
        convs.push_back(pack_cheb_conv(cw.data, cb.data, order_, cin, cout, !output_conv));
    }

    const int vertices = vertex_count();
    const WeightTensor& faces = f.int32_tensor("mesh.faces");
    if (faces.shape.size() != 2 || faces.shape[1] != 3)
        throw Error(f.path() + ": tensor 'mesh.faces' has shape " + faces.shape_string() + ", expected (faces, 3)");
    for (std::size_t t = 0; t < faces.count / 3; ++t) {
        std::array<int, 3> tri{};
        for (int k = 0; k < 3; ++k) {
            const std::int32_t v = faces.ints[3 * t + k];
            if (v < 0 || v >= vertices) throw Error(f.path() + ": tensor 'mesh.faces' names a vertex out of range");
            tri[k] = v;
        }
        faces_.push_back(tri);
    }
    const WeightTensor& rest = f.tensor("mesh.vertices", {vertices, 3});
    rest_vertices_.assign(rest.data, rest.data + rest.count);
}

class MeshDecoder {
public:
    explicit MeshDecoder(std::shared_ptr<const MeshDecoderModel> model, MeshDecoderOptions options = {},
                         const KernelSet& kernels = default_kernel_set())
        : model_(std::move(model)), options_(options), kernels_(&kernels) {}
    explicit MeshDecoder(const std::string& weight_path, MeshDecoderOptions options = {})
        : MeshDecoder(MeshDecoderModel::from_file(weight_path), options) {}

    // Another decoder on the same weights, with its own scratch memory (for another thread).
    MeshDecoder clone() const { return MeshDecoder(model_, options_, *kernels_); }

    const MeshDecoderModel& model() const { return *model_; }
    MeshDecoderOptions& options() { return options_; }
    const KernelSet& kernels() const { return *kernels_; }

    // Decodes model().latent_size() floats at `latent` into `vertices`: vertex_count() rows of
    // output_channels() floats (x, y, z[, r, g, b]). Allocates nothing after the first call.
    void decode(const float* latent, float* vertices) {
        const MeshDecoderModel& m = *model_;
        const int threads = options_.threads;
        reserve_scratch();
        const int v0 = m.level_vertices()[0];
        latent_.resize(1, m.latent_size());
        std::copy(latent, latent + m.latent_size(), latent_.view().data);
        ping_.resize(1, v0 * round_up(m.level_channels()[0], kChannelAlign));
        kernels_->chebyshev_conv(SparseMatrix{}, latent_.view(), m.latent_layer, nullptr, ping_.view(), threads);
        ping_.resize(v0, m.level_channels()[0]); // the same floats, seen as [V_0, F_0]

        for (int l = 1; l < m.levels(); ++l) {
            const int vertices_l = m.level_vertices()[l];
            pong_.resize(vertices_l, m.level_channels()[l - 1]);
            kernels_->spmm_csr(m.upsample[l - 1], ping_.view(), pong_.view(), threads);
            ping_.resize(vertices_l, m.level_channels()[l]);
            kernels_->chebyshev_conv(m.laplacian[l - 1], pong_.view(), m.convs[l - 1], scratch_.get(), ping_.view(), threads);
        }
        const int channels = m.output_channels();
        pong_.resize(m.vertex_count(), channels);
        kernels_->chebyshev_conv(m.laplacian.back(), ping_.view(), m.convs.back(), scratch_.get(), pong_.view(), threads);
        for (int v = 0; v < m.vertex_count(); ++v)
            std::copy(pong_.view().row(v), pong_.view().row(v) + channels, vertices + static_cast<std::ptrdiff_t>(v) * channels);
    }

    std::vector<float> decode(const std::vector<float>& latent) {
        const MeshDecoderModel& m = *model_;
        if (static_cast<int>(latent.size()) != m.latent_size())
            throw Error("mesh decoder: latent has " + std::to_string(latent.size()) + " values, the model takes " +
                        std::to_string(m.latent_size()));
        std::vector<float> vertices(static_cast<std::size_t>(m.vertex_count()) * m.output_channels());
        decode(latent.data(), vertices.data());
        return vertices;
    }

private:
    // The Chebyshev terms of the widest layer: every conv reuses the same scratch.
    void reserve_scratch() {
        if (scratch_) return;
        const MeshDecoderModel& m = *model_;
        std::size_t floats = 0;
        for (int i = 0; i < m.levels(); ++i) {
            const int vertices = m.level_vertices()[std::min(i + 1, m.levels() - 1)];
            floats = std::max(floats, chebyshev_scratch_floats(m.order(), vertices, m.convs[i].cin));
        }
        scratch_ = make_aligned_floats(floats);
    }

    std::shared_ptr<const MeshDecoderModel> model_;
    MeshDecoderOptions options_;
    const KernelSet* kernels_;
    GraphFeatureBuffer latent_, ping_, pong_;
    AlignedFloats scratch_;
};

} // namespace facet
