"""Minimal safetensors writer/reader using only the standard library and numpy.

File layout (the safetensors format, written from its description):

    [8 bytes]  N = header length, little-endian unsigned 64-bit
    [N bytes]  UTF-8 JSON header:
                 {"<name>": {"dtype": "F64", "shape": [...], "data_offsets": [begin, end]},
                  ...,
                  "__metadata__": {"<key>": "<string value>", ...}}
               padded with trailing spaces so that 8 + N is a multiple of 8
    [rest]     raw little-endian tensor bytes; data_offsets are relative to the
               start of this region (i.e. to byte 8 + N of the file)

Tensors are laid out in sorted-name order, contiguous, with no gaps, so the
output for a given dict is byte-for-byte deterministic.

We deliberately do not depend on the `safetensors` PyPI package.
"""

import json
import struct

import numpy as np

# safetensors dtype tag <-> numpy little-endian dtype
_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}


def _tag_for(arr):
    """Return (safetensors tag, little-endian numpy dtype) for an array."""
    for tag, d in _DTYPES.items():
        if d.kind == arr.dtype.kind and d.itemsize == arr.dtype.itemsize:
            return tag, d
    raise TypeError(f"unsupported dtype {arr.dtype}")


def save(path, tensors, metadata=None):
    """Write `tensors` (dict name -> numpy array) and optional string->string
    `metadata` to `path` in safetensors format."""
    header = {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved")
        arr = np.asarray(tensors[name])
        tag, le = _tag_for(arr)
        data = np.ascontiguousarray(arr, dtype=le).tobytes(order="C")
        header[name] = {
            "dtype": tag,
            "shape": [int(s) for s in arr.shape],
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("metadata keys and values must be str")
        header["__metadata__"] = dict(sorted(metadata.items()))

    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    # Pad with spaces so the data region starts on an 8-byte boundary.
    hbytes += b" " * ((-(8 + len(hbytes))) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for c in chunks:
            f.write(c)


def load(path):
    """Read a safetensors file. Returns (tensors: dict name -> numpy array,
    metadata: dict str -> str). Checks that offsets are in range, contiguous
    and consistent with dtype and shape."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError("file too short")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError("header length past end of file")
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = raw[8 + n :]
    metadata = header.pop("__metadata__", {}) or {}

    tensors = {}
    spans = []
    for name, info in header.items():
        dt = _DTYPES[info["dtype"]]
        shape = tuple(info["shape"])
        begin, end = info["data_offsets"]
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if end - begin != count * dt.itemsize or begin < 0 or end > len(data):
            raise ValueError(f"bad data_offsets for {name}")
        tensors[name] = np.frombuffer(data, dtype=dt, count=count, offset=begin).reshape(shape).copy()
        spans.append((begin, end))
    # The data region must be covered exactly, without overlaps or holes.
    pos = 0
    for b, e in sorted(spans):
        if b != pos:
            raise ValueError("data region has a hole or overlap")
        pos = e
    if pos != len(data):
        raise ValueError("trailing bytes after last tensor")
    return tensors, metadata
