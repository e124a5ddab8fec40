#!/usr/bin/env python3
"""facetfile: the written bytes follow weights/FORMAT.md, and read_facet refuses damaged files."""

import struct
import tempfile
import unittest
import zlib
from pathlib import Path

import numpy as np

import support  # noqa: F401  (makes converters/ importable)
from facetfile import FacetFileError, read_facet, write_facet

# The header as FORMAT.md lays it out, restated here so the test does not trust the writer.
HEADER = struct.Struct("<8sIIQQQQIIQ")
VERSION_OFFSET, CRC_OFFSET, TABLE_OFFSET_FIELD = 8, 52, 6

METADATA = {"format": "facet", "model": "test", "values": [1, 2.5, "é"]}


def sample_tensors():
    rng = np.random.default_rng(0)
    return {
        "conv.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "conv.bias": rng.standard_normal(4).astype(np.float32),
        "odd.sized": rng.standard_normal((5, 7)).astype(np.float32),  # 140 bytes: the next one needs padding
        "scalar": np.array(1.5, dtype=np.float32),
    }


def find_record(data, name):
    """Positions of the dtype byte and of the (offset, nbytes) fields of tensor `name`'s record."""
    table_offset = HEADER.unpack_from(data)[TABLE_OFFSET_FIELD]
    encoded = name.encode()
    start = data.index(struct.pack("<H", len(encoded)) + encoded, table_offset)
    dtype_at = start + 2 + len(encoded)
    ndim = data[dtype_at + 1]
    return dtype_at, dtype_at + 2 + 4 * ndim


class FacetFileTest(unittest.TestCase):
    def setUp(self):
        temporary = tempfile.TemporaryDirectory()
        self.addCleanup(temporary.cleanup)
        self.directory = Path(temporary.name)
        self.path = self.directory / "sample.facet"
        write_facet(self.path, METADATA, sample_tensors())

    def damaged_copy(self, edit, fix_crc=False):
        """A copy of the sample file with `edit(bytearray)` applied; with `fix_crc`, the CRC is
        recomputed so that the reader's later checks are the ones that must catch the damage."""
        data = bytearray(self.path.read_bytes())
        edit(data)
        if fix_crc:
            struct.pack_into("<I", data, CRC_OFFSET, zlib.crc32(data[64:]))
        damaged = self.directory / "damaged.facet"
        damaged.write_bytes(data)
        return damaged

    def assert_refused(self, damaged, reason):
        with self.assertRaisesRegex(ValueError, r"damaged\.facet: " + reason):
            read_facet(damaged)

    def edit_record(self, name, offset=None, nbytes=None, dtype=None):
        """An edit function changing fields of tensor `name`'s table record."""
        def edit(data):
            dtype_at, fields_at = find_record(data, name)
            old_offset, old_nbytes = struct.unpack_from("<QQ", data, fields_at)
            struct.pack_into("<QQ", data, fields_at, old_offset if offset is None else offset,
                             old_nbytes if nbytes is None else nbytes)
            if dtype is not None:
                data[dtype_at] = dtype
        return edit

    def record_offset(self, name):
        data = self.path.read_bytes()
        return struct.unpack_from("<Q", data, find_record(data, name)[1])[0]

    def test_round_trip_keeps_metadata_names_order_and_values(self):
        metadata, tensors = read_facet(self.path)
        self.assertEqual(metadata, METADATA)
        expected = sample_tensors()
        self.assertEqual(list(tensors), list(expected))
        for name, array in expected.items():
            self.assertEqual(tensors[name].dtype, np.float32)
            np.testing.assert_array_equal(tensors[name], array)

    def test_header_fields(self):
        data = self.path.read_bytes()
        (magic, version, header_size, file_size, meta_offset, meta_size, table_offset,
         tensor_count, crc, reserved) = HEADER.unpack_from(data)
        self.assertEqual((magic, version, header_size, reserved), (b"FACETWGT", 1, 64, 0))
        self.assertEqual(file_size, len(data))
        self.assertEqual(meta_offset, 64)
        self.assertEqual(data[meta_offset:meta_offset + meta_size], b'{"format":"facet","model":"test",'
                                                                   b'"values":[1,2.5,"\xc3\xa9"]}')
        self.assertEqual(table_offset % 8, 0)
        self.assertGreaterEqual(table_offset, meta_offset + meta_size)
        self.assertEqual(tensor_count, 4)
        self.assertEqual(crc, zlib.crc32(data[64:]))

    def test_tensor_offsets_are_64_byte_aligned(self):
        for name in sample_tensors():
            self.assertEqual(self.record_offset(name) % 64, 0, name)

    def test_output_is_deterministic(self):
        again = self.directory / "again.facet"
        write_facet(again, dict(reversed(METADATA.items())), sample_tensors())
        self.assertEqual(again.read_bytes(), self.path.read_bytes())

    def test_rejects_truncated_file(self):
        self.assert_refused(self.damaged_copy(lambda data: data.__delitem__(slice(-10, None))),
                            r"truncated: the header says \d+ bytes, the file has \d+")

    def test_rejects_file_shorter_than_header(self):
        self.assert_refused(self.damaged_copy(lambda data: data.__delitem__(slice(20, None))),
                            r"truncated: 20 bytes, shorter than the 64-byte header")

    def test_rejects_wrong_magic(self):
        self.assert_refused(self.damaged_copy(lambda data: data.__setitem__(slice(0, 8), b"NOTFACET")),
                            r"not a facet weight file")

    def test_rejects_bad_crc(self):
        def flip_last_byte(data):
            data[-1] ^= 0xFF
        self.assert_refused(self.damaged_copy(flip_last_byte), r"CRC mismatch")

    def test_rejects_future_version(self):
        self.assert_refused(self.damaged_copy(lambda data: struct.pack_into("<I", data, VERSION_OFFSET, 2)),
                            r"format version 2: written by a newer facet")

    def test_rejects_reserved_dtype_by_name(self):
        self.assert_refused(self.damaged_copy(self.edit_record("conv.bias", dtype=2), fix_crc=True),
                            r"tensor conv.bias has dtype float16, which format version 1 reserves")

    def test_rejects_misaligned_tensor(self):
        misaligned = self.record_offset("conv.bias") + 4
        damaged = self.damaged_copy(self.edit_record("conv.bias", offset=misaligned), fix_crc=True)
        self.assert_refused(damaged, r"tensor conv.bias starts at \d+, not a multiple of 64")

    def test_rejects_wrong_byte_count(self):
        self.assert_refused(self.damaged_copy(self.edit_record("conv.bias", nbytes=20), fix_crc=True),
                            r"tensor conv.bias has nbytes 20, its dims \(4,\) need 16")

    def test_rejects_overlapping_tensors(self):
        onto_weight = self.record_offset("conv.weight")
        damaged = self.damaged_copy(self.edit_record("conv.bias", offset=onto_weight), fix_crc=True)
        self.assert_refused(damaged, r"tensor conv\.(bias overlaps tensor conv\.weight|"
                                     r"weight overlaps tensor conv\.bias)")

    def test_rejects_tensor_past_end_of_file(self):
        beyond = self.record_offset("scalar") + 640
        self.assert_refused(self.damaged_copy(self.edit_record("scalar", offset=beyond), fix_crc=True),
                            r"tensor scalar .* ends past the end of the file")

    def test_writer_refuses_other_dtypes(self):
        with self.assertRaisesRegex(ValueError, r"tensor x is float64; only float32"):
            write_facet(self.directory / "x.facet", METADATA, {"x": np.zeros(3)})

    def test_writer_refuses_what_the_loader_refuses(self):
        out = self.directory / "refused.facet"
        too_long = np.broadcast_to(np.float32(0), (1 << 30) + 1)  # no memory behind it: a zero stride
        cases = [({"w": np.array([1.0, np.inf], np.float32)}, METADATA, "tensor w holds NaN or infinity"),
                 ({"w": too_long}, METADATA, r"tensor w has shape \(1073741825,\); the format needs 0 \.\. 8 dims, "
                                             r"each in \[1, 1073741824\]"),
                 ({}, {"slope": float("nan")}, "the metadata holds NaN or infinity")]
        for tensors, metadata, message in cases:
            with self.subTest(message=message), self.assertRaisesRegex(FacetFileError, message):
                write_facet(out, metadata, tensors)
            self.assertFalse(out.exists())

    def test_int32_tensors_round_trip_with_dtype_code_4(self):
        path = self.directory / "ints.facet"
        indices = np.array([[0, 5, -7], [2147483647, -2147483648, 3]], dtype=np.int32)
        write_facet(path, METADATA, {"m.indices": indices, "m.values": np.ones(6, dtype=np.float32)})
        _, tensors = read_facet(path)
        self.assertEqual(tensors["m.indices"].dtype, np.int32)
        np.testing.assert_array_equal(tensors["m.indices"], indices)
        self.assertEqual(tensors["m.values"].dtype, np.float32)
        data = path.read_bytes()
        dtype_at, fields_at = find_record(data, "m.indices")
        self.assertEqual(data[dtype_at], 4)
        offset = struct.unpack_from("<Q", data, fields_at)[0]
        self.assertEqual(data[offset:offset + 8], struct.pack("<ii", 0, 5))  # little-endian int32

    def test_rejects_unknown_dtype_code(self):
        self.assert_refused(self.damaged_copy(self.edit_record("conv.bias", dtype=5), fix_crc=True),
                            r"tensor conv.bias has unknown dtype code 5")

    def test_int32_byte_count_is_checked_like_float32(self):
        path = self.directory / "ints.facet"
        write_facet(path, METADATA, {"idx": np.arange(4, dtype=np.int32)})
        data = bytearray(path.read_bytes())
        _, fields_at = find_record(data, "idx")
        struct.pack_into("<Q", data, fields_at + 8, 8)
        struct.pack_into("<I", data, CRC_OFFSET, zlib.crc32(data[64:]))
        damaged = self.directory / "damaged.facet"
        damaged.write_bytes(data)
        self.assert_refused(damaged, r"tensor idx has nbytes 8, its dims \(4,\) need 16")


if __name__ == "__main__":
    unittest.main()
