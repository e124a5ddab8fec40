#!/usr/bin/env python3
"""Generate the checkpoint fixtures of the converter tests. Needs PyTorch; run once, commit
the output (tests/converter/fixtures/), and the tests then run without PyTorch:

    /usr/bin/python3 tests/converter/gen_fixtures.py

Writes:
  tiny_legacy.pth, tiny_zip.pth  one state dict in both torch.save layouts: a conv + BatchNorm
                                 and a depthwise conv + BatchNorm with non-trivial running
                                 statistics, plus tensors with awkward storage layouts and types
  tiny_wrapped_zip.pth           the same tensors as {"state_dict": {"module." + key: ...}, "epoch": 3},
                                 as a DataParallel training script saves them
  tiny_two_networks_zip.pth      {"epoch": 3, "backbone": the conv's state dict, "head": the depthwise
                                 conv's, "optimizer": an optimizer's state}, as a script training two
                                 networks together saves them (PFLD-pytorch's train.py)
  tiny_tensors.npz               every tensor of the state dict as torch sees it
  tiny_conv_outputs.npz          a fixed input and each conv + BatchNorm's output in eval mode
  malicious_legacy.pth           a legacy-layout checkpoint whose pickle calls os.system
  malicious_zip.pth              a zip-layout checkpoint whose pickle calls builtins.eval
Both malicious payloads only create the file named by $FACET_PICKLE_MARKER, so a test can set it
to a temporary path and check that loading never ran them.
"""

import collections
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

FIXTURES = Path(__file__).resolve().parent / "fixtures"

# The tests rebuild these convolutions in NumPy, so they must agree with these settings.
CONV_STRIDE, CONV_PADDING = 2, 1
DEPTHWISE_STRIDE, DEPTHWISE_PADDING = 1, 1


def tiny_network():
    return nn.Sequential(collections.OrderedDict(
        conv=nn.Conv2d(3, 4, 3, stride=CONV_STRIDE, padding=CONV_PADDING, bias=False),
        conv_bn=nn.BatchNorm2d(4),
        depthwise=nn.Conv2d(4, 4, 3, stride=DEPTHWISE_STRIDE, padding=DEPTHWISE_PADDING, groups=4,
                            bias=False),
        depthwise_bn=nn.BatchNorm2d(4),
    )).eval()


def randomise_batchnorm(batchnorm):
    """Statistics far from the (0, 1) defaults, so that a folding mistake shows."""
    with torch.no_grad():
        batchnorm.weight.copy_(torch.randn(batchnorm.num_features))
        batchnorm.bias.copy_(torch.randn(batchnorm.num_features))
        batchnorm.running_mean.copy_(torch.randn(batchnorm.num_features))
        batchnorm.running_var.copy_(torch.rand(batchnorm.num_features) * 2 + 0.1)
        batchnorm.num_batches_tracked.fill_(100)


def awkward_tensors():
    """Tensors whose storage is not simply their elements in order, and non-float32 types."""
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    return {
        "layouts.transposed": torch.randn(3, 5).t(),                       # stride (1, 5)
        "layouts.permuted": torch.randn(3, 3, 3, 10).permute(3, 2, 1, 0),  # like facenet-pytorch's MTCNN
        "layouts.base": base,
        "layouts.view_with_offset": base[1:3, 2:5],                        # shares base's storage, offset 8
        "layouts.expanded": torch.randn(1, 4).expand(3, 4),                # stride (0, 1)
        "layouts.scalar": torch.tensor(2.5),
        "types.float64": torch.randn(3, dtype=torch.float64),
        "types.float16": torch.randn(3).half(),
        "types.bfloat16": torch.randn(3).bfloat16(),
        "types.int64": torch.arange(3),
        "types.bool": torch.tensor([True, False, True]),
    }


def as_numpy(tensor):
    # NumPy has no bfloat16; the reader widens it to float32, which is exact.
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).contiguous().numpy()


def write_tiny_checkpoints():
    network = tiny_network()
    randomise_batchnorm(network.conv_bn)
    randomise_batchnorm(network.depthwise_bn)
    state_dict = collections.OrderedDict(network.state_dict())
    state_dict.update(awkward_tensors())

    torch.save(state_dict, FIXTURES / "tiny_legacy.pth", _use_new_zipfile_serialization=False)
    torch.save(state_dict, FIXTURES / "tiny_zip.pth")
    wrapped = {"state_dict": {"module." + key: value for key, value in state_dict.items()}, "epoch": 3}
    torch.save(wrapped, FIXTURES / "tiny_wrapped_zip.pth")
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9)
    two_networks = {"epoch": 3, "backbone": nn.Sequential(network.conv, network.conv_bn).state_dict(),
                    "head": nn.Sequential(network.depthwise, network.depthwise_bn).state_dict(),
                    "optimizer": optimizer.state_dict()}
    torch.save(two_networks, FIXTURES / "tiny_two_networks_zip.pth")
    np.savez(FIXTURES / "tiny_tensors.npz", **{key: as_numpy(value) for key, value in state_dict.items()})

    image = torch.randn(1, 3, 10, 10)
    with torch.no_grad():
        conv_output = network.conv_bn(network.conv(image))
        depthwise_output = network.depthwise_bn(network.depthwise(conv_output))
    np.savez(FIXTURES / "tiny_conv_outputs.npz", input=image.numpy(), conv=conv_output.numpy(),
             depthwise=depthwise_output.numpy())


def malicious_pickle(module, name, argument):
    """Protocol-2 pickle bytes of OrderedDict(weight=module.name(argument)): an unpickler that
    resolves names freely calls module.name while loading."""
    def unicode_string(text):
        encoded = text.encode("utf-8")
        return b"X" + struct.pack("<I", len(encoded)) + encoded  # BINUNICODE

    return b"".join([
        b"\x80\x02",                                         # PROTO 2
        b"ccollections\nOrderedDict\n)R",                    # GLOBAL, EMPTY_TUPLE, REDUCE: OrderedDict()
        unicode_string("weight"),
        f"c{module}\n{name}\n".encode(),                     # GLOBAL module.name
        unicode_string(argument), b"\x85R",                  # TUPLE1, REDUCE: module.name(argument)
        b"s.",                                               # SETITEM, STOP
    ])


def write_malicious_checkpoints():
    # Legacy layout: the three header pickles torch.load reads first, then the payload.
    legacy_header = b"".join(pickle.dumps(value, protocol=2) for value in (
        0x1950A86A20F9469CFC6C, 1001,
        {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}))
    payload = malicious_pickle("os", "system", 'touch "$FACET_PICKLE_MARKER"')
    (FIXTURES / "malicious_legacy.pth").write_bytes(legacy_header + payload)

    payload = malicious_pickle(
        "builtins", "eval",
        "__import__('pathlib').Path(__import__('os').environ['FACET_PICKLE_MARKER']).touch()")
    with zipfile.ZipFile(FIXTURES / "malicious_zip.pth", "w") as archive:
        archive.writestr("malicious_zip/data.pkl", payload)
        archive.writestr("malicious_zip/version", "3\n")


def main():
    torch.manual_seed(0)
    FIXTURES.mkdir(exist_ok=True)
    write_tiny_checkpoints()
    write_malicious_checkpoints()
    for path in sorted(FIXTURES.iterdir()):
        print(f"{path.stat().st_size:8d}  {path.relative_to(FIXTURES.parent)}")


if __name__ == "__main__":
    main()
