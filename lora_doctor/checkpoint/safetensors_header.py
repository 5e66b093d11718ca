"""Read a .safetensors header without loading a tensor: 8-byte little-endian length + JSON.

Only the first 8 + N bytes are read (N = the header length), so a 7 GB checkpoint answers in
milliseconds. Every way the file can be broken becomes a `HeaderError` with a readable reason.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field

MAX_HEADER = 100 * 1024 * 1024  # the safetensors library refuses larger headers too


class HeaderError(Exception):
    """The file is not a readable safetensors file; str() says why in one line."""


@dataclass
class Header:
    """What the header says: tensor name -> (dtype, shape), the `__metadata__` dict, the file's size."""

    tensors: dict[str, tuple[str, tuple[int, ...]]]
    metadata: dict[str, str] = field(default_factory=dict)
    file_size: int = 0
    offsets: dict[str, tuple[int, int]] = field(default_factory=dict)  # data_offsets, after the header
    data_start: int = 0  # 8 + the header's length

    def shape(self, key: str) -> tuple[int, ...] | None:
        entry = self.tensors.get(key)
        return entry[1] if entry else None


def sniff(head: bytes) -> str:
    """Name what a non-safetensors file looks like from its first bytes ('' when nothing known)."""
    text = head.lstrip()[:64].lower()
    if text.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")) or text.startswith(b"<"):
        return "an HTML/XML page (a web page saved under a model file name, e.g. a login or error page)"
    if text.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer file (the repository was cloned without git-lfs, so only a placeholder was saved)"
    if text.startswith((b"{", b"[")):
        return "a JSON document (an error answer from a server, not weights)"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (a PyTorch .ckpt/.pt checkpoint renamed to .safetensors?)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (a .ckpt/.pt checkpoint renamed to .safetensors?)"
    return ""


def read_header(path: str | os.PathLike) -> Header:
    """Parse the header of `path`; raise HeaderError (truncated, corrupt, not safetensors)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(0)
            first = fh.read(8)
            if len(first) < 8:
                raise HeaderError(f"the file is only {size} bytes long (an empty or aborted download)")
            (length,) = struct.unpack("<Q", first)
            if length == 0 or length > MAX_HEADER:
                what = sniff(first + fh.read(56))
                raise HeaderError(f"it is {what}" if what else
                                  "it does not start with a safetensors header (wrong format or corrupt)")
            if 8 + length > size:
                head = first + fh.read(56)
                what = sniff(head)
                raise HeaderError(f"it is {what}" if what else
                                  f"truncated: the header needs {8 + length} bytes but the file has {size}")
            raw = fh.read(length)
    except OSError as exc:
        raise HeaderError(f"cannot read it: {exc.strerror or exc}") from None
    try:
        doc = json.loads(raw.decode("utf-8").rstrip(" \x00"))
    except (UnicodeDecodeError, ValueError):
        what = sniff(first + raw[:56])
        raise HeaderError(f"it is {what}" if what else "the header is not valid JSON (corrupt file)") from None
    if not isinstance(doc, dict):
        raise HeaderError("the header is not a JSON object (corrupt file)")
    metadata = doc.pop("__metadata__", None) or {}
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    offsets: dict[str, tuple[int, int]] = {}
    end = 0
    for name, info in doc.items():
        try:
            dtype, shape = info["dtype"], tuple(int(d) for d in info["shape"])
            _begin, stop = (int(x) for x in info["data_offsets"])
        except (TypeError, KeyError, ValueError):
            raise HeaderError(f"the entry for tensor {name!r} is malformed (corrupt file)") from None
        tensors[name] = (dtype, shape)
        offsets[name] = (_begin, stop)
        end = max(end, stop)
    available = size - 8 - length
    if end > available:
        raise HeaderError(f"truncated: the tensors need {end:,} bytes after the header but only {available:,} "
                          f"are there ({size:,} of {8 + length + end:,} bytes; an interrupted download?)")
    return Header(tensors, metadata if isinstance(metadata, dict) else {}, size, offsets, 8 + length)


# struct formats of the scalar dtypes (bfloat16 is the high half of a float32)
_SCALAR = {"F32": "<f", "F64": "<d", "F16": "<e", "I64": "<q", "I32": "<i", "I16": "<h", "I8": "<b", "U8": "<B"}


def read_scalars(path: str | os.PathLike, header: Header, names) -> dict[str, float]:
    """The values of single-element tensors (a LoRA's `alpha`s), reading only their bytes; tensors
    that are not one number, or of a dtype not known here, are left out."""
    out: dict[str, float] = {}
    try:
        with open(path, "rb") as fh:
            for name in names:
                entry, span = header.tensors.get(name), header.offsets.get(name)
                if entry is None or span is None or _elements(entry[1]) != 1:
                    continue
                dtype, (begin, stop) = entry[0], span
                fh.seek(header.data_start + begin)
                raw = fh.read(stop - begin)
                if dtype == "BF16" and len(raw) == 2:
                    out[name] = struct.unpack("<f", b"\x00\x00" + raw)[0]
                elif dtype in _SCALAR and len(raw) == struct.calcsize(_SCALAR[dtype]):
                    out[name] = float(struct.unpack(_SCALAR[dtype], raw)[0])
    except OSError:
        pass
    return out


def _elements(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
