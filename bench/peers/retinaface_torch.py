"""RetinaFace with the MobileNet-0.25 backbone, in PyTorch, as /work/shared/MODELS.md section 1 describes.

This is the upstream network (biubug6/Pytorch_Retinaface, models/retinaface.py and models/net.py)
rewritten for the benchmark: same module names, so an upstream checkpoint loads with no key mapping,
and the same arithmetic, so its outputs are the upstream outputs. Only the parts a forward pass
needs are here (no training branch, no MobileNet classifier head).

The activation is a parameter because the two upstream checkpoints share every key and shape but
not the activation: the 2019 release uses ReLU everywhere, the official checkpoint uses
LeakyReLU(0.1) in the stem, every depthwise-separable block, the FPN and the context modules'
conv5X5_1 / conv7X7_2. The context module's final activation (after the concat) is ReLU in both.

Used only by bench/peers/run.py (Debian's /usr/bin/python3, which has torch); the product itself
never imports torch.
"""

import torch
import torch.nn.functional as F
from torch import nn

RELU_SLOPE = 0.0  # the 2019 checkpoint
OFFICIAL_LEAKY_SLOPE = 0.1  # the official checkpoint

ANCHORS_PER_CELL = 2
FPN_CHANNELS = 64


def activation(slope):
    """ReLU when slope is 0 (exported as ONNX Relu, which every runtime fuses), else LeakyReLU."""
    return nn.ReLU(inplace=True) if slope == 0 else nn.LeakyReLU(slope, inplace=True)


def conv_bn(cin, cout, kernel, stride, slope=None, groups=1):
    """conv (no bias) + BatchNorm, then the activation unless slope is None."""
    layers = [
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if slope is not None:
        layers.append(activation(slope))
    return nn.Sequential(*layers)


def conv_dw(cin, cout, stride, slope):
    """Depthwise 3x3 then pointwise 1x1, each with BN + activation.

    One Sequential of six modules so that checkpoint keys are .0 / .1 (depthwise conv, BN) and
    .3 / .4 (pointwise conv, BN), as upstream.
    """
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        activation(slope),
        nn.Conv2d(cin, cout, 1, 1, 0, bias=False),
        nn.BatchNorm2d(cout),
        activation(slope),
    )


class MobileNetV1(nn.Module):
    """MobileNetV1 x0.25: three stages with strides 8, 16, 32 and 64, 128, 256 channels."""

    def __init__(self, slope):
        super().__init__()
        self.stage1 = nn.Sequential(
            conv_bn(3, 8, 3, 2, slope),
            conv_dw(8, 16, 1, slope),
            conv_dw(16, 32, 2, slope),
            conv_dw(32, 32, 1, slope),
            conv_dw(32, 64, 2, slope),
            conv_dw(64, 64, 1, slope),
        )
        self.stage2 = nn.Sequential(conv_dw(64, 128, 2, slope), *[conv_dw(128, 128, 1, slope) for _ in range(5)])
        self.stage3 = nn.Sequential(conv_dw(128, 256, 2, slope), conv_dw(256, 256, 1, slope))

    def forward(self, x):
        c1 = self.stage1(x)
        c2 = self.stage2(c1)
        c3 = self.stage3(c2)
        return c1, c2, c3


class FPN(nn.Module):
    """1x1 laterals, then top-down: nearest upsample to the finer map's exact size, add, 3x3 merge."""

    def __init__(self, in_channels, slope):
        super().__init__()
        self.output1 = conv_bn(in_channels[0], FPN_CHANNELS, 1, 1, slope)
        self.output2 = conv_bn(in_channels[1], FPN_CHANNELS, 1, 1, slope)
        self.output3 = conv_bn(in_channels[2], FPN_CHANNELS, 1, 1, slope)
        self.merge1 = conv_bn(FPN_CHANNELS, FPN_CHANNELS, 3, 1, slope)
        self.merge2 = conv_bn(FPN_CHANNELS, FPN_CHANNELS, 3, 1, slope)

    def forward(self, c1, c2, c3):
        o1, o2, o3 = self.output1(c1), self.output2(c2), self.output3(c3)
        # size=, not scale_factor=2: odd map sizes (e.g. 135 rows over 68) must round as upstream.
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[2:], mode="nearest"))
        return o1, o2, o3


class SSH(nn.Module):
    """Context module: 3x3, stacked "5x5" and "7x7" branches (32 + 16 + 16 channels), concat, ReLU."""

    def __init__(self, channels, slope):
        super().__init__()
        half, quarter = channels // 2, channels // 4
        self.conv3X3 = conv_bn(channels, half, 3, 1)
        self.conv5X5_1 = conv_bn(channels, quarter, 3, 1, slope)
        self.conv5X5_2 = conv_bn(quarter, quarter, 3, 1)
        self.conv7X7_2 = conv_bn(quarter, quarter, 3, 1, slope)
        self.conv7x7_3 = conv_bn(quarter, quarter, 3, 1)

    def forward(self, x):
        t = self.conv5X5_1(x)
        out = torch.cat([self.conv3X3(x), self.conv5X5_2(t), self.conv7x7_3(self.conv7X7_2(t))], dim=1)
        return F.relu(out)


class Head(nn.Module):
    """1x1 conv with bias; output rearranged to [N, cells * anchors, values] in (row, col, anchor) order."""

    def __init__(self, values_per_anchor):
        super().__init__()
        self.values = values_per_anchor
        self.conv1x1 = nn.Conv2d(FPN_CHANNELS, ANCHORS_PER_CELL * values_per_anchor, 1)

    def forward(self, x):
        out = self.conv1x1(x).permute(0, 2, 3, 1).contiguous()
        return out.view(out.shape[0], -1, self.values)


class RetinaFace(nn.Module):
    """forward(x) -> (loc [N, P, 4], face probability [N, P], landmarks [N, P, 10]).

    x is BGR float minus the mean (104, 117, 123), NCHW. The probability is softmax index 1 of the
    two class logits, the form the golden conf file stores.
    """

    LEVELS = 3

    def __init__(self, slope):
        super().__init__()
        self.body = MobileNetV1(slope)
        self.fpn = FPN((64, 128, 256), slope)
        self.ssh1 = SSH(FPN_CHANNELS, slope)
        self.ssh2 = SSH(FPN_CHANNELS, slope)
        self.ssh3 = SSH(FPN_CHANNELS, slope)
        self.ClassHead = nn.ModuleList(Head(2) for _ in range(self.LEVELS))
        self.BboxHead = nn.ModuleList(Head(4) for _ in range(self.LEVELS))
        self.LandmarkHead = nn.ModuleList(Head(10) for _ in range(self.LEVELS))

    def forward(self, x):
        o1, o2, o3 = self.fpn(*self.body(x))
        features = (self.ssh1(o1), self.ssh2(o2), self.ssh3(o3))
        loc = torch.cat([head(f) for head, f in zip(self.BboxHead, features)], dim=1)
        logits = torch.cat([head(f) for head, f in zip(self.ClassHead, features)], dim=1)
        landms = torch.cat([head(f) for head, f in zip(self.LandmarkHead, features)], dim=1)
        return loc, F.softmax(logits, dim=-1)[..., 1], landms


def load_checkpoint(path):
    """The checkpoint's state dict with any DataParallel "module." prefix stripped.

    weights_only=True (PyTorch >= 1.13) refuses pickles that would call anything but tensor
    constructors; older PyTorch has no such option and loads normally.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:
        state = torch.load(path, map_location="cpu")
    if "state_dict" in state:
        state = state["state_dict"]
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def build(checkpoint_path, slope):
    """The network with the checkpoint's weights, in eval mode; every key must match (strict)."""
    model = RetinaFace(slope)
    model.load_state_dict(load_checkpoint(checkpoint_path), strict=True)
    return model.eval()
