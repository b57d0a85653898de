"""Small fixtures for the DMD2Metrics tests that do not need the 87 MB Inception weights.

Writes into Tests/DMD2MetricsTests/Resources/:
  tiny_torchscript.pt   torch.jit.save of a tiny scripted module: a sub-module with a float
                        parameter [2, 3, 1, 3], an int attribute `stride` = 2 and an int-list
                        attribute `padding` = [0, 3]; a buffer that is a transposed
                        (non-contiguous) view; two buffers sharing one storage at offsets 0
                        and 4. Exercises the pickle reader and the strided tensor copy.
  bad_opcode.pt         a zip whose data.pkl uses STACK_GLOBAL (protocol 4), which the reader
                        does not implement: the error must name the opcode.
  edm_stats.npz         np.savez(mu=float64 [4], sigma=float64 [4, 4]) — the layout of EDM's
                        reference statistics (no `count` member).
The expected values are written here as plain formulas and repeated in the Swift tests.

Run from the repository root:  python3 reference/make_metrics_fixtures.py   (needs torch; ~2 s).
Re-runs give identical files except tiny_torchscript.pt's `.data/serialization_id` member, which
torch draws anew on every save (nothing reads it).
"""

import os
import zipfile
from typing import List

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "DMD2MetricsTests", "Resources")


class Inner(torch.nn.Module):
    stride: int
    padding: List[int]

    def __init__(self):
        super().__init__()
        # weight[o, c, 0, v] = 100·o + 10·c + v
        w = torch.tensor([[[[100.0 * o + 10 * c + v for v in range(3)]] for c in range(3)] for o in range(2)])
        self.weight = torch.nn.Parameter(w)
        self.stride = 2
        self.padding = [0, 3]

    def forward(self, x):
        return torch.nn.functional.conv2d(x, self.weight, None, [self.stride, self.stride], self.padding)


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Inner()
        # transposed[i, j] = base[j, i] = 4·j + i: a [4, 3] view with strides (1, 4)
        self.register_buffer("transposed", torch.arange(12.0).reshape(3, 4).t())
        shared = torch.arange(10.0) * 0.5
        self.register_buffer("head", shared[:4])                 # offset 0: 0, 0.5, 1, 1.5
        self.register_buffer("tail", shared[4:].view(2, 3))      # offset 4: [[2, 2.5, 3], [3.5, 4, 4.5]]

    def forward(self, x):
        return self.inner(x) + self.transposed.sum() + self.head.sum() + self.tail.sum()


def main():
    os.makedirs(OUT, exist_ok=True)
    tiny = torch.jit.script(Tiny())
    assert not tiny.transposed.is_contiguous()
    path = os.path.join(OUT, "tiny_torchscript.pt")
    torch.jit.save(tiny, path)
    back = torch.jit.load(path)
    print("tiny_torchscript.pt: transposed strides", back.transposed.stride(),
          "tail offset", back.tail.storage_offset(), "size", os.path.getsize(path))

    with zipfile.ZipFile(os.path.join(OUT, "bad_opcode.pt"), "w") as z:
        # PROTO 4, SHORT_BINUNICODE 'a', SHORT_BINUNICODE 'b', STACK_GLOBAL, STOP; fixed date: reproducible
        z.writestr(zipfile.ZipInfo("archive/data.pkl", date_time=(2024, 1, 1, 0, 0, 0)),
                   b"\x80\x04\x8c\x01a\x8c\x01b\x93.")

    mu = np.array([1.0, -2.0, 0.5, 3.0])
    a = np.array([[2.0, 0.5, 0.0, 0.1], [0.0, 1.0, 0.3, 0.0], [0.0, 0.0, 1.5, 0.2], [0.0, 0.0, 0.0, 0.7]])
    sigma = a @ a.T                                   # symmetric positive definite
    np.savez(os.path.join(OUT, "edm_stats.npz"), mu=mu, sigma=sigma)
    print("edm_stats.npz: sigma =", sigma.tolist())


if __name__ == "__main__":
    main()
