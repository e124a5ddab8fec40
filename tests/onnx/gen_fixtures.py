#!/usr/bin/python3
"""ONNX fixtures for the graph executor's tests, exported from PyTorch. Needs torch (Debian's
/usr/bin/python3); run once and commit the outputs, the tests then run without torch:

    /usr/bin/python3 tests/onnx/gen_fixtures.py

Writes into tests/onnx/:
  ops_zoo.onnx, ops_zoo_input.npy, ops_zoo_{chw,vector,rows}.npy
      A small random network using every operator onnx2facet converts, some in the forms that
      take the converter's other paths (BatchNorm folded into a conv, a ReLU6 that stays a clip,
      a grouped conv that is not depthwise, a dilated one, max-pooling in ceil mode, average
      pooling with padding, a squeeze-excite broadcast multiply, a nearest upsample, a channel
      concatenation that must copy, a flatten in ONNX's channel-major order, MatMul by a
      constant, a softmax over channels and detection-head style rows), with PyTorch's outputs
      on a random input. Opset 13.
  retinaface_random.onnx
      RetinaFace-mnet0.25 (bench/peers/retinaface_torch.py, MODELS.md section 1) with the
      official checkpoint's activations (LeakyReLU 0.1), randomly initialised, on a 135 x 201
      input (odd sizes: the FPN's nearest upsampling rounds), with upstream's outputs (box
      deltas, softmax of the class logits, landmark deltas). Exported in PRESERVE mode, so the
      BatchNorms stay and every initializer keeps its state-dict name: the test converts the same
      weights both ways, through onnx2facet into a graph and through the retinaface-mnet025-official
      recipe into the hand-built model, and compares the two. Opset 11.

Random weights alone would make activations vanish or explode within a few layers, so BatchNorm
statistics are calibrated: random gammas and betas, then running statistics measured in training
mode on a few inputs, as training would leave them.
"""

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "bench" / "peers"))
import retinaface_torch  # noqa: E402  (needs the path above)

RETINAFACE_SIZE = (135, 201)  # height, width
ZOO_SIZE = (23, 29)


def calibrate_batchnorm(model, inputs, generator):
    """Random affine parameters, then running statistics of `inputs` (momentum 1: the last batch)."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5, generator=generator)
            module.bias.data.uniform_(-0.2, 0.2, generator=generator)
            module.momentum = None  # cumulative average over the calibration batches
            module.reset_running_stats()
    model.train()
    with torch.no_grad():
        for x in inputs:
            model(x)
    model.eval()


class OpsZoo(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(8)
        self.stem_act = nn.PReLU(8)
        self.grouped = nn.Conv2d(8, 12, 3, 2, 1, groups=4)
        self.pool = nn.MaxPool2d(3, 2, 1, ceil_mode=True)
        self.dilated = nn.Conv2d(12, 12, 3, 1, 2, dilation=2)
        self.pointwise = nn.Conv2d(12, 12, 1)
        self.offset = nn.Parameter(torch.randn(1, 12, 1, 1))
        self.squeeze = nn.Linear(12, 4)
        self.excite = nn.Linear(4, 12)
        self.strided = nn.Conv2d(12, 6, 1, 2)
        self.avg = nn.AvgPool2d(3, 2, 1, count_include_pad=False)
        self.side = nn.Conv2d(12, 5, 3, 2, 1)
        self.head = nn.Linear(11 * 4 * 4, 10)
        self.project = nn.Parameter(torch.randn(10, 7) * 0.3)
        self.rows = nn.Conv2d(11, 6, 1)

    def forward(self, x):
        x = self.stem_act(self.stem_bn(self.stem(x)))                 # 8 x 23 x 29
        x = F.relu6(self.grouped(x))                                  # 12 x 12 x 15, Clip(0, 6)
        x = self.pool(x)                                              # 12 x 7 x 8
        y = torch.sigmoid(self.dilated(x)) * self.pointwise(x) + self.offset
        s = torch.sigmoid(self.excite(F.leaky_relu(self.squeeze(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1)), 0.2)))
        y = y * s.reshape(1, 12, 1, 1)
        up = F.interpolate(y, scale_factor=2.0, mode="nearest")       # 12 x 14 x 16
        a = self.strided(up)                                          # 6 x 7 x 8
        b = self.side(self.avg(up))                                   # 5 x 4 x 4 after avg 12 x 7 x 8
        z = torch.cat([F.interpolate(a, size=(4, 4), mode="nearest"), b], dim=1)  # 11 x 4 x 4
        vector = torch.flatten(z, 1)
        vector = torch.matmul(self.head(vector), self.project)        # [1, 7]
        rows = self.rows(z).permute(0, 2, 3, 1).reshape(1, -1, 3)    # [1, 32, 3]
        return torch.softmax(z, dim=1), vector, torch.softmax(rows, dim=-1)


class UpstreamRetinaFace(retinaface_torch.RetinaFace):
    """The upstream network's test-time outputs: (loc, softmax of the class logits, landmarks)."""

    def forward(self, x):
        o1, o2, o3 = self.fpn(*self.body(x))
        features = (self.ssh1(o1), self.ssh2(o2), self.ssh3(o3))
        loc = torch.cat([head(f) for head, f in zip(self.BboxHead, features)], dim=1)
        logits = torch.cat([head(f) for head, f in zip(self.ClassHead, features)], dim=1)
        landms = torch.cat([head(f) for head, f in zip(self.LandmarkHead, features)], dim=1)
        return loc, F.softmax(logits, dim=-1), landms


def smooth_noise(generator, shape, scale):
    """Images with structure at several scales, so activations look like a photo's, not white noise."""
    out = torch.zeros(shape)
    for size in (4, 16, shape[-1]):
        coarse = torch.randn(shape[0], shape[1], max(1, size * shape[-2] // shape[-1]), size, generator=generator)
        out += F.interpolate(coarse, size=shape[-2:], mode="bilinear", align_corners=False)
    return out * scale


def export(model, x, path, opset, names, training):
    torch.onnx.export(model, x, str(path), opset_version=opset, input_names=["input"], output_names=names,
                      training=training, do_constant_folding=training == torch.onnx.TrainingMode.EVAL)


def main():
    generator = torch.Generator().manual_seed(2024)
    torch.manual_seed(2024)  # nn.Conv2d's default initialisation

    zoo = OpsZoo()
    calibrate_batchnorm(zoo, [smooth_noise(generator, (1, 3, *ZOO_SIZE), 1.0) for _ in range(4)], generator)
    x = smooth_noise(generator, (1, 3, *ZOO_SIZE), 1.0)
    export(zoo, x, HERE / "ops_zoo.onnx", 13, ["chw", "vector", "rows"], torch.onnx.TrainingMode.EVAL)
    np.save(HERE / "ops_zoo_input.npy", x.numpy())
    with torch.no_grad():
        for name, out in zip(("chw", "vector", "rows"), zoo(x)):
            np.save(HERE / f"ops_zoo_{name}.npy", out.numpy())

    retinaface = UpstreamRetinaFace(retinaface_torch.OFFICIAL_LEAKY_SLOPE)
    images = [smooth_noise(generator, (1, 3, *RETINAFACE_SIZE), 60.0) for _ in range(4)]
    calibrate_batchnorm(retinaface, images, generator)
    export(retinaface, images[0], HERE / "retinaface_random.onnx", 11, ["loc", "conf", "landms"],
           torch.onnx.TrainingMode.PRESERVE)
    print(f"wrote {HERE}/ops_zoo.onnx, retinaface_random.onnx and the zoo's input and outputs")


if __name__ == "__main__":
    main()
