"""Bad input: the exception type for it and the checks shared by the API and the CLI.

Anything the user got wrong (a number out of range, a missing file, an output that cannot be
written) raises :class:`InputError` with a one-line message; the command line prints it and
exits with code 2. Any other exception is a bug (exit code 4). ``InputError`` is a
``ValueError`` so that API callers catching ``ValueError`` keep working.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager

__all__ = [
    "InputError",
    "MissingFileError",
    "OutputError",
    "as_input_error",
    "check",
    "arg_type",
    "KINDS",
]


class InputError(ValueError):
    """A problem with the user's input; the message is one line."""


class MissingFileError(InputError, FileNotFoundError):
    """A file named by the user does not exist."""


class OutputError(InputError):
    """Results were computed but could not be written; ``result`` holds them."""

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


#: kind of a numeric option -> (conversion, test, what it must be)
KINDS: dict[str, tuple[type, Callable[[float], bool], str]] = {
    "int>0": (int, lambda v: v > 0, "a positive integer"),
    "int>=0": (int, lambda v: v >= 0, "an integer >= 0"),
    "int>=2": (int, lambda v: v >= 2, "an integer >= 2"),
    "float>0": (float, lambda v: v > 0, "a positive number"),
    "float>=0": (float, lambda v: v >= 0, "a number >= 0"),
    "[0,1)": (float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "depth": (int, lambda v: v == -1 or v >= 1, "-1 (unlimited) or an integer >= 1"),
}


def _convert(value, kind: str):
    cast, test, what = KINDS[kind]
    if isinstance(value, bool) or (cast is int and isinstance(value, float)):
        raise ValueError(what)
    try:
        out = cast(value)
    except (TypeError, ValueError):
        raise ValueError(what) from None
    if out != out or out in (float("inf"), float("-inf")) or not test(out):  # NaN, inf
        raise ValueError(what)
    return out


def read_json(path: str | os.PathLike, what: str):
    """The content of a JSON file ``what`` (e.g. "example file"): one line if it is missing
    or malformed."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError(f"{what} not found: {path}")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise InputError(f"malformed JSON in {path}: {e}") from None


def check(name: str, value, kind: str):
    """``value`` converted to the kind's type, or :class:`InputError` naming ``name``."""
    try:
        return _convert(value, kind)
    except ValueError as e:
        raise InputError(f"{name} must be {e}, got {value!r}") from None


def arg_type(kind: str) -> Callable[[str], object]:
    """An ``argparse`` ``type=`` for a numeric kind (one-line error from the parser)."""

    def parse(text: str):
        try:
            return _convert(text, kind)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"must be {e}, got {text!r}") from None

    parse.__name__ = kind
    return parse


@contextmanager
def as_input_error():
    """Turn a ``ValueError`` raised inside into an :class:`InputError` (for calls into code
    whose ``ValueError`` means bad user input, e.g. an unknown integrator name)."""
    try:
        yield
    except InputError:
        raise
    except ValueError as e:
        lines = str(e).strip().splitlines()
        raise InputError(lines[0] if lines else type(e).__name__) from e


def _existing_ancestor(path: str) -> str:
    """The deepest existing ancestor of ``path``; :class:`InputError` if it is a file."""
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise InputError(f"cannot write {path}: {parent} is a file, not a directory")
    return parent


def _probe(directory: str, path: str) -> None:
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".pathdiff-probe-"):
            pass
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e} ({directory})") from None


def check_output_file(path: str | os.PathLike) -> None:
    """Fail now, before any work, if the file ``path`` cannot be written (nothing created)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError(f"cannot write {path}: it is a directory")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise InputError(f"cannot write {path}: permission denied")
    _probe(_existing_ancestor(path), path)


def check_output_dir(path: str | os.PathLike) -> None:
    """Fail now if the directory ``path`` cannot be created or written (nothing created)."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f"cannot use {path} as an output directory: it is a file")
    _probe(path if os.path.isdir(path) else _existing_ancestor(path), path)
