#!/usr/bin/env python3
"""meshgen: the icosphere hierarchy, its up-sampling matrices and Laplacians; and the mesh-decoder
recipe that packs them with a decoder's state dict."""

import tempfile
import unittest
from pathlib import Path

import numpy as np

import support
from facetfile import read_facet
from meshgen import Csr, icosphere_hierarchy, neighbours, scaled_laplacian
from recipes import RECIPES, Checkpoint, RecipeError
from torchpickle import load_state_dict

MESH_FIXTURES = support.REPO_ROOT / "tests" / "mesh" / "fixtures"


def edges_of(mesh):
    return {tuple(sorted(pair)) for a, b, c in mesh.faces.tolist() for pair in ((a, b), (b, c), (c, a))}


class IcosphereTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.meshes, cls.upsamples = icosphere_hierarchy(5)

    def test_counts_and_closed_surface(self):
        for level, mesh in enumerate(self.meshes):
            vertex_count, face_count = len(mesh.vertices), len(mesh.faces)
            self.assertEqual(vertex_count, 10 * 4 ** level + 2)
            self.assertEqual(face_count, 20 * 4 ** level)
            # A closed genus-0 triangle mesh: V - E + F = 2 and every edge borders two faces.
            self.assertEqual(vertex_count - len(edges_of(mesh)) + face_count, 2)
            self.assertEqual(len(edges_of(mesh)) * 2, face_count * 3)

    def test_vertices_on_unit_sphere_and_faces_outward(self):
        for mesh in self.meshes:
            np.testing.assert_allclose(np.linalg.norm(mesh.vertices, axis=1), 1.0, rtol=1e-12)
            a, b, c = (mesh.vertices[mesh.faces[:, k]] for k in range(3))
            normals = np.cross(b - a, c - a)
            self.assertTrue(np.all(np.einsum("ij,ij->i", normals, a + b + c) > 0))

    def test_upsampling_keeps_old_vertices_and_averages_edge_ends(self):
        for coarse, fine, upsample in zip(self.meshes, self.meshes[1:], self.upsamples):
            upsample.check()
            dense = upsample.to_dense()
            old = len(coarse.vertices)
            self.assertEqual(dense.shape, (len(fine.vertices), old))
            np.testing.assert_array_equal(dense[:old], np.eye(old))
            coarse_edges = edges_of(coarse)
            for row in dense[old:]:
                (ends,) = np.nonzero(row)
                self.assertIn(tuple(ends), coarse_edges)
                np.testing.assert_array_equal(row[ends], [0.5, 0.5])
            # The new vertex is its edge's midpoint, pushed onto the sphere.
            midpoints = dense @ coarse.vertices
            np.testing.assert_allclose(midpoints / np.linalg.norm(midpoints, axis=1, keepdims=True),
                                       fine.vertices, atol=1e-15)

    def test_scaled_laplacian_matches_its_definition(self):
        for mesh in self.meshes[:3]:
            count = len(mesh.vertices)
            adjacency = np.zeros((count, count))
            for u, v in edges_of(mesh):
                adjacency[u, v] = adjacency[v, u] = 1
            d = adjacency.sum(1) ** -0.5
            laplacian = np.eye(count) - d[:, None] * adjacency * d[None, :]
            for lmax in (2.0, 1.5):
                scaled = scaled_laplacian(mesh, lmax)
                scaled.check()
                np.testing.assert_allclose(scaled.to_dense(), 2 * laplacian / lmax - np.eye(count), atol=1e-15)
            # lmax = 2 stores no diagonal: one entry per neighbour (5 or 6 on an icosphere).
            self.assertEqual(len(scaled_laplacian(mesh).values), 2 * len(edges_of(mesh)))
            eigenvalues = np.linalg.eigvalsh(scaled_laplacian(mesh).to_dense())
            self.assertGreaterEqual(eigenvalues.min(), -1 - 1e-12)
            self.assertLessEqual(eigenvalues.max(), 1 + 1e-12)
        self.assertEqual({len(n) for n in neighbours(self.meshes[-1])}, {5, 6})

    def test_csr_check_refuses_malformed_matrices(self):
        good = Csr.from_rows((2, 3), [{0: 1.0, 2: 2.0}, {1: 3.0}])
        good.check()
        broken = {
            "column index is out of range": Csr((2, 2), good.indptr, good.indices, good.values),
            "not strictly increasing": Csr((2, 3), good.indptr, good.indices[[1, 0, 2]], good.values),
            "must all be nnz": Csr((2, 3), good.indptr, good.indices[:2], good.values[:2]),
            "start at 0": Csr((2, 3), good.indptr + 1, good.indices, good.values),
        }
        for message, matrix in broken.items():
            with self.assertRaisesRegex(ValueError, message):
                matrix.check()


class MeshDecoderRecipeTest(unittest.TestCase):
    def test_converts_a_decoder_with_its_hierarchy(self):
        with tempfile.TemporaryDirectory() as directory:
            out = Path(directory) / "decoder.facet"
            result = support.run_pth2facet("--recipe", "mesh-decoder", "--out", out, MESH_FIXTURES / "k2_xyzrgb.pth")
            self.assertEqual(result.returncode, 0, result.stderr)
            metadata, tensors = read_facet(out)
        self.assertEqual(metadata["model"], "mesh_decoder")
        self.assertEqual(metadata["mesh_decoder"], {
            "latent": 7, "order": 2, "vertices": [12, 42, 162], "channels": [5, 17, 9], "output": "xyz_rgb",
            "hierarchy": "icosphere", "laplacian_lmax": 2.0})
        self.assertEqual(tensors["latent.weight"].shape, (60, 7))
        self.assertEqual(tensors["convs.2.weight"].shape, (2, 9, 6))
        meshes, upsamples = icosphere_hierarchy(3)
        for level in (1, 2):
            for name, expected in ((f"upsample.{level}", upsamples[level - 1]),
                                   (f"laplacian.{level}", scaled_laplacian(meshes[level]))):
                parts = [tensors[f"{name}.{part}"] for part in ("shape", "indptr", "indices", "values")]
                self.assertEqual([p.dtype for p in parts], [np.int32, np.int32, np.int32, np.float32])
                stored = Csr(tuple(parts[0]), *parts[1:])
                stored.check()
                np.testing.assert_allclose(stored.to_dense(), expected.to_dense(), rtol=1e-7)
        self.assertNotIn("laplacian.0.indptr", tensors)  # level 0 has no conv
        self.assertEqual(tensors["mesh.faces"].dtype, np.int32)
        np.testing.assert_array_equal(tensors["mesh.faces"], meshes[-1].faces)
        self.assertEqual(tensors["mesh.vertices"].shape, (162, 3))

    def convert(self, state_dict):
        return RECIPES["mesh-decoder"].convert([Checkpoint("bad.pth", state_dict)])

    def test_refuses_inconsistent_state_dicts_by_key(self):
        good = load_state_dict(MESH_FIXTURES / "k3_xyz.pth")
        self.convert(good)
        wrong_width = dict(good, **{"convs.1.weight": np.zeros((3, 17, 8), np.float32)})
        with self.assertRaisesRegex(RecipeError, r"bad.pth is not a mesh-decoder checkpoint: "
                                                 r"key convs.1.weight has shape \(3,17,8\), expected \(3,17,9\)"):
            self.convert(wrong_width)
        with self.assertRaisesRegex(RecipeError, r"missing key convs.0.bias"):
            self.convert({k: v for k, v in good.items() if k != "convs.0.bias"})
        with self.assertRaisesRegex(RecipeError, r"the last conv outputs 4 channels"):
            self.convert(dict(good, **{"convs.2.weight": np.zeros((3, 9, 4), np.float32)}))
        with self.assertRaisesRegex(RecipeError, r"it has 1 convs"):
            self.convert({k: v for k, v in good.items() if not k.startswith(("convs.1.", "convs.2."))})


if __name__ == "__main__":
    unittest.main()
