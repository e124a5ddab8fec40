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

BATCHNORM_EPS = 1e-5  # nn.BatchNorm2d's default; a state dict does not record it

RELU = {"kind": "relu"}
LEAKY_RELU_0_1 = {"kind": "leaky_relu", "slope": 0.1}
NO_ACTIVATION = {"kind": "none"}


class RecipeError(ValueError):
    """A checkpoint that does not fit the recipe; the message names the checkpoint and key."""


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
)}
