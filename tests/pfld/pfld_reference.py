#!/usr/bin/env python3
"""PFLD's PyTorch reference for the parity test: PFLD (Guo et al. 2019, "PFLD: A Practical Facial
Landmark Detector", Tables 1 and 2) written from the paper, with the module names and the forward
pass of the PyTorch layout users' checkpoints come in (PFLD-pytorch: PFLDInference + AuxiliaryNet),
randomly initialised. Needs PyTorch; run once, its output is committed (tests/pfld/reference/),
so neither the build nor CI needs PyTorch:

    /usr/bin/python3 tests/pfld/pfld_reference.py tests/pfld/reference

Writes, into OUT_DIR:
  pfld98_training.pth  a 98-point PFLD as PFLD-pytorch's train.py saves it (torch.save's zip
                       layout): {"epoch": 7, "plfd_backbone": state dict, "auxiliarynet": state dict}
  pfld68.pth           a 68-point backbone's state dict alone (no auxiliary net): the 98-point
                       backbone's weights with a 136-output fc of its own
  image.npy            a 112 x 112 RGB test image, float32 [112, 112, 3] holding 0..255 integers
  pfld98_landmarks.npy, pfld98_angles.npy, pfld68_landmarks.npy
                       each network's outputs on it: [196] / [136] landmark values (x, y pairs
                       in [0, 1] of the crop once trained), [3] angles; float32, computed in
                       float64 from the float32 weights

As upstream feeds it, the network input is the image in BGR order scaled to [0, 1] (OpenCV's
image through torchvision's ToTensor).

Where the PyTorch layout departs from the paper's table, checkpoints decide, so the reference
follows the layout: the second conv is a full 3x3 conv (the table says depthwise), conv5_1 has no
residual connection although its input and output agree, and conv8 (the 7x7 conv of the
multi-scale branch) has a bias and is followed by ReLU; the module also holds a BatchNorm `bn8`
that the forward pass never applies, so checkpoints carry its tensors unused. Every activation is
ReLU (no ReLU6).

Random weights alone would make the activations vanish or explode within a few layers, so each
BatchNorm gets random gammas and betas, then running statistics measured in training mode on a
few images, as training would leave them (non-trivial means and variances for the converter to
fold). The unused bn8 gets random statistics: folding it by mistake would show.

Every stored number is rounded to 4 significant bits (`coarse`): still random for the test, but
the checkpoints, which git stores compressed, shrink from 11 MB to a fraction of it.
"""

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

IMAGE_SIZE = 112
SEED = 2019


def conv_bn_relu(inp, oup, kernel, stride, padding):
    return nn.Sequential(nn.Conv2d(inp, oup, kernel, stride, padding, bias=False), nn.BatchNorm2d(oup), nn.ReLU())


class InvertedResidual(nn.Module):
    """MobileNetV2's bottleneck (the table's "Bottleneck", expansion t): 1x1 expansion to t x inp
    channels, depthwise 3x3 with the block's stride, both with BN + ReLU, then a linear 1x1
    projection with BN; the input is added when `residual`."""

    def __init__(self, inp, oup, stride, residual, expansion):
        super().__init__()
        hidden = inp * expansion
        self.residual = residual
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup))

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class PFLDInference(nn.Module):
    """The backbone (Table 1) on a 112 x 112 crop; returns (the 28 x 28 features the auxiliary net
    reads, the landmarks)."""

    def __init__(self, points):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)            # 56 x 56
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.conv3_1 = InvertedResidual(64, 64, 2, False, 2)            # 28 x 28
        self.block3_2 = InvertedResidual(64, 64, 1, True, 2)
        self.block3_3 = InvertedResidual(64, 64, 1, True, 2)
        self.block3_4 = InvertedResidual(64, 64, 1, True, 2)
        self.block3_5 = InvertedResidual(64, 64, 1, True, 2)
        self.conv4_1 = InvertedResidual(64, 128, 2, False, 2)           # 14 x 14
        self.conv5_1 = InvertedResidual(128, 128, 1, False, 4)
        self.block5_2 = InvertedResidual(128, 128, 1, True, 4)
        self.block5_3 = InvertedResidual(128, 128, 1, True, 4)
        self.block5_4 = InvertedResidual(128, 128, 1, True, 4)
        self.block5_5 = InvertedResidual(128, 128, 1, True, 4)
        self.block5_6 = InvertedResidual(128, 128, 1, True, 4)
        self.conv6_1 = InvertedResidual(128, 16, 1, False, 2)           # S1: 14 x 14 x 16
        self.conv7 = conv_bn_relu(16, 32, 3, 2, 1)                      # S2: 7 x 7 x 32
        self.conv8 = nn.Conv2d(32, 128, 7, 1, 0)                        # S3: 1 x 1 x 128
        self.bn8 = nn.BatchNorm2d(128)                                  # never applied (see above)
        self.avg_pool1 = nn.AvgPool2d(14)
        self.avg_pool2 = nn.AvgPool2d(7)
        self.fc = nn.Linear(16 + 32 + 128, 2 * points)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.conv3_1(x)
        x = self.block3_5(self.block3_4(self.block3_3(self.block3_2(x))))
        features = x
        x = self.conv4_1(x)
        x = self.conv5_1(x)
        x = self.block5_6(self.block5_5(self.block5_4(self.block5_3(self.block5_2(x)))))
        s1 = self.conv6_1(x)
        s2 = self.conv7(s1)
        s3 = self.relu(self.conv8(s2))
        multi_scale = torch.cat([self.avg_pool1(s1).flatten(1), self.avg_pool2(s2).flatten(1), s3.flatten(1)], 1)
        return features, self.fc(multi_scale)


class AuxiliaryNet(nn.Module):
    """The auxiliary net (Table 2) on the backbone's 28 x 28 features: three head angles
    (PFLD-pytorch trains them as pitch, yaw, roll in degrees)."""

    def __init__(self):
        super().__init__()
        self.conv1 = conv_bn_relu(64, 128, 3, 2, 1)   # 14 x 14
        self.conv2 = conv_bn_relu(128, 128, 3, 1, 1)
        self.conv3 = conv_bn_relu(128, 32, 3, 2, 1)   # 7 x 7
        self.conv4 = conv_bn_relu(32, 128, 7, 1, 1)   # 3 x 3
        self.max_pool1 = nn.MaxPool2d(3)              # 1 x 1
        self.fc1 = nn.Linear(128, 32)
        self.fc2 = nn.Linear(32, 3)

    def forward(self, features):
        x = self.conv4(self.conv3(self.conv2(self.conv1(features))))
        return self.fc2(self.fc1(self.max_pool1(x).flatten(1)))


def batchnorms(*modules):
    return [m for module in modules for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def randomise(modules, generator):
    for bn in batchnorms(*modules):
        with torch.no_grad():
            bn.weight.copy_(torch.rand(bn.num_features, generator=generator) + 0.5)
            bn.bias.copy_(torch.randn(bn.num_features, generator=generator) * 0.2)
        bn.momentum = None  # running statistics: the plain average over the calibration batches
        bn.reset_running_stats()


def calibrate(networks, images):
    """Running statistics as training leaves them: measured in training mode (which uses batch
    statistics), then frozen for evaluation. `networks` is the backbone, possibly its auxiliary net."""
    backbone, *auxiliary = networks
    for network in networks:
        network.train()
    with torch.no_grad():
        for image in images:
            features, _ = backbone(network_input(image))
            for network in auxiliary:
                network(features)
    for network in networks:
        network.eval()
    with torch.no_grad():  # the unused bn8: statistics of its own, far from (0, 1)
        backbone.bn8.running_mean.uniform_(-1, 1)
        backbone.bn8.running_var.uniform_(0.2, 3)


def coarse(networks):
    """Rounds every parameter and buffer to 4 significant bits, in place (see the docstring)."""
    with torch.no_grad():
        for network in networks:
            for tensor in network.state_dict().values():
                if tensor.is_floating_point():
                    mantissa, exponent = torch.frexp(tensor)
                    tensor.copy_(torch.ldexp(torch.round(mantissa * 16) / 16, exponent.to(tensor.dtype)))


def random_image(generator):
    """A smooth random colour field plus noise, as 0..255 integers [112, 112, 3] (RGB)."""
    coarse = torch.rand(1, 3, 8, 8, generator=generator) * 255
    smooth = nn.functional.interpolate(coarse, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    noise = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator) * 20
    return (smooth + noise).clamp(0, 255).round()[0].permute(1, 2, 0).numpy().astype(np.float32)


def network_input(image):
    """Upstream's input: BGR, scaled to [0, 1], [1, 3, 112, 112]."""
    bgr = torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1]))
    return (bgr / 255).permute(2, 0, 1).unsqueeze(0)


def float64_outputs(backbone, auxiliary, image):
    """The outputs computed in float64 (on copies), so that the reference itself is not rounded."""
    backbone64 = PFLDInference(backbone.fc.out_features // 2).double().eval()
    backbone64.load_state_dict(backbone.state_dict())
    with torch.no_grad():
        features, landmarks = backbone64(network_input(image).double())
        angles = None
        if auxiliary is not None:
            auxiliary64 = AuxiliaryNet().double().eval()
            auxiliary64.load_state_dict(auxiliary.state_dict())
            angles = auxiliary64(features)[0].float().numpy()
    return landmarks[0].float().numpy(), angles


def main(out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)  # the layers' default initialisation
    generator = torch.Generator().manual_seed(SEED)
    image = random_image(generator)
    calibration = [random_image(generator) for _ in range(6)] + [image]
    np.save(out / "image.npy", image)

    backbone, auxiliary = PFLDInference(98), AuxiliaryNet()
    randomise([backbone, auxiliary], generator)
    calibrate([backbone, auxiliary], calibration)
    coarse([backbone, auxiliary])
    torch.save({"epoch": 7, "plfd_backbone": backbone.state_dict(), "auxiliarynet": auxiliary.state_dict()},
               out / "pfld98_training.pth")
    landmarks, angles = float64_outputs(backbone, auxiliary, image)
    np.save(out / "pfld98_landmarks.npy", landmarks)
    np.save(out / "pfld98_angles.npy", angles)

    backbone68 = PFLDInference(68).eval()
    state68 = {key: value for key, value in backbone.state_dict().items() if not key.startswith("fc.")}
    state68.update({key: value for key, value in backbone68.state_dict().items() if key.startswith("fc.")})
    backbone68.load_state_dict(state68)
    coarse([backbone68])
    torch.save(backbone68.state_dict(), out / "pfld68.pth")
    np.save(out / "pfld68_landmarks.npy", float64_outputs(backbone68, None, image)[0])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR")
    main(sys.argv[1])
