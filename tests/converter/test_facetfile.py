#!/usr/bin/env python3
"""facetfile: the written bytes follow weights/FORMAT.md, and read_facet refuses damaged files."""

import struct
import tempfile
import unittest
import zlib
from pathlib import Path

import numpy as np

import support  # noqa: F401  (makes converters/ importable)
from facetfile import BFloat16, FacetFileError, read_facet, write_facet

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
        self.assert_refused(self.damaged_copy(lambda data: struct.pack_into("<I", data, VERSION_OFFSET, 3)),
                            r"format version 3: written by a newer facet")

    def test_rejects_reserved_dtype_by_name(self):
        self.assert_refused(self.damaged_copy(self.edit_record("conv.bias", dtype=2), fix_crc=True),
                            r"tensor conv.bias has dtype float16, which format version 2 reserves")

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
        with self.assertRaisesRegex(ValueError, r"tensor x is float64; only float32, int32, int8 and BFloat16"):
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
        self.assert_refused(self.damaged_copy(self.edit_record("conv.bias", dtype=6), fix_crc=True),
                            r"tensor conv.bias has unknown dtype code 6")

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


class Version2Dtypes(unittest.TestCase):
    """int8 and bfloat16 tensors (format version 2): bytes as FORMAT.md says, checked on reading."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.directory = Path(self._tmp.name)

    def tearDown(self):
        self._tmp.cleanup()

    def test_bfloat16_rounds_to_nearest_even(self):
        # Hand-computed: 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7: ties go to the even 1;
        # 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up to the even one; just
        # above a halfway point rounds up; -2.0 and the least float32 subnormal stay exact in bits.
        values = np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, -2.0, 1.5], np.float32)
        self.assertEqual(BFloat16.from_float32(values).bits.tolist(), [0x3F80, 0x3F82, 0x3F81, 0xC000, 0x3FC0])
        np.testing.assert_array_equal(BFloat16(np.array([0x3FC0], np.uint16)).to_float32(), [1.5])

    def test_round_trip_writes_version_2_and_the_element_bytes(self):
        path = self.directory / "v2.facet"
        weight = np.array([[-128, 127, 0], [1, -1, 5]], np.int8)
        half = BFloat16.from_float32(np.array([1.5, -2.0], np.float32))
        write_facet(path, METADATA, {"q.weight": weight, "h.weight": half, "q.scale": np.ones(2, np.float32)})
        data = path.read_bytes()
        self.assertEqual(struct.unpack_from("<I", data, VERSION_OFFSET)[0], 2)
        for name, code, raw in (("q.weight", 3, bytes([0x80, 0x7F, 0, 1, 0xFF, 5])), ("h.weight", 5, b"\xc0\x3f\x00\xc0")):
            dtype_at, fields_at = find_record(data, name)
            self.assertEqual(data[dtype_at], code)
            offset, nbytes = struct.unpack_from("<QQ", data, fields_at)
            self.assertEqual((offset % 64, data[offset:offset + nbytes]), (0, raw))
        _, tensors = read_facet(path)
        np.testing.assert_array_equal(tensors["q.weight"], weight)
        self.assertEqual(tensors["q.weight"].dtype, np.int8)
        np.testing.assert_array_equal(tensors["h.weight"].bits, half.bits)

    def test_fp32_only_files_stay_version_1(self):
        path = self.directory / "v1.facet"
        write_facet(path, METADATA, sample_tensors())
        self.assertEqual(struct.unpack_from("<I", path.read_bytes(), VERSION_OFFSET)[0], 1)

    def test_version_1_file_with_a_version_2_dtype_is_refused_by_name(self):
        path = self.directory / "old.facet"
        write_facet(path, METADATA, {"q": np.zeros(4, np.int8)})
        data = bytearray(path.read_bytes())
        struct.pack_into("<I", data, VERSION_OFFSET, 1)
        path.write_bytes(data)  # the CRC does not cover the header
        with self.assertRaisesRegex(ValueError, r"tensor q has dtype int8, which format version 1 does not have"):
            read_facet(path)

    def test_writer_refuses_infinite_bfloat16(self):
        with self.assertRaisesRegex(FacetFileError, "tensor h holds NaN or infinity"):
            write_facet(self.directory / "x.facet", METADATA, {"h": BFloat16(np.array([0x7F80], np.uint16))})
        with self.assertRaisesRegex(FacetFileError, "cannot round NaN or infinity to bfloat16"):
            BFloat16.from_float32(np.array([np.nan], np.float32))
