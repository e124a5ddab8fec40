#!/usr/bin/env python3
"""The deformable RetinaFace's PyTorch reference: RetinaFace-mnet0.25 written from MODELS.md
section 1, with every 3x3 conv of its context modules a modulated deformable conv (section 3; the
paper's full model), randomly initialised. Needs PyTorch and torchvision; run once and commit the
output, the C++ test (tests/test_deform.cpp) then runs without them:

    /usr/bin/python3 tests/deform/retinaface_dcn_reference.py

Writes tests/deform/retinaface_dcn/:
  state_dict.pth   the module's state dict, torch.save's zip layout: the input of the converter's
                   retinaface-mnet025-dcn recipe (CMake converts it into the build directory)
  input.npy        a 64x96 RGB test image, float32 [64, 96, 3] holding 0..255 integers
  loc.npy, conf.npy, landms.npy
                   the raw head outputs on it, in prior order: box deltas [priors, 4], face
                   probability (softmax index 1) [priors], landmark deltas [priors, 10]

The deformable layer is mmcv's ModulatedDeformConv2dPack: a plain 3x3 conv with bias,
`<conv>.conv_offset`, predicts 27 channels per pixel; the first 18 are the (dy, dx) offsets of the
9 taps in torchvision's order, the last 9 pass through a sigmoid to give the mask. The deformable
conv itself has no bias and is followed by BatchNorm, like the plain conv it replaces, so the
state dict has the upstream keys plus the `conv_offset` ones. Activations are those of the
official checkpoint (LeakyReLU 0.1, MODELS.md section 1).

Random weights alone would make the activations vanish or explode within a few layers, so the
BatchNorm statistics are calibrated: random gammas and betas, then running means and variances
measured in training mode on a few images, as training would leave them. The offset convs are
scaled so that offsets spread over a few pixels (many samples land between pixels, some outside
the map) and masks over (0, 1).
"""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

OUT = Path(__file__).resolve().parent / "retinaface_dcn"
LEAKY_SLOPE = 0.1
MEAN_BGR = (104.0, 117.0, 123.0)
IMAGE_HEIGHT, IMAGE_WIDTH = 64, 96
ANCHORS = 2


def conv_bn(inp, oup, stride, kernel=3, activated=True):
    layers = [nn.Conv2d(inp, oup, kernel, stride, (kernel - 1) // 2, bias=False), nn.BatchNorm2d(oup)]
    if activated:
        layers.append(nn.LeakyReLU(LEAKY_SLOPE))
    return nn.Sequential(*layers)


def conv_dw(inp, oup, stride):
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp), nn.LeakyReLU(LEAKY_SLOPE),
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup), nn.LeakyReLU(LEAKY_SLOPE))


class MobileNetV1(nn.Module):
    def __init__(self):
        super().__init__()
        self.stage1 = nn.Sequential(conv_bn(3, 8, 2), conv_dw(8, 16, 1), conv_dw(16, 32, 2), conv_dw(32, 32, 1),
                                    conv_dw(32, 64, 2), conv_dw(64, 64, 1))
        self.stage2 = nn.Sequential(conv_dw(64, 128, 2), *[conv_dw(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(conv_dw(128, 256, 2), conv_dw(256, 256, 1))

    def forward(self, x):
        c1 = self.stage1(x)
        c2 = self.stage2(c1)
        return c1, c2, self.stage3(c2)


class FPN(nn.Module):
    def __init__(self):
        super().__init__()
        self.output1 = conv_bn(64, 64, 1, kernel=1)
        self.output2 = conv_bn(128, 64, 1, kernel=1)
        self.output3 = conv_bn(256, 64, 1, kernel=1)
        self.merge1 = conv_bn(64, 64, 1)
        self.merge2 = conv_bn(64, 64, 1)

    def forward(self, levels):
        o1, o2, o3 = self.output1(levels[0]), self.output2(levels[1]), self.output3(levels[2])
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[2:], mode="nearest"))
        return o1, o2, o3


class ModulatedDeformConv3x3(nn.Module):
    """DCNv2, stride 1, padding 1, no bias: offsets and mask from `conv_offset` on the same input."""

    def __init__(self, inp, oup):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(oup, inp, 3, 3))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)  # nn.Conv2d's default
        self.conv_offset = nn.Conv2d(inp, 3 * 9, 3, 1, 1)

    def forward(self, x):
        predicted = self.conv_offset(x)
        offset, mask = predicted[:, :18], torch.sigmoid(predicted[:, 18:])
        return deform_conv2d(x, offset, self.weight, None, padding=(1, 1), mask=mask)


def deform_bn(inp, oup, activated):
    layers = [ModulatedDeformConv3x3(inp, oup), nn.BatchNorm2d(oup)]
    if activated:
        layers.append(nn.LeakyReLU(LEAKY_SLOPE))
    return nn.Sequential(*layers)


class DeformableContextModule(nn.Module):
    """The SSH context module (MODELS.md section 1) with its five 3x3 convs deformable."""

    def __init__(self):
        super().__init__()
        self.conv3X3 = deform_bn(64, 32, activated=False)
        self.conv5X5_1 = deform_bn(64, 16, activated=True)
        self.conv5X5_2 = deform_bn(16, 16, activated=False)
        self.conv7X7_2 = deform_bn(16, 16, activated=True)
        self.conv7x7_3 = deform_bn(16, 16, activated=False)

    def forward(self, x):
        t = self.conv5X5_1(x)
        return F.relu(torch.cat([self.conv3X3(x), self.conv5X5_2(t), self.conv7x7_3(self.conv7X7_2(t))], dim=1))


class Head(nn.Module):
    def __init__(self, values_per_anchor):
        super().__init__()
        self.values = values_per_anchor
        self.conv1x1 = nn.Conv2d(64, ANCHORS * values_per_anchor, 1)

    def forward(self, x):  # NHWC order: per row, column, anchor
        return self.conv1x1(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.values)


class DeformableRetinaFace(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = MobileNetV1()
        self.fpn = FPN()
        self.ssh1, self.ssh2, self.ssh3 = DeformableContextModule(), DeformableContextModule(), DeformableContextModule()
        self.ClassHead = nn.ModuleList(Head(2) for _ in range(3))
        self.BboxHead = nn.ModuleList(Head(4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(Head(10) for _ in range(3))

    def forward(self, x):
        features = [ssh(f) for ssh, f in zip((self.ssh1, self.ssh2, self.ssh3), self.fpn(self.body(x)))]
        loc = torch.cat([head(f) for head, f in zip(self.BboxHead, features)], dim=1)
        conf = torch.cat([head(f) for head, f in zip(self.ClassHead, features)], dim=1)
        landms = torch.cat([head(f) for head, f in zip(self.LandmarkHead, features)], dim=1)
        return loc, F.softmax(conf, dim=-1), landms


def network_input(rgb):
    """[H, W, 3] RGB 0..255 -> [1, 3, H, W] BGR minus the mean (MODELS.md section 1)."""
    bgr = torch.from_numpy(np.ascontiguousarray(rgb[:, :, ::-1])).float() - torch.tensor(MEAN_BGR)
    return bgr.permute(2, 0, 1).unsqueeze(0)


def random_image(generator):
    """Smooth blobs plus noise, so that features vary over the image as they do on photos."""
    coarse = torch.rand(1, 3, IMAGE_HEIGHT // 8, IMAGE_WIDTH // 8, generator=generator) * 255
    smooth = F.interpolate(coarse, size=(IMAGE_HEIGHT, IMAGE_WIDTH), mode="bilinear", align_corners=False)
    noisy = smooth + torch.randn(1, 3, IMAGE_HEIGHT, IMAGE_WIDTH, generator=generator) * 20
    return noisy.clamp(0, 255).round()[0].permute(1, 2, 0).numpy().astype(np.float32)


def initialise(model, generator):
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(module.num_features, generator=generator) * 0.4 - 0.2)
                module.momentum = None  # running statistics: the plain average over calibration batches
            elif isinstance(module, ModulatedDeformConv3x3):
                offset = module.conv_offset
                fan_in = offset.in_channels * 9
                # Inputs after BatchNorm and activation have a mean square of about 0.5: the weights make
                # the offsets and mask logits vary by about 0.5 with the input, the bias spreads them
                # over +-3 (offsets: a few pixels; mask logits: sigmoids from 0.05 to 0.95). A larger
                # input-dependent part would make each deformable layer amplify float rounding
                # several times over, which trained offset convs do not do.
                offset.weight.copy_(torch.randn(offset.weight.shape, generator=generator) * 0.5 / (0.5 * fan_in) ** 0.5)
                offset.bias.copy_(torch.rand(offset.bias.shape, generator=generator) * 6 - 3)


def calibrate_batchnorm(model, images):
    model.train()
    with torch.no_grad():
        for image in images:
            model(network_input(image))
    model.eval()


def main():
    generator = torch.Generator().manual_seed(2024)
    torch.manual_seed(2024)  # nn.Conv2d's default initialisation
    model = DeformableRetinaFace()
    initialise(model, generator)
    test_image = random_image(generator)
    calibrate_batchnorm(model, [random_image(generator) for _ in range(7)] + [test_image])

    offsets = []
    hook = model.ssh1.conv5X5_1[0].conv_offset.register_forward_hook(lambda m, i, o: offsets.append(o))
    with torch.no_grad():
        loc, conf, landms = model(network_input(test_image))
        exact = model.double()(network_input(test_image).double())
    hook.remove()
    model.float()
    predicted = offsets[0][0]
    print(f"ssh1.conv5X5_1 offsets: std {predicted[:18].std():.2f}, |max| {predicted[:18].abs().max():.2f}; "
          f"mask mean {torch.sigmoid(predicted[18:]).mean():.2f}")
    drift = max((a.float() - b).abs().max().item() for a, b in zip(exact, (loc, conf, landms)))
    print(f"outputs: loc |max| {loc.abs().max():.2f}, landms |max| {landms.abs().max():.2f}, "
          f"conf in [{conf[..., 1].min():.3f}, {conf[..., 1].max():.3f}]; float32 vs float64 torch: {drift:.2e}")

    OUT.mkdir(exist_ok=True)
    torch.save(model.state_dict(), OUT / "state_dict.pth")
    np.save(OUT / "input.npy", test_image)
    np.save(OUT / "loc.npy", loc[0].numpy())
    np.save(OUT / "conf.npy", conf[0, :, 1].numpy())
    np.save(OUT / "landms.npy", landms[0].numpy())
    for path in sorted(OUT.iterdir()):
        print(f"{path.stat().st_size:9d}  {path.relative_to(OUT.parent)}")


if __name__ == "__main__":
    main()
