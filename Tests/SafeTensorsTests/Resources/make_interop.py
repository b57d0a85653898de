#!/usr/bin/env python3
"""Generates interop.safetensors, the fixture InteropTests.swift reads, with the reference
implementation (Hugging Face `safetensors`, here 0.8.0, plus numpy 2.x):

    pip install safetensors numpy
    python3 make_interop.py            # writes interop.safetensors next to this script

Every value is exactly representable in its dtype, so the Swift test compares exactly.
numpy has no bfloat16, so the BF16 tensor is handed to the serializer as raw uint16 bit
patterns through safetensors' low-level `serialize_file` (the same call `save_file` makes).
"""
import math
import os

import numpy as np
import safetensors
from safetensors.numpy import _flatten

HERE = os.path.dirname(os.path.abspath(__file__))

tensors = {
    "f32": np.array([[0.0, 1.0, -2.5], [3.25, 1e30, -1e-30]], dtype=np.float32),
    "f64": np.array([0.1, -1e300, math.pi], dtype=np.float64),
    # 1, -0.5, largest finite, smallest subnormal (2^-24), +inf, -0
    "f16": np.array([[1.0, -0.5, 65504.0], [2.0**-24, math.inf, -0.0]], dtype=np.float16),
    "i64": np.array([0, -1, 2**62, -(2**63)], dtype=np.int64),
    "i32": np.array([[7, -8], [2**31 - 1, -(2**31)]], dtype=np.int32),
    "i16": np.array([-32768, 0, 32767], dtype=np.int16),
    "i8": np.array([-128, -1, 127], dtype=np.int8),
    "u8": np.array([0, 128, 255], dtype=np.uint8),
    "bool": np.array([True, False, True], dtype=np.bool_),
    "empty": np.zeros((0, 3), dtype=np.float32),
    "scalar": np.array(42.5, dtype=np.float64),
}

# bfloat16 bit patterns: 1.0, -2.0, 3.140625, 2^-7, largest finite (~3.39e38), smallest subnormal
bf16_bits = np.array([[0x3F80, 0xC000, 0x4049], [0x3C00, 0x7F7F, 0x0001]], dtype=np.uint16)

metadata = {"format": "np", "source": "make_interop.py", "note": "h\u00e9llo \u2713 \"quoted\""}

keep_alive = []
specs = _flatten(tensors, keep_alive)
specs["bf16"] = safetensors.TensorSpec(
    dtype="bfloat16", shape=bf16_bits.shape, data_ptr=bf16_bits.ctypes.data, data_len=bf16_bits.nbytes
)
out = os.path.join(HERE, "interop.safetensors")
safetensors.serialize_file(specs, out, metadata=metadata)
print(f"wrote {out} ({os.path.getsize(out)} bytes) with safetensors {safetensors.__version__}")
