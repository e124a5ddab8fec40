#!/usr/bin/env python3
"""Generate the mesh decoder parity fixtures with an independent PyTorch reference. Needs
PyTorch; run once and commit the output (tests/mesh/fixtures/); the tests then run without it:

    /usr/bin/python3 tests/mesh/make_reference.py

The reference is written from MODELS.md section 4 alone, with dense matrices: it builds each
level's scaled Laplacian itself from the mesh's triangles, takes only the meshes and up-sampling
matrices from converters/meshgen.py (they define the hierarchy), and shares no code with the C++.
For each decoder in DECODERS it writes, randomly initialised with a fixed seed:
  <name>.pth           the state dict, torch.save zip layout (what the mesh-decoder recipe reads)
  <name>.latent.npy    a latent vector, float32
  <name>.expected.npy  the decoder's output for it [vertices, 3 or 6], computed in float64 from
                       the float32 weights, stored as float32
"""

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "converters"))
import meshgen  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures"
LMAX = 2.0

# name: (latent size, channels per level F_0 .. F_(L-1), order K, output channels). The small ones
# (3 levels, odd widths) cover every K and both outputs; "k6_xyzrgb_full" is the full 2562-vertex
# hierarchy at widths 16 .. 64, which is also what facet-mesh demonstrates and the benchmark times.
DECODERS = {
    **{f"k{k}_{'xyz' if out == 3 else 'xyzrgb'}": (7, [5, 17, 9], k, out)
       for k in (1, 2, 3, 6) for out in (3, 6)},
    "k6_xyzrgb_full": (32, [64, 64, 32, 32, 16], 6, 6),
}


class ChebConv(nn.Module):
    """sum_k T_k W_k + b with T_0 = X, T_1 = L~ X, T_k = 2 L~ T_(k-1) - T_(k-2); W_k is [Fin, Fout]."""

    def __init__(self, order, fin, fout):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(order, fin, fout))
        self.bias = nn.Parameter(torch.empty(fout))
        bound = np.sqrt(3.0 / (order * fin))  # unit-variance outputs for unit-variance inputs
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -0.2, 0.2)

    def forward(self, x, laplacian):
        terms = [x]
        if self.weight.shape[0] > 1:
            terms.append(laplacian @ x)
        while len(terms) < self.weight.shape[0]:
            terms.append(2 * laplacian @ terms[-1] - terms[-2])
        return sum(t @ w for t, w in zip(terms, self.weight)) + self.bias


class MeshDecoder(nn.Module):
    """Dense latent -> [V_0, F_0]; per finer level: up-sample, Chebyshev conv, ELU; a last
    Chebyshev conv to 3 or 6 channels."""

    def __init__(self, latent, channels, order, output_channels, coarsest_vertices):
        super().__init__()
        self.channels = channels
        self.latent = nn.Linear(latent, coarsest_vertices * channels[0])
        outs = channels[1:] + [output_channels]
        self.convs = nn.ModuleList(ChebConv(order, fin, fout) for fin, fout in zip(channels, outs))

    def forward(self, z, laplacians, upsamples):
        x = self.latent(z).reshape(-1, self.channels[0])
        for level in range(1, len(self.channels)):
            x = upsamples[level - 1] @ x
            x = F.elu(self.convs[level - 1](x, laplacians[level]))
        return self.convs[-1](x, laplacians[-1])


def dense_scaled_laplacian(mesh):
    """L~ = 2 L / lmax - I, L = I - D^-1/2 A D^-1/2, from the triangles, in float64."""
    count = len(mesh.vertices)
    adjacency = torch.zeros(count, count, dtype=torch.float64)
    for a, b, c in mesh.faces.tolist():
        for u, v in ((a, b), (b, c), (c, a)):
            adjacency[u, v] = adjacency[v, u] = 1.0
    d_inv_sqrt = adjacency.sum(1).rsqrt()
    laplacian = torch.eye(count, dtype=torch.float64) - d_inv_sqrt[:, None] * adjacency * d_inv_sqrt[None, :]
    return 2.0 * laplacian / LMAX - torch.eye(count, dtype=torch.float64)


def make(name, latent, channels, order, output_channels, seed):
    torch.manual_seed(seed)
    meshes, upsamples = meshgen.icosphere_hierarchy(len(channels))
    decoder = MeshDecoder(latent, channels, order, output_channels, len(meshes[0].vertices))
    torch.save(decoder.state_dict(), FIXTURES / f"{name}.pth")  # zip layout, float32

    z = torch.randn(latent)
    laplacians = [dense_scaled_laplacian(mesh) for mesh in meshes]
    upsample_matrices = [torch.from_numpy(u.to_dense()) for u in upsamples]
    with torch.no_grad():
        expected = decoder.double()(z.double(), laplacians, upsample_matrices)
    np.save(FIXTURES / f"{name}.latent.npy", z.numpy().astype(np.float32))
    np.save(FIXTURES / f"{name}.expected.npy", expected.numpy().astype(np.float32))
    print(f"{name}: {len(meshes[-1].vertices)} vertices x {output_channels}, "
          f"output std {expected.std():.3f}, max |x| {expected.abs().max():.3f}")


def main():
    FIXTURES.mkdir(exist_ok=True)
    for seed, (name, (latent, channels, order, output_channels)) in enumerate(DECODERS.items()):
        make(name, latent, channels, order, output_channels, seed)


if __name__ == "__main__":
    main()
