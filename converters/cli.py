#!/usr/bin/env python3
"""What the three converters' command lines share: the error every refusal raises, reading the files
a user names, and `run_converter`, which turns a conversion into one line of output and an exit status.

NumPy and the standard library only.
"""

import os
import stat
import sys

USER_ERROR_STATUS = 2  # for anything wrong with the command line or the inputs (argparse's status too)

# The largest input file read: twice the largest facet file (the C++ loader's 2 GiB), room for a
# checkpoint's optimizer state beside its weights.
MAX_INPUT_BYTES = 4 << 30


class ConverterError(ValueError):
    """An input that cannot, or must not, be converted. When `names_file` is False the message does
    not name the file and run_converter prefixes the inputs' names."""
    names_file = False


class InputFileError(ConverterError):
    """A file that is no regular file, or too large to read."""
    names_file = True


def open_regular_file(path, what="file", follow_links=True):
    """A binary file object of `path` once it is known to be a regular file. The check is made on the
    opened descriptor (O_NONBLOCK: opening a FIFO does not wait for a writer), so a device, a FIFO or a
    directory is refused before a byte is read, and cannot be swapped in between check and read.
    Without `follow_links`, a link at `path` itself is refused (ELOOP)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | (0 if follow_links else os.O_NOFOLLOW)
    descriptor = os.open(path, flags)
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
            raise InputFileError(f"{path}: the {what} is {kind}; only regular files are read")
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def read_regular_file(path, max_bytes=MAX_INPUT_BYTES, what="file"):
    """The bytes of the regular file `path`, refused by name when larger than `max_bytes`. Reads no
    more than its size said at opening (a file growing meanwhile is refused, not followed)."""
    with open_regular_file(path, what) as file:
        size = os.fstat(file.fileno()).st_size
        if size > max_bytes:
            raise InputFileError(f"{path}: the {what} is {size} bytes, more than the {max_bytes} a converter reads")
        data = file.read(size + 1)
    if len(data) != size:
        raise InputFileError(f"{path}: the {what} changed size while it was read")
    return data


def run_converter(program, sources, out, convert_call):
    """A converter's command line around `convert_call()`, which converts `sources` (the input paths)
    into `out` and returns a summary of what it wrote. Whatever goes wrong is one line on stderr,
    "<program>: error: <file>: <reason>", and USER_ERROR_STATUS, never a traceback."""
    inputs = " ".join(map(str, sources))
    try:
        summary = convert_call()
    except ConverterError as error:
        message = str(error) if error.names_file else f"{inputs}: {error}"
    except OSError as error:
        message = f"{error.filename}: {error.strerror}" if error.filename else f"{inputs}: {error}"
    except MemoryError:
        message = f"{inputs}: out of memory while converting"
    except Exception as error:  # pylint: disable=broad-except
        # A safety net, not a check: every refusal a test knows of raises ConverterError (the fuzz test
        # in tests/converter asserts it). Something new still ends as one line naming the input, exit 2.
        message = (f"{inputs}: cannot be converted ({type(error).__name__}: {error}); the converter has no "
                   "check for this input yet, please report it")
    else:
        print(f"{program}: wrote {out} ({summary})")
        return 0
    print(f"{program}: error: {message}", file=sys.stderr)
    return USER_ERROR_STATUS
