#!/usr/bin/env python3
"""cli: reading a user's files refuses what is no regular file, and run_converter reports every failure,
even one no check foresaw, as one line with exit status 2."""

import contextlib
import io
import os
import tempfile
import unittest
from pathlib import Path

import support  # noqa: F401  (makes converters/ importable)
from cli import ConverterError, InputFileError, read_regular_file, run_converter


def run(call, sources=("in.onnx",)):
    """(status, stdout, stderr) of run_converter around `call`."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = run_converter("conv", list(sources), "out.facet", call)
    return status, stdout.getvalue(), stderr.getvalue()


def raise_(error):
    def call():
        raise error
    return call


class RunConverterTest(unittest.TestCase):
    def test_success(self):
        self.assertEqual(run(lambda: "3 ops"), (0, "conv: wrote out.facet (3 ops)\n", ""))

    def test_every_failure_is_one_line_naming_the_input(self):
        cases = [(ConverterError("op x: too big"), "conv: error: in.onnx: op x: too big\n"),
                 (InputFileError("/dev/zero: a device"), "conv: error: /dev/zero: a device\n"),
                 (FileNotFoundError(2, "No such file or directory", "in.onnx"), "conv: error: in.onnx: No such file or directory\n"),
                 (MemoryError(), "conv: error: in.onnx: out of memory while converting\n"),
                 # The safety net: an exception no check raised still ends as one line, exit 2.
                 (KeyError("w"), "conv: error: in.onnx: cannot be converted (KeyError: 'w'); the converter has no check "
                                 "for this input yet, please report it\n")]
        for error, message in cases:
            with self.subTest(error=type(error).__name__):
                self.assertEqual(run(raise_(error)), (2, "", message))


class ReadRegularFileTest(unittest.TestCase):
    def setUp(self):
        temporary = tempfile.TemporaryDirectory()
        self.addCleanup(temporary.cleanup)
        self.root = Path(temporary.name)

    def test_refuses_what_is_no_regular_file(self):
        fifo = self.root / "fifo"
        os.mkfifo(fifo)  # opening it for reading would wait for a writer: it must be refused, not opened
        for path, kind in ((fifo, "a FIFO"), ("/dev/zero", "a device"), (self.root, "a directory")):
            with self.subTest(kind=kind), self.assertRaisesRegex(InputFileError, f"the model is {kind}; only regular"):
                read_regular_file(path, what="model")

    def test_size_limit(self):
        path = self.root / "eleven.bin"
        path.write_bytes(bytes(11))
        self.assertEqual(read_regular_file(path, max_bytes=11), bytes(11))
        with self.assertRaisesRegex(InputFileError, "eleven.bin: the file is 11 bytes, more than the 10 a converter reads"):
            read_regular_file(path, max_bytes=10)


if __name__ == "__main__":
    unittest.main()
