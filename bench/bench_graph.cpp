// Benchmarks of the graph kernels and the mesh decoder, on every instruction set this CPU runs, at
// the shapes of the full demo decoder: tests/mesh/fixtures/k6_xyzrgb_full.pth, which the build
// converts into <build>/mesh/k6_xyzrgb_full.facet (icosphere 12 -> 42 -> 162 -> 642 -> 2562
// vertices, widths 64, 64, 32, 32, 16, K = 6, xyz + rgb out). The layers are the loaded model's
// own, walked in the order MeshDecoder::decode runs them.
//
//   spmm_csr/<isa>/upsample.<l>/<V_(l-1)>x<F>-><V_l>          U X, the up-sampling into level l
//   chebyshev_conv/<isa>/level.<l>/<V>x<F_in>-><F_out>/K<K>   one Chebyshev conv (recurrence,
//                                                             weights, bias, ELU but on the last)
//   chebyshev_conv/<isa>/latent/1x<latent>-><V_0 * F_0>/K1    the dense layer, as MeshDecoder runs it
//   MeshDecoder/<isa>/<V>x<channels>/K<K>                     decode(): latent in, vertices out
//
// All on one thread. Counters: FLOPS is 2 x the useful multiply-accumulates (sparse products
// 2 x nnz x real width each, the dense part 2 x V x K x F_in x F_out; padded lanes and the
// recurrence's "2 a - b" not counted). bytes is what a kernel cannot avoid moving, counted once:
// its input, output and Chebyshev terms with padded rows, the CSR arrays per sparse product, the
// packed weights; re-reads from cache are not counted. Both are rates in powers of 1000.
#include <benchmark/benchmark.h>
#include <facet/models/mesh_decoder.hpp>

#include <exception>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace facet;

constexpr int kKernelThreads = 1;
const std::string kDecoderPath = std::string(FACET_BINARY_DIR) + "/mesh/k6_xyzrgb_full.facet";

using Rate = benchmark::Counter;
Rate per_second(double per_iteration) { return Rate(per_iteration, Rate::kIsIterationInvariantRate, Rate::kIs1000); }

double matrix_bytes(int vertices, int channels) {
    return static_cast<double>(vertices) * round_up(channels, kChannelAlign) * sizeof(float);
}
double csr_bytes(const SparseMatrix& a) {
    return static_cast<double>(a.nnz()) * (sizeof(std::int32_t) + sizeof(float)) + (a.rows + 1.0) * sizeof(std::int32_t);
}

struct Cost {
    double flops = 0, bytes = 0;
};

Cost spmm_cost(const SparseMatrix& a, int channels) {
    return {2.0 * a.nnz() * channels, matrix_bytes(a.cols, channels) + matrix_bytes(a.rows, channels) + csr_bytes(a)};
}

Cost chebyshev_cost(const SparseMatrix& laplacian, int vertices, const PackedChebConv& w) {
    const int products = w.order - 1;
    Cost c;
    c.flops = 2.0 * products * laplacian.nnz() * w.cin + 2.0 * vertices * w.order * w.cin * w.cout;
    c.bytes = matrix_bytes(vertices, w.cin) + 2 * products * matrix_bytes(vertices, w.cin) + products * csr_bytes(laplacian) +
              matrix_bytes(vertices, w.cout) + static_cast<double>(w.order) * w.cin * w.cout_pad * sizeof(float);
    return c;
}

void set_counters(benchmark::State& state, const Cost& c) {
    state.counters["FLOPS"] = per_second(c.flops);
    state.counters["bytes"] = per_second(c.bytes);
}

void fill_random(const GraphFeatures& x, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (int v = 0; v < x.vertices; ++v)
        for (int c = 0; c < x.channels; ++c) x.row(v)[c] = dist(rng);
}

// Runs `call_once` untimed (first touch, weights into cache), then timed.
template <class Fn>
void time_calls(benchmark::State& state, Fn&& call_once) {
    call_once();
    for (auto _ : state) call_once();
}

void bm_spmm(benchmark::State& state, const KernelSet* ks, const SparseMatrix* a, int channels) {
    GraphFeatureBuffer x(a->cols, channels), out(a->rows, channels);
    fill_random(x.view(), 1);
    time_calls(state, [&] { ks->spmm_csr(*a, x.view(), out.view(), kKernelThreads); });
    set_counters(state, spmm_cost(*a, channels));
}

void bm_chebyshev(benchmark::State& state, const KernelSet* ks, const SparseMatrix* laplacian, int vertices,
                  const PackedChebConv* w) {
    GraphFeatureBuffer x(vertices, w->cin), out(vertices, w->cout);
    fill_random(x.view(), 2);
    AlignedFloats scratch = make_aligned_floats(chebyshev_scratch_floats(w->order, vertices, w->cin));
    time_calls(state, [&] { ks->chebyshev_conv(*laplacian, x.view(), *w, scratch.get(), out.view(), kKernelThreads); });
    set_counters(state, chebyshev_cost(*laplacian, vertices, *w));
}

void bm_decoder(benchmark::State& state, const KernelSet* ks, std::shared_ptr<const MeshDecoderModel> model, Cost cost) {
    MeshDecoder decoder(model, {kKernelThreads}, *ks);
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> latent(static_cast<std::size_t>(model->latent_size()));
    for (float& z : latent) z = normal(rng);
    std::vector<float> vertices(static_cast<std::size_t>(model->vertex_count()) * model->output_channels());
    time_calls(state, [&] { decoder.decode(latent.data(), vertices.data()); });
    set_counters(state, cost);
}

std::string shape(int vertices, int cin, int cout) {
    return std::to_string(vertices) + "x" + std::to_string(cin) + "->" + std::to_string(cout);
}

// Registers each layer of `model`, and the whole decode, on `ks`.
void register_decoder(const KernelSet& ks, const std::shared_ptr<const MeshDecoderModel>& model) {
    const MeshDecoderModel& m = *model;
    const std::string isa = ks.isa;
    static const SparseMatrix kNoLaplacian; // the dense layer (K = 1) reads none
    Cost total = chebyshev_cost(kNoLaplacian, 1, m.latent_layer);
    benchmark::RegisterBenchmark(("chebyshev_conv/" + isa + "/latent/" + shape(1, m.latent_size(), m.latent_layer.cout) + "/K1").c_str(),
                                 bm_chebyshev, &ks, &kNoLaplacian, 1, &m.latent_layer)
        ->Unit(benchmark::kMicrosecond);
    for (int i = 0; i < m.levels(); ++i) {
        const int level = std::min(i + 1, m.levels() - 1);
        const int vertices = m.level_vertices()[level];
        if (i + 1 < m.levels()) {
            const SparseMatrix& up = m.upsample[i];
            const int channels = m.level_channels()[i];
            benchmark::RegisterBenchmark(("spmm_csr/" + isa + "/upsample." + std::to_string(level) + "/" +
                                          shape(up.cols, channels, up.rows)).c_str(),
                                         bm_spmm, &ks, &up, channels)
                ->Unit(benchmark::kMicrosecond);
            total.flops += spmm_cost(up, channels).flops;
            total.bytes += spmm_cost(up, channels).bytes;
        }
        const PackedChebConv& w = m.convs[i];
        const SparseMatrix& laplacian = m.laplacian[level - 1];
        benchmark::RegisterBenchmark(("chebyshev_conv/" + isa + "/level." + std::to_string(level) + "/" +
                                      shape(vertices, w.cin, w.cout) + "/K" + std::to_string(w.order)).c_str(),
                                     bm_chebyshev, &ks, &laplacian, vertices, &w)
            ->Unit(benchmark::kMicrosecond);
        total.flops += chebyshev_cost(laplacian, vertices, w).flops;
        total.bytes += chebyshev_cost(laplacian, vertices, w).bytes;
    }
    benchmark::RegisterBenchmark(("MeshDecoder/" + isa + "/" + std::to_string(m.vertex_count()) + "x" +
                                  std::to_string(m.output_channels()) + "/K" + std::to_string(m.order())).c_str(),
                                 bm_decoder, &ks, model, total)
        ->Unit(benchmark::kMicrosecond);
}

// benchmark_main has its own main(), so registration happens during static initialisation. The
// layers' names need the model, so it is loaded here (a 600 kB file, milliseconds).
const bool kRegistered = [] {
    std::shared_ptr<const MeshDecoderModel> model;
    try {
        model = MeshDecoderModel::from_file(kDecoderPath);
    } catch (const std::exception& e) {
        const std::string error = std::string(e.what()) + " (the build makes it: cmake --build <build dir>)";
        benchmark::RegisterBenchmark("MeshDecoder/missing", [error](benchmark::State& state) { state.SkipWithError(error.c_str()); });
        return false;
    }
    for (Isa isa : supported_isas()) register_decoder(kernel_set(isa), model);
    return true;
}();

} // namespace
