#!/usr/bin/env python3
"""The pth2facet recipes: which checkpoints each one takes, the exact keys and shapes it expects
of them, and how it turns their state dicts into facet tensors and metadata (weights/FORMAT.md).

A recipe exists because a checkpoint holds only weights: the activations, anchors and input
normalisation of the network that produced them must be supplied by whoever knows where the
checkpoint came from, and are then stored in the facet file so the engine never guesses.
"""

from dataclasses import dataclass

import numpy as np

import meshgen
from cli import ConverterError
from facetgraph import GraphBuilder, window_count

BATCHNORM_EPS = 1e-5  # nn.BatchNorm2d's default; a state dict does not record it

RELU = {"kind": "relu"}
LEAKY_RELU_0_1 = {"kind": "leaky_relu", "slope": 0.1}
NO_ACTIVATION = {"kind": "none"}


class RecipeError(ConverterError):
    """A checkpoint that does not fit the recipe; the message names the checkpoint and key."""
    names_file = True


@dataclass(frozen=True)
class Checkpoint:
    name: str          # as the user gave it, for messages
    state_dict: dict   # key -> np.ndarray, as read by torchpickle.load_state_dict


# ---------------------------------------------------------------------------------------------
# Checking a state dict against the keys a recipe expects


def check_state_dict(checkpoint, kind, expected_shapes, optional_keys=frozenset()):
    """Raise RecipeError unless `checkpoint` has exactly the keys of `expected_shapes`, with those
    shapes and a floating-point type, plus possibly some of `optional_keys` (ignored)."""
    problem = _state_dict_problem(checkpoint.state_dict, expected_shapes, optional_keys)
    if problem:
        raise RecipeError(f"checkpoint {checkpoint.name} is not a {kind} checkpoint: {problem}")


def _state_dict_problem(state_dict, expected_shapes, optional_keys):
    missing = [key for key in expected_shapes if key not in state_dict]
    if missing:
        return f"missing key {missing[0]}{_and_more(missing)}"
    for key, shape in expected_shapes.items():
        tensor = state_dict[key]
        if tensor.shape != shape:
            return f"key {key} has shape {_format_shape(tensor.shape)}, expected {_format_shape(shape)}"
        if not np.issubdtype(tensor.dtype, np.floating):
            return f"key {key} has type {tensor.dtype}, expected floating point"
    unexpected = [key for key in state_dict if key not in expected_shapes and key not in optional_keys]
    if unexpected:
        return f"unexpected key {unexpected[0]}{_and_more(unexpected)}"
    return None


def _and_more(keys):
    return f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""


def _format_shape(shape):
    return "(" + ",".join(str(n) for n in shape) + ")"


# ---------------------------------------------------------------------------------------------
# RetinaFace with a MobileNet-0.25 backbone (MODELS.md section 1)


@dataclass(frozen=True)
class Conv:
    """One convolution, named by its module in the checkpoint (e.g. "body.stage1.0.0")."""
    name: str
    shape: tuple           # weight [out, in/groups, kh, kw]
    batchnorm: str | None  # the BatchNorm module folded into it; None: the conv has its own bias
    activated: bool        # followed by the recipe's activation (ReLU or LeakyReLU), else by none

    @property
    def out_channels(self):
        return self.shape[0]


def _conv_bn(module, out_channels, in_channels, kernel, activated):
    """A conv at `<module>.0` followed by its BatchNorm at `<module>.1` (an nn.Sequential)."""
    return Conv(f"{module}.0", (out_channels, in_channels, kernel, kernel), f"{module}.1", activated)


# Depthwise-separable blocks (in, out channels) of MobileNetV1 x0.25 per stage, with the index of
# each stage's first block: stage1 starts with a plain conv at index 0.
_DEPTHWISE_BLOCKS = (
    ("body.stage1", 1, [(8, 16), (16, 32), (32, 32), (32, 64), (64, 64)]),
    ("body.stage2", 0, [(64, 128)] + [(128, 128)] * 5),
    ("body.stage3", 0, [(128, 256), (256, 256)]),
)


def _backbone_convs():
    convs = [_conv_bn("body.stage1.0", 8, 3, 3, activated=True)]
    for stage, first_index, blocks in _DEPTHWISE_BLOCKS:
        for index, (in_channels, out_channels) in enumerate(blocks, start=first_index):
            block = f"{stage}.{index}"
            # nn.Sequential(depthwise conv, BN, act, pointwise conv, BN, act): modules 0,1 and 3,4.
            convs.append(Conv(f"{block}.0", (in_channels, 1, 3, 3), f"{block}.1", activated=True))
            convs.append(Conv(f"{block}.3", (out_channels, in_channels, 1, 1), f"{block}.4", activated=True))
    return convs


def _fpn_convs():
    lateral = [_conv_bn(f"fpn.output{level}", 64, in_channels, 1, activated=True)
               for level, in_channels in ((1, 64), (2, 128), (3, 256))]
    merge = [_conv_bn(f"fpn.merge{level}", 64, 64, 3, activated=True) for level in (1, 2)]
    return lateral + merge


def _context_module_convs(level):
    """The SSH context module: only the convs that feed another conv are activated; the branch
    outputs are activated together after their concat (see `sshN.out`)."""
    module = f"ssh{level}"
    return [
        _conv_bn(f"{module}.conv3X3", 32, 64, 3, activated=False),
        _conv_bn(f"{module}.conv5X5_1", 16, 64, 3, activated=True),
        _conv_bn(f"{module}.conv5X5_2", 16, 16, 3, activated=False),
        _conv_bn(f"{module}.conv7X7_2", 16, 16, 3, activated=True),
        _conv_bn(f"{module}.conv7x7_3", 16, 16, 3, activated=False),
    ]


def _head_convs():
    # Per level: 2 anchors x (2 class logits, 4 box deltas, 10 landmark deltas).
    return [Conv(f"{head}.{level}.conv1x1", (2 * values, 64, 1, 1), batchnorm=None, activated=False)
            for head, values in (("ClassHead", 2), ("BboxHead", 4), ("LandmarkHead", 10))
            for level in range(3)]


# In checkpoint order, which is also the order of the tensors in the facet file.
RETINAFACE_CONVS = (_backbone_convs() + _fpn_convs()
                    + [conv for level in (1, 2, 3) for conv in _context_module_convs(level)]
                    + _head_convs())

# The deformable variant (context "deformable", MODELS.md section 3): the same convs, those of the
# context modules deformable, each sampling where its own plain 3x3 conv with bias,
# `<conv>.conv_offset` (mmcv's ModulatedDeformConv2dPack), says: 27 outputs, the (dy, dx) of the 9
# taps in torchvision's order, then the 9 taps' mask logits (the mask is their sigmoid).
RETINAFACE_DCN_CONVS = RETINAFACE_CONVS + [
    Conv(f"{conv.name}.conv_offset", (3 * 9, conv.shape[1], 3, 3), batchnorm=None, activated=False)
    for level in (1, 2, 3) for conv in _context_module_convs(level)]

_BATCHNORM_PARAMETERS = ("weight", "bias", "running_mean", "running_var")


def _per_channel_keys(conv):
    """The keys of a conv's per-channel parameters: its BatchNorm's, or else its own bias."""
    if conv.batchnorm:
        return [f"{conv.batchnorm}.{p}" for p in _BATCHNORM_PARAMETERS]
    return [f"{conv.name}.bias"]


def retinaface_expected_shapes(convs=RETINAFACE_CONVS):
    """Every key of a RetinaFace-mnet0.25 state dict with its shape, in checkpoint order."""
    shapes = {}
    for conv in convs:
        shapes[f"{conv.name}.weight"] = conv.shape
        shapes.update((key, (conv.out_channels,)) for key in _per_channel_keys(conv))
    return shapes


# BatchNorm's batch counter: training bookkeeping, absent from checkpoints of PyTorch < 0.4.1.
_RETINAFACE_OPTIONAL_KEYS = frozenset(
    f"{conv.batchnorm}.num_batches_tracked" for conv in RETINAFACE_CONVS if conv.batchnorm)


def fold_batchnorm(weight, gamma, beta, running_mean, running_var):
    """The weight and bias of one conv equal to conv (without bias) followed by BatchNorm in eval
    mode. Computed in float64 so that the float32 result is rounded only once."""
    scale = gamma.astype(np.float64) / np.sqrt(running_var.astype(np.float64) + BATCHNORM_EPS)
    folded_weight = weight.astype(np.float64) * scale.reshape(-1, 1, 1, 1)
    folded_bias = beta.astype(np.float64) - running_mean.astype(np.float64) * scale
    return folded_weight.astype(np.float32), folded_bias.astype(np.float32)


def _retinaface_tensors(state_dict, convs):
    tensors = {}
    for conv in convs:
        weight = state_dict[f"{conv.name}.weight"]
        if conv.batchnorm:
            weight, bias = fold_batchnorm(weight, *(state_dict[f"{conv.batchnorm}.{p}"]
                                                    for p in _BATCHNORM_PARAMETERS))
        else:
            bias = state_dict[f"{conv.name}.bias"]
        tensors[f"{conv.name}.weight"] = weight.astype(np.float32)
        tensors[f"{conv.name}.bias"] = bias.astype(np.float32)
    return tensors


def _retinaface_activations(conv_activation, convs):
    activations = {conv.name: conv_activation if conv.activated else NO_ACTIVATION for conv in convs}
    # The ReLU after each context module's concat is plain in every known checkpoint.
    activations.update({f"ssh{level}.out": RELU for level in (1, 2, 3)})
    return activations


@dataclass(frozen=True)
class RetinaFaceRecipe:
    name: str
    summary: str
    conv_activation: dict  # of every activated conv (Conv.activated)
    min_sizes: list        # anchor sizes per pyramid level
    context: str = "plain" # "deformable": the context modules' convs are deformable (RETINAFACE_DCN_CONVS)

    inputs = ("CHECKPOINT.pth",)

    @property
    def convs(self):
        return RETINAFACE_DCN_CONVS if self.context == "deformable" else RETINAFACE_CONVS

    def convert(self, checkpoints):
        """(metadata, tensors) for the facet file, from the one RetinaFace checkpoint."""
        (checkpoint,) = checkpoints
        check_state_dict(checkpoint, self.name, retinaface_expected_shapes(self.convs), _RETINAFACE_OPTIONAL_KEYS)
        metadata = {
            "model": "retinaface",
            "input": {"color": "bgr", "mean": [104, 117, 123], "scale": [1, 1, 1]},
            "retinaface": {
                "backbone": "mobilenet0.25",
                "steps": [8, 16, 32],
                "min_sizes": self.min_sizes,
                "variances": [0.1, 0.2],
                "context": self.context,
                "activations": _retinaface_activations(self.conv_activation, self.convs),
            },
        }
        return metadata, _retinaface_tensors(checkpoint.state_dict, self.convs)


# ---------------------------------------------------------------------------------------------
# MTCNN (MODELS.md section 2): three nets, stored unchanged


def _with_bias(layer, weight_shape):
    return {f"{layer}.weight": weight_shape, f"{layer}.bias": (weight_shape[0],)}


def _prelu(layer, channels):
    return {f"{layer}.weight": (channels,)}


MTCNN_EXPECTED_SHAPES = {
    "pnet": {
        **_with_bias("conv1", (10, 3, 3, 3)), **_prelu("prelu1", 10),
        **_with_bias("conv2", (16, 10, 3, 3)), **_prelu("prelu2", 16),
        **_with_bias("conv3", (32, 16, 3, 3)), **_prelu("prelu3", 32),
        **_with_bias("conv4_1", (2, 32, 1, 1)),
        **_with_bias("conv4_2", (4, 32, 1, 1)),
    },
    "rnet": {
        **_with_bias("conv1", (28, 3, 3, 3)), **_prelu("prelu1", 28),
        **_with_bias("conv2", (48, 28, 3, 3)), **_prelu("prelu2", 48),
        **_with_bias("conv3", (64, 48, 2, 2)), **_prelu("prelu3", 64),
        **_with_bias("dense4", (128, 576)), **_prelu("prelu4", 128),
        **_with_bias("dense5_1", (2, 128)),
        **_with_bias("dense5_2", (4, 128)),
    },
    "onet": {
        **_with_bias("conv1", (32, 3, 3, 3)), **_prelu("prelu1", 32),
        **_with_bias("conv2", (64, 32, 3, 3)), **_prelu("prelu2", 64),
        **_with_bias("conv3", (64, 64, 3, 3)), **_prelu("prelu3", 64),
        **_with_bias("conv4", (128, 64, 2, 2)), **_prelu("prelu4", 128),
        **_with_bias("dense5", (256, 1152)), **_prelu("prelu5", 256),
        **_with_bias("dense6_1", (2, 256)),
        **_with_bias("dense6_2", (4, 256)),
        **_with_bias("dense6_3", (10, 256)),
    },
}


class MtcnnRecipe:
    name = "mtcnn"
    summary = "MTCNN P-, R- and O-Net (facenet-pytorch data/pnet.pt rnet.pt onet.pt, in that order)"
    inputs = ("pnet.pt", "rnet.pt", "onet.pt")

    def convert(self, checkpoints):
        """(metadata, tensors) for the facet file, from the three nets' checkpoints."""
        tensors = {}
        # MTCNN_EXPECTED_SHAPES lists the nets in the order of `inputs`.
        for net, checkpoint in zip(MTCNN_EXPECTED_SHAPES, checkpoints):
            expected_shapes = MTCNN_EXPECTED_SHAPES[net]
            check_state_dict(checkpoint, f"{self.name} {net}", expected_shapes)
            tensors.update((f"{net}.{key}", checkpoint.state_dict[key].astype(np.float32))
                           for key in expected_shapes)
        metadata = {
            "model": "mtcnn",
            "input": {"color": "rgb", "mean": [127.5] * 3, "scale": [0.0078125] * 3},
            "mtcnn": {"min_face": 20, "factor": 0.709, "thresholds": [0.6, 0.7, 0.7]},
        }
        return metadata, tensors


# ---------------------------------------------------------------------------------------------
# Mesh decoder (MODELS.md section 4) on the icosphere hierarchy of converters/meshgen.py
#
# State dict: `latent.weight` [V_0 * F_0, latent] and `latent.bias` (an nn.Linear whose output is
# read as [V_0, F_0], vertex-major), then one Chebyshev conv per level, `convs.<i>.weight`
# [K, F_in, F_out] and `convs.<i>.bias` [F_out]: conv i < L - 1 takes level i's F_i channels,
# up-sampled to level i + 1, to F_(i+1) (then ELU); the last one, on level L - 1, outputs 3 (xyz)
# or 6 (xyz + rgb) channels. The number of convs is the number of levels L.

MESH_OUTPUTS = {3: "xyz", 6: "xyz_rgb"}


def _mesh_decoder_shapes(checkpoint):
    """The decoder's sizes, read from its state dict's shapes: (latent, K, channels per level,
    output channels), and every key's expected shape. The shapes then get checked in full."""
    state_dict = checkpoint.state_dict
    levels = 0
    while f"convs.{levels}.weight" in state_dict:
        levels += 1

    def problem(message):
        return RecipeError(f"checkpoint {checkpoint.name} is not a mesh-decoder checkpoint: {message}")

    if not 2 <= levels <= len(meshgen.ICOSPHERE_VERTEX_COUNTS):
        raise problem(f"it has {levels} convs (convs.<i>.weight), the icosphere hierarchy fits "
                      f"2 .. {len(meshgen.ICOSPHERE_VERTEX_COUNTS)}")
    for key in ["latent.weight"] + [f"convs.{i}.weight" for i in range(levels)]:
        if key not in state_dict or state_dict[key].ndim != (2 if key == "latent.weight" else 3):
            raise problem(f"key {key} is missing or has the wrong number of dims")
    conv_shapes = [state_dict[f"convs.{i}.weight"].shape for i in range(levels)]
    order = conv_shapes[0][0]
    channels = [shape[1] for shape in conv_shapes]
    output_channels = conv_shapes[-1][2]
    if output_channels not in MESH_OUTPUTS:
        raise problem(f"the last conv outputs {output_channels} channels, expected 3 (xyz) or 6 (xyz + rgb)")
    latent = state_dict["latent.weight"].shape[1]
    coarsest = meshgen.ICOSPHERE_VERTEX_COUNTS[0]
    expected = {"latent.weight": (coarsest * channels[0], latent), "latent.bias": (coarsest * channels[0],)}
    for i in range(levels):
        out = output_channels if i == levels - 1 else channels[i + 1]
        expected[f"convs.{i}.weight"] = (order, channels[i], out)
        expected[f"convs.{i}.bias"] = (out,)
    return latent, order, channels, output_channels, expected


def _sparse_tensors(name, matrix):
    """The four tensors of a sparse matrix (weights/FORMAT.md, "Sparse matrices")."""
    matrix.check()
    return {
        f"{name}.shape": np.array(matrix.shape, dtype=np.int32),
        f"{name}.indptr": matrix.indptr.astype(np.int32),
        f"{name}.indices": matrix.indices.astype(np.int32),
        f"{name}.values": matrix.values.astype(np.float32),
    }


class MeshDecoderRecipe:
    name = "mesh-decoder"
    summary = ("a mesh decoder (latent.*, convs.<i>.*: MODELS.md section 4), packed with the icosphere "
               "hierarchy 12 -> 42 -> ... vertices, one level per conv (converters/meshgen.py)")
    inputs = ("DECODER.pth",)

    def convert(self, checkpoints):
        """(metadata, tensors) for the facet file, from the decoder's state dict."""
        (checkpoint,) = checkpoints
        latent, order, channels, output_channels, expected = _mesh_decoder_shapes(checkpoint)
        check_state_dict(checkpoint, self.name, expected)
        levels = len(channels)
        meshes, upsamples = meshgen.icosphere_hierarchy(levels)
        tensors = {key: checkpoint.state_dict[key].astype(np.float32) for key in expected}
        for level in range(1, levels):
            tensors.update(_sparse_tensors(f"upsample.{level}", upsamples[level - 1]))
            tensors.update(_sparse_tensors(f"laplacian.{level}", meshgen.scaled_laplacian(meshes[level])))
        tensors["mesh.faces"] = meshes[-1].faces.astype(np.int32)
        tensors["mesh.vertices"] = meshes[-1].vertices.astype(np.float32)
        metadata = {
            "model": "mesh_decoder",
            "mesh_decoder": {
                "latent": latent,
                "order": order,
                "vertices": [len(mesh.vertices) for mesh in meshes],
                "channels": channels,
                "output": MESH_OUTPUTS[output_channels],
                "hierarchy": "icosphere",
                "laplacian_lmax": meshgen.LAPLACIAN_LMAX,
            },
        }
        return metadata, tensors


# ---------------------------------------------------------------------------------------------
# PFLD (Guo et al. 2019, "PFLD: A Practical Facial Landmark Detector"), in the PyTorch layout of
# PFLD-pytorch, as a facet graph (weights/FORMAT.md, model "graph"; run by models/graph.hpp).
#
# Its train.py saves {"epoch": N, "plfd_backbone": PFLDInference's state dict, "auxiliarynet":
# AuxiliaryNet's}: the backbone regresses the landmarks, the auxiliary net (only trained with it)
# three head angles from the backbone's 28 x 28 features. A state dict of the backbone alone
# converts too. The layout departs from the paper's table where checkpoints decide: conv2 is a full
# 3x3 conv, conv5_1 has no residual connection, and conv8 has a bias and a ReLU but no BatchNorm
# (its module holds a `bn8` the forward pass never applies: its keys are accepted and ignored).
# Every activation is ReLU. tests/pfld/pfld_reference.py is this network in PyTorch.

PFLD_INPUT_SIZE = 112
PFLD_POINT_COUNTS = (98, 68)
PFLD_BACKBONE_ENTRY, PFLD_AUXILIARY_ENTRY = "plfd_backbone", "auxiliarynet"  # train.py's names
# Upstream's input: OpenCV's BGR image scaled to [0, 1] (torchvision's ToTensor).
PFLD_INPUT = {"color": "bgr", "mean": [0, 0, 0], "scale": [1 / 255] * 3}


@dataclass(frozen=True)
class Bottleneck:
    """An InvertedResidual of the backbone: 1x1 expansion to `expansion` x in channels, depthwise
    3x3 with `stride`, both BN + ReLU, then a linear 1x1 projection with BN (its nn.Sequential
    `conv`: convs 0, 3, 6 and their BatchNorms 1, 4, 7); the input is added when `residual`."""
    module: str
    in_channels: int
    out_channels: int
    stride: int
    residual: bool
    expansion: int

    @property
    def hidden(self):
        return self.in_channels * self.expansion

    def convs(self):
        """(conv, BatchNorm, weight shape, stride, groups, activated) of its three convs."""
        m, hidden = self.module, self.hidden
        return [(f"{m}.conv.0", f"{m}.conv.1", (hidden, self.in_channels, 1, 1), 1, 1, True),
                (f"{m}.conv.3", f"{m}.conv.4", (hidden, 1, 3, 3), self.stride, hidden, True),
                (f"{m}.conv.6", f"{m}.conv.7", (self.out_channels, hidden, 1, 1), 1, 1, False)]


# Table 1's bottlenecks (t = expansion, c = out channels, n = repeats, s = stride of the first).
PFLD_BOTTLENECKS = (
    [Bottleneck("conv3_1", 64, 64, 2, False, 2)]
    + [Bottleneck(f"block3_{i}", 64, 64, 1, True, 2) for i in range(2, 6)]
    + [Bottleneck("conv4_1", 64, 128, 2, False, 2), Bottleneck("conv5_1", 128, 128, 1, False, 4)]
    + [Bottleneck(f"block5_{i}", 128, 128, 1, True, 4) for i in range(2, 7)]
    + [Bottleneck("conv6_1", 128, 16, 1, False, 2)])
PFLD_FEATURES = "block3_5"  # the 28 x 28 x 64 map the auxiliary net reads
# The multi-scale branch: S1 = conv6_1 (14 x 14 x 16), S2 = conv7 (7 x 7 x 32), S3 = conv8 (1 x 1 x 128).
PFLD_MULTI_SCALE_CHANNELS = 16 + 32 + 128

# (conv, BatchNorm, weight shape, stride, padding) of the auxiliary net's conv_bn blocks (Table 2),
# each followed by ReLU; conv4's 7x7 keeps conv_bn's padding of 1, so it outputs 3 x 3.
PFLD_AUXILIARY_CONVS = [(f"conv{i}.0", f"conv{i}.1", shape, stride, 1) for i, shape, stride in (
    (1, (128, 64, 3, 3), 2), (2, (128, 128, 3, 3), 1), (3, (32, 128, 3, 3), 2), (4, (128, 32, 7, 7), 1))]


def _batchnorm_shapes(module, channels):
    return {f"{module}.{p}": (channels,) for p in _BATCHNORM_PARAMETERS}


def pfld_backbone_shapes(points):
    """Every key of PFLDInference's state dict for `points` landmarks with its shape (bn8 aside)."""
    shapes = {"conv1.weight": (64, 3, 3, 3), **_batchnorm_shapes("bn1", 64),
              "conv2.weight": (64, 64, 3, 3), **_batchnorm_shapes("bn2", 64)}
    for block in PFLD_BOTTLENECKS:
        for conv, batchnorm, shape, *_ in block.convs():
            shapes[f"{conv}.weight"] = shape
            shapes.update(_batchnorm_shapes(batchnorm, shape[0]))
    shapes.update({"conv7.0.weight": (32, 16, 3, 3), **_batchnorm_shapes("conv7.1", 32),
                   "conv8.weight": (128, 32, 7, 7), "conv8.bias": (128,),
                   "fc.weight": (2 * points, PFLD_MULTI_SCALE_CHANNELS), "fc.bias": (2 * points,)})
    return shapes


def pfld_auxiliary_shapes():
    """Every key of AuxiliaryNet's state dict with its shape."""
    shapes = {}
    for conv, batchnorm, shape, _, _ in PFLD_AUXILIARY_CONVS:
        shapes[f"{conv}.weight"] = shape
        shapes.update(_batchnorm_shapes(batchnorm, shape[0]))
    shapes.update({"fc1.weight": (32, 128), "fc1.bias": (32,), "fc2.weight": (3, 32), "fc2.bias": (3,)})
    return shapes


def _pfld_batch_counters(shapes):
    return {key[:-len("running_mean")] + "num_batches_tracked" for key in shapes if key.endswith(".running_mean")}


_PFLD_UNUSED_KEYS = frozenset(f"bn8.{p}" for p in _BATCHNORM_PARAMETERS + ("num_batches_tracked",))


class _StateDictGraph(GraphBuilder):
    """A graph whose layers come from a state dict: each op is named after its module (under
    `prefix`), writes a value of that name, and has its BatchNorm folded in."""

    def __init__(self, state_dict, input_name, input_shape):
        super().__init__()
        self.state_dict = state_dict
        self.define_value(input_name, input_shape)

    def conv(self, module, source, stride, padding, batchnorm=None, groups=1, activated=True, prefix=""):
        weight = self.state_dict[f"{prefix}{module}.weight"]
        if batchnorm:
            weight, bias = fold_batchnorm(weight, *(self.state_dict[f"{prefix}{batchnorm}.{p}"]
                                                    for p in _BATCHNORM_PARAMETERS))
        else:
            bias = self.state_dict[f"{prefix}{module}.bias"]
        name, kernel = prefix + module, weight.shape[2]
        h, w, _ = self.values[source]
        shape = [window_count(h, kernel, stride, padding, padding), window_count(w, kernel, stride, padding, padding),
                 weight.shape[0]]
        self.add_op("conv", name, name, shape, input=source, weight=self.tensor(name, "weight", weight),
                    bias=self.tensor(name, "bias", bias), groups=groups, kernel=[kernel, kernel],
                    stride=[stride, stride], pads=[padding] * 4, dilation=[1, 1],
                    activation=RELU if activated else NO_ACTIVATION)
        return name

    def dense(self, module, source, prefix=""):
        name = prefix + module
        weight = self.state_dict[f"{name}.weight"]
        self.add_op("dense", name, name, [1, 1, weight.shape[0]], input=source,
                    weight=self.tensor(name, "weight", weight),
                    bias=self.tensor(name, "bias", self.state_dict[f"{name}.bias"]), activation=NO_ACTIVATION)
        return name

    def pool(self, op, name, source, kernel):
        """A pool whose windows tile `source` (PyTorch's AvgPool2d(k) / MaxPool2d(k): stride k)."""
        h, w, c = self.values[source]
        fields = {"count_include_pad": False} if op == "avg_pool" else {}
        self.add_op(op, name, name, [h // kernel, w // kernel, c], input=source, kernel=[kernel, kernel],
                    stride=[kernel, kernel], pads=[0, 0, 0, 0], **fields)
        return name

    def add(self, name, a, b):
        self.add_op("add", name, name, self.values[a], inputs=[a, b])
        return name

    def concat_channels(self, name, sources):
        h, w, _ = self.values[sources[0]]
        self.add_op("concat", name, name, [h, w, sum(self.values[s][2] for s in sources)], inputs=list(sources),
                    axis="channels")
        return name


def _pfld_backbone(graph, source, prefix):
    """The backbone's ops from `source`; returns (the 28 x 28 features, the landmarks)."""
    x = graph.conv("conv1", source, 2, 1, batchnorm="bn1", prefix=prefix)
    x = graph.conv("conv2", x, 1, 1, batchnorm="bn2", prefix=prefix)
    features = None
    for block in PFLD_BOTTLENECKS:
        block_input = x
        for conv, batchnorm, shape, stride, groups, activated in block.convs():
            x = graph.conv(conv, x, stride, (shape[2] - 1) // 2, batchnorm, groups, activated, prefix=prefix)
        if block.residual:
            x = graph.add(prefix + block.module, block_input, x)
        if block.module == PFLD_FEATURES:
            features = x
    s1 = x
    s2 = graph.conv("conv7.0", s1, 2, 1, batchnorm="conv7.1", prefix=prefix)
    s3 = graph.conv("conv8", s2, 1, 0, prefix=prefix)
    multi_scale = graph.concat_channels(prefix + "multi_scale", [graph.pool("avg_pool", prefix + "avg_pool1", s1, 14),
                                                                  graph.pool("avg_pool", prefix + "avg_pool2", s2, 7), s3])
    return features, graph.dense("fc", multi_scale, prefix=prefix)


def _pfld_auxiliary(graph, features, prefix):
    """The auxiliary net's ops on the backbone's features; returns the angles."""
    x = features
    for conv, batchnorm, _, stride, padding in PFLD_AUXILIARY_CONVS:
        x = graph.conv(conv, x, stride, padding, batchnorm, prefix=prefix)
    x = graph.pool("max_pool", prefix + "max_pool1", x, 3)
    return graph.dense("fc2", graph.dense("fc1", x, prefix=prefix), prefix=prefix)


@dataclass(frozen=True)
class PfldRecipe:
    name: str
    summary: str
    angles: bool  # the auxiliary net's head angles as a second output

    inputs = ("CHECKPOINT.pth",)

    def convert(self, checkpoints):
        """(metadata, tensors) for the facet file, from a PFLD-pytorch training checkpoint or (without
        angles) a backbone's state dict."""
        (checkpoint,) = checkpoints
        state_dict = checkpoint.state_dict
        training = any(key.startswith(PFLD_BACKBONE_ENTRY + ".") for key in state_dict)
        backbone_prefix = PFLD_BACKBONE_ENTRY + "." if training else ""
        auxiliary_prefix = PFLD_AUXILIARY_ENTRY + "."
        if self.angles and not training:
            raise RecipeError(f"checkpoint {checkpoint.name} is not a {self.name} checkpoint: it holds no auxiliary "
                              f"net (a training checkpoint has '{PFLD_BACKBONE_ENTRY}' and '{PFLD_AUXILIARY_ENTRY}'); "
                              "recipe pfld converts the landmarks alone")
        points = self._points(checkpoint, backbone_prefix)
        backbone = pfld_backbone_shapes(points)
        expected = {backbone_prefix + key: shape for key, shape in backbone.items()}
        optional = {backbone_prefix + key for key in _PFLD_UNUSED_KEYS | _pfld_batch_counters(backbone)}
        auxiliary = pfld_auxiliary_shapes()
        auxiliary_counters = {auxiliary_prefix + key for key in _pfld_batch_counters(auxiliary)}
        if self.angles:
            expected.update((auxiliary_prefix + key, shape) for key, shape in auxiliary.items())
            optional |= auxiliary_counters
        elif training:  # the auxiliary net is not converted
            optional |= {auxiliary_prefix + key for key in auxiliary} | auxiliary_counters
        check_state_dict(checkpoint, self.name, expected, frozenset(optional))

        graph = _StateDictGraph(state_dict, "input", [PFLD_INPUT_SIZE, PFLD_INPUT_SIZE, 3])
        features, landmarks = _pfld_backbone(graph, "input", backbone_prefix)
        outputs = [{"name": "landmarks", "value": landmarks, "onnx_shape": [1, 2 * points], "order": "hwc"}]
        if self.angles:
            angles = _pfld_auxiliary(graph, features, auxiliary_prefix)
            outputs.append({"name": "angles", "value": angles, "onnx_shape": [1, 3], "order": "hwc"})
        metadata = {
            "model": "graph",
            "input": PFLD_INPUT,
            "graph": graph.graph_metadata("input", [1, 3, PFLD_INPUT_SIZE, PFLD_INPUT_SIZE], outputs),
        }
        return metadata, graph.tensors

    def _points(self, checkpoint, prefix):
        """The landmark count, from the shape of the last layer's weight."""
        weight = checkpoint.state_dict.get(prefix + "fc.weight")
        outputs = weight.shape[0] if weight is not None and weight.ndim == 2 else None
        if outputs not in [2 * points for points in PFLD_POINT_COUNTS]:
            found = "missing" if weight is None else f"of shape {_format_shape(weight.shape)}"
            raise RecipeError(f"checkpoint {checkpoint.name} is not a {self.name} checkpoint: key {prefix}fc.weight is "
                              f"{found}, expected ({' or '.join(str(2 * p) for p in PFLD_POINT_COUNTS)},"
                              f"{PFLD_MULTI_SCALE_CHANNELS}) for 98 or 68 landmarks")
        return outputs // 2


RECIPES = {recipe.name: recipe for recipe in (
    RetinaFaceRecipe(
        "retinaface-mnet025",
        "the default 2019 RetinaFace-mnet0.25 (Pytorch_Retinaface Final_Retinaface.pth): "
        "ReLU, anchors 16/32 64/128 256/512",
        conv_activation=RELU, min_sizes=[[16, 32], [64, 128], [256, 512]]),
    RetinaFaceRecipe(
        "retinaface-mnet025-official",
        "the official RetinaFace-mnet0.25 with published WIDER FACE results: "
        "LeakyReLU(0.1), anchors 16/32 64/128 256/512",
        conv_activation=LEAKY_RELU_0_1, min_sizes=[[16, 32], [64, 128], [256, 512]]),
    RetinaFaceRecipe(
        "retinaface-mnet025-1mb",
        "Face-Detector-1MB-with-landmark mobilenet0.25_Final.pth, retrained for small faces: "
        "ReLU, anchors 10/20 32/64 128/256",
        conv_activation=RELU, min_sizes=[[10, 20], [32, 64], [128, 256]]),
    RetinaFaceRecipe(
        "retinaface-mnet025-dcn",
        "RetinaFace-mnet0.25 with deformable context modules, the paper's full model (no public "
        "checkpoint: for your own; keys: the upstream ones plus sshN.<conv>.0.conv_offset): "
        "LeakyReLU(0.1), anchors 16/32 64/128 256/512",
        conv_activation=LEAKY_RELU_0_1, min_sizes=[[16, 32], [64, 128], [256, 512]], context="deformable"),
    MtcnnRecipe(),
    MeshDecoderRecipe(),
    PfldRecipe(
        "pfld",
        "PFLD (PFLD-pytorch: a training checkpoint {'plfd_backbone', 'auxiliarynet'} or the backbone's "
        "state dict), 98 or 68 landmarks: a graph with the output 'landmarks'",
        angles=False),
    PfldRecipe(
        "pfld-angles",
        "PFLD with its auxiliary net (a PFLD-pytorch training checkpoint): a graph with the outputs "
        "'landmarks' and 'angles' (three head angles, as trained: pitch, yaw, roll in degrees upstream)",
        angles=True),
)}
