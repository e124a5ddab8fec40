#!/usr/bin/env python3
"""The mesh hierarchy of the mesh decoder (MODELS.md section 4), built with NumPy alone.

An icosahedron (12 vertices) subdivided level by level: every edge gets a vertex at its midpoint,
pushed out onto the unit sphere, and every triangle becomes four. Vertex counts run
12 -> 42 -> 162 -> 642 -> 2562. Between two levels, the up-sampling matrix U [V_fine, V_coarse]
copies an old vertex's features (a 1 on the diagonal: subdivision keeps the old vertices, in
order, as the first V_coarse vertices of the finer level) and gives a new vertex the mean of its
edge's two ends (0.5, 0.5): exactly the barycentric weights of the edge midpoint. On each level
the scaled normalised graph Laplacian L~ = 2 L / lmax - I, with L = I - D^-1/2 A D^-1/2 (A the
vertex adjacency, D the degrees), is what the Chebyshev convolutions filter with.

Sparse matrices are CSR (`Csr`), the layout the facet file stores them in (weights/FORMAT.md,
"Sparse matrices").
"""

from dataclasses import dataclass

import numpy as np

ICOSPHERE_VERTEX_COUNTS = (12, 42, 162, 642, 2562)
# The largest eigenvalue of a normalised Laplacian is at most 2; the usual choice of lmax.
LAPLACIAN_LMAX = 2.0


@dataclass(frozen=True)
class Csr:
    """A sparse matrix in compressed sparse row form: row r holds columns
    indices[indptr[r]:indptr[r + 1]] (strictly increasing) with those values."""
    shape: tuple          # (rows, cols)
    indptr: np.ndarray    # int32 [rows + 1], indptr[0] == 0, non-decreasing
    indices: np.ndarray   # int32 [nnz]
    values: np.ndarray    # float64 [nnz]

    @staticmethod
    def from_rows(shape, rows):
        """From one {column: value} dict per row."""
        indptr = np.zeros(shape[0] + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(row) for row in rows])
        indices = [column for row in rows for column in sorted(row)]
        values = [row[column] for row in rows for column in sorted(row)]
        return Csr(tuple(shape), indptr.astype(np.int32), np.array(indices, dtype=np.int32),
                   np.array(values, dtype=np.float64))

    def to_dense(self):
        dense = np.zeros(self.shape, dtype=np.float64)
        for row in range(self.shape[0]):
            begin, end = self.indptr[row], self.indptr[row + 1]
            dense[row, self.indices[begin:end]] = self.values[begin:end]
        return dense

    def check(self):
        """Raise ValueError unless the arrays form a valid CSR matrix of `shape` (the rules the
        facet loader enforces)."""
        rows, cols = self.shape
        if len(self.indptr) != rows + 1 or self.indptr[0] != 0 or np.any(np.diff(self.indptr) < 0):
            raise ValueError("indptr must have rows + 1 entries, start at 0 and never decrease")
        if not self.indptr[-1] == len(self.indices) == len(self.values):
            raise ValueError("indptr[-1], len(indices) and len(values) must all be nnz")
        if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= cols):
            raise ValueError("a column index is out of range")
        for row in range(rows):
            if np.any(np.diff(self.indices[self.indptr[row]:self.indptr[row + 1]]) <= 0):
                raise ValueError(f"row {row}: column indices are not strictly increasing")


@dataclass(frozen=True)
class Mesh:
    vertices: np.ndarray  # float64 [V, 3], on the unit sphere
    faces: np.ndarray     # int32 [F, 3], counter-clockwise seen from outside


def icosahedron():
    """The regular icosahedron on the unit sphere, 12 vertices and 20 faces."""
    phi = (1.0 + np.sqrt(5.0)) / 2.0
    vertices = np.array([[-1, phi, 0], [1, phi, 0], [-1, -phi, 0], [1, -phi, 0],
                         [0, -1, phi], [0, 1, phi], [0, -1, -phi], [0, 1, -phi],
                         [phi, 0, -1], [phi, 0, 1], [-phi, 0, -1], [-phi, 0, 1]], dtype=np.float64)
    faces = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11],
                      [1, 5, 9], [5, 11, 4], [11, 10, 2], [10, 7, 6], [7, 1, 8],
                      [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9],
                      [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]], dtype=np.int32)
    return Mesh(vertices / np.linalg.norm(vertices, axis=1, keepdims=True), faces)


def subdivide(mesh):
    """The next level: (finer mesh, up-sampling matrix [V_fine, V_coarse]). New vertices are
    numbered after the old ones, in the order their edges are first met walking the faces."""
    coarse_count = len(mesh.vertices)
    midpoint_of_edge = {}
    upsample_rows = [{v: 1.0} for v in range(coarse_count)]

    def midpoint(a, b):
        edge = (min(a, b), max(a, b))
        if edge not in midpoint_of_edge:
            midpoint_of_edge[edge] = coarse_count + len(midpoint_of_edge)
            upsample_rows.append({edge[0]: 0.5, edge[1]: 0.5})
        return midpoint_of_edge[edge]

    faces = []
    for a, b, c in mesh.faces.tolist():
        ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
        faces += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
    upsample = Csr.from_rows((len(upsample_rows), coarse_count), upsample_rows)
    # The up-sampling matrix applied to the positions puts each new vertex at its edge's midpoint;
    # the sphere needs it pushed out to radius 1.
    vertices = upsample.to_dense() @ mesh.vertices
    vertices /= np.linalg.norm(vertices, axis=1, keepdims=True)
    return Mesh(vertices, np.array(faces, dtype=np.int32)), upsample


def icosphere_hierarchy(levels):
    """`levels` meshes from the icosahedron up (12, 42, 162, ... vertices) and the levels - 1
    up-sampling matrices between them (upsamples[i] takes level i to level i + 1)."""
    if not 1 <= levels <= len(ICOSPHERE_VERTEX_COUNTS):
        raise ValueError(f"levels must be 1 .. {len(ICOSPHERE_VERTEX_COUNTS)}, got {levels}")
    meshes, upsamples = [icosahedron()], []
    for _ in range(levels - 1):
        finer, upsample = subdivide(meshes[-1])
        meshes.append(finer)
        upsamples.append(upsample)
    return meshes, upsamples


def neighbours(mesh):
    """Each vertex's adjacent vertices (sharing an edge), as sorted lists."""
    adjacent = [set() for _ in range(len(mesh.vertices))]
    for a, b, c in mesh.faces.tolist():
        for u, v in ((a, b), (b, c), (c, a)):
            adjacent[u].add(v)
            adjacent[v].add(u)
    return [sorted(vertex_neighbours) for vertex_neighbours in adjacent]


def scaled_laplacian(mesh, lmax=LAPLACIAN_LMAX):
    """L~ = 2 L / lmax - I with L = I - D^-1/2 A D^-1/2, as CSR. Its diagonal, 2 / lmax - 1, is
    stored only where it is not zero (never, for lmax = 2)."""
    adjacent = neighbours(mesh)
    degree = np.array([len(n) for n in adjacent], dtype=np.float64)
    diagonal = 2.0 / lmax - 1.0
    rows = []
    for vertex, vertex_neighbours in enumerate(adjacent):
        row = {other: -2.0 / lmax / np.sqrt(degree[vertex] * degree[other]) for other in vertex_neighbours}
        if diagonal != 0.0:
            row[vertex] = diagonal
        rows.append(row)
    count = len(mesh.vertices)
    return Csr.from_rows((count, count), rows)
