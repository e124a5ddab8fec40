#!/usr/bin/env python3
"""Generate the deformable-convolution fixtures: torchvision.ops.deform_conv2d's outputs on random
inputs, offsets, masks and weights over a grid of geometries. Needs PyTorch and torchvision (the
Debian python3-torchvision); run once and commit the output, the tests then run without them:

    /usr/bin/python3 tests/deform/gen_fixtures.py

Writes tests/deform/fixtures/cases.json (each case's geometry) and, per case, float32 .npy files
in torchvision's layouts: <case>.input [1, C, H, W], <case>.offset [1, 2 * G * kh * kw, Ho, Wo],
<case>.mask [1, G * kh * kw, Ho, Wo] (DCNv2 cases), <case>.weight [Co, C / groups, kh, kw],
<case>.bias [Co] (cases with a bias) and <case>.output [1, Co, Ho, Wo].

Offsets are drawn per sample point, independently for dy and dx, from a mixture that covers what
an implementation can get wrong: continuous values, points exactly on pixel centres and halfway
between them, points far outside the image (up to 1e6 away), points exactly on the edges of the
sampling domain (-1, 0, size - 1 and size: the first and last are outside and must sample zero)
and points just inside those edges.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from torchvision.ops import deform_conv2d

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@dataclass(frozen=True)
class Case:
    name: str
    in_channels: int
    out_channels: int
    height: int
    width: int
    kernel: tuple = (3, 3)
    stride: tuple = (1, 1)
    padding: tuple = (1, 1)
    dilation: tuple = (1, 1)
    groups: int = 1
    offset_groups: int = 1
    mask: bool = True
    bias: bool = True

    def out_size(self):
        return tuple((size + 2 * p - (d * (k - 1) + 1)) // s + 1 for size, k, s, p, d in zip(
            (self.height, self.width), self.kernel, self.stride, self.padding, self.dilation))


CASES = [
    Case("v1_basic", 3, 5, 7, 9, mask=False),
    Case("v2_basic", 8, 16, 9, 11),
    Case("v2_stride2", 5, 7, 10, 13, stride=(2, 2)),
    Case("v2_dilation2", 4, 6, 8, 8, padding=(2, 2), dilation=(2, 2)),
    Case("v2_rectangular", 6, 5, 9, 7, kernel=(2, 3), stride=(2, 1), padding=(0, 1), dilation=(1, 2)),
    Case("v2_kernel1x1", 7, 9, 5, 6, kernel=(1, 1), padding=(0, 0)),
    Case("v2_kernel5x5_stride3", 9, 12, 13, 11, kernel=(5, 5), stride=(3, 3), padding=(2, 2), offset_groups=3),
    Case("v2_padding3", 4, 5, 5, 5, padding=(3, 3)),
    Case("v2_offset_groups2", 6, 4, 7, 8, offset_groups=2),
    Case("v1_groups2_no_bias", 8, 6, 6, 9, groups=2, mask=False, bias=False),
    Case("v2_groups2_offset_groups4", 8, 10, 7, 7, groups=2, offset_groups=4),
    Case("v2_odd_channels", 17, 33, 6, 7),
    Case("v2_retinaface_64to32", 64, 32, 15, 20),
    Case("v2_retinaface_16to16", 16, 16, 15, 20),
]


def sample_offsets(rng, bases, size, shape):
    """Offsets of shape `shape` whose sample points base + offset follow the mixture described in
    the module docstring; `bases` (broadcastable to `shape`) are the undisplaced points and `size`
    the image size along this axis. Every chosen point is exactly representable in float32, so
    base + offset computed in float32 (as torchvision does) lands exactly on it."""
    kind = rng.choice(6, size=shape, p=[0.4, 0.12, 0.1, 0.1, 0.16, 0.12])
    continuous = rng.uniform(-4, 4, shape)
    pixel_centre = bases + rng.integers(-3, 4, shape)
    halfway = bases + rng.integers(-3, 4, shape) + 0.5
    far = rng.choice([-1, 1], shape) * np.where(rng.random(shape) < 0.5, rng.uniform(size + 2, 1000, shape), 1e6)
    domain_edge = rng.choice(np.array([-1, 0, size - 1, size]), shape)
    just_inside = rng.choice(np.array([-1 + 2.0**-8, 2.0**-8, size - 1 - 2.0**-8, size - 2.0**-8]), shape)
    points = np.choose(kind, [bases + continuous, pixel_centre, halfway, far, domain_edge, just_inside])
    return (points - bases).astype(np.float32)


def make_offsets(rng, case):
    kh, kw = case.kernel
    out_h, out_w = case.out_size()
    offsets = np.empty((1, case.offset_groups, kh * kw, 2, out_h, out_w), np.float32)
    for i in range(kh):
        for j in range(kw):
            base_y = (np.arange(out_h) * case.stride[0] - case.padding[0] + i * case.dilation[0]).reshape(1, -1, 1)
            base_x = (np.arange(out_w) * case.stride[1] - case.padding[1] + j * case.dilation[1]).reshape(1, 1, -1)
            shape = (case.offset_groups, out_h, out_w)
            offsets[0, :, i * kw + j, 0] = sample_offsets(rng, base_y, case.height, shape)
            offsets[0, :, i * kw + j, 1] = sample_offsets(rng, base_x, case.width, shape)
    # (group, tap, dy/dx) -> channel 2 * (group * taps + tap) + (0 for dy, 1 for dx), torchvision's order.
    return offsets.reshape(1, -1, out_h, out_w)


def write_case(rng, case):
    kh, kw = case.kernel
    out_h, out_w = case.out_size()
    tensors = {
        "input": rng.uniform(-1, 1, (1, case.in_channels, case.height, case.width)).astype(np.float32),
        "offset": make_offsets(rng, case),
        "weight": rng.uniform(-1, 1, (case.out_channels, case.in_channels // case.groups, kh, kw)).astype(np.float32),
    }
    if case.mask:
        # Mostly in [0, 1] as a sigmoid gives, some outside: the kernel must not assume a range.
        tensors["mask"] = rng.uniform(-0.25, 1.25, (1, case.offset_groups * kh * kw, out_h, out_w)).astype(np.float32)
    if case.bias:
        tensors["bias"] = rng.uniform(-1, 1, case.out_channels).astype(np.float32)
    as_torch = {name: torch.from_numpy(value) for name, value in tensors.items()}
    with torch.no_grad():
        output = deform_conv2d(as_torch["input"], as_torch["offset"], as_torch["weight"], as_torch.get("bias"),
                               stride=case.stride, padding=case.padding, dilation=case.dilation,
                               mask=as_torch.get("mask"))
    tensors["output"] = output.numpy()
    assert tensors["output"].shape == (1, case.out_channels, out_h, out_w)
    for name, value in tensors.items():
        np.save(FIXTURES / f"{case.name}.{name}.npy", value)
    return {
        "name": case.name, "in_channels": case.in_channels, "out_channels": case.out_channels,
        "height": case.height, "width": case.width, "kernel": list(case.kernel), "stride": list(case.stride),
        "padding": list(case.padding), "dilation": list(case.dilation), "groups": case.groups,
        "offset_groups": case.offset_groups, "mask": case.mask, "bias": case.bias,
    }


def main():
    FIXTURES.mkdir(exist_ok=True)
    rng = np.random.default_rng(7)
    cases = [write_case(rng, case) for case in CASES]
    manifest = {"generator": "tests/deform/gen_fixtures.py", "torch": torch.__version__,
                "torchvision": torchvision.__version__, "cases": cases}
    (FIXTURES / "cases.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(path.stat().st_size for path in FIXTURES.iterdir())
    print(f"{len(cases)} cases, {total / 1e6:.2f} MB in {FIXTURES}")


if __name__ == "__main__":
    main()
