"""Generate the float64 reference fixtures used by the Swift op tests.

For each op (conv2d, GroupNorm, ADM attention core) and each small case this
computes, with PyTorch in float64 on the CPU:
  * the forward output y for random inputs and parameters, and
  * the vector-Jacobian products (gradients w.r.t. every input and parameter)
    for a random upstream gradient gy,
and writes them to Tests/DMD2OpsTests/Fixtures/<op>.safetensors with the
stdlib+numpy writer in st_io.py. Everything is seeded with torch.manual_seed,
so re-running produces byte-identical files (for a given torch version).

Run from the repository root:  python3 reference/make_fixtures.py
"""

import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(REPO, "Tests", "DMD2OpsTests", "Fixtures")
DT = torch.float64


def file_metadata():
    return {
        "format": "swift-dmd2-fixture",
        "version": "1",
        "generator": "reference/make_fixtures.py",
        "torch": torch.__version__,
    }


def meta_json(d):
    """Compact JSON for the per-case metadata string, e.g. {"kernel":3,"stride":2,"padding":1}."""
    return json.dumps(d, separators=(",", ":"))


def np64(t):
    return t.detach().contiguous().numpy().astype("<f8")


def vjp(fn, inputs, seed_gy):
    """Run y = fn(*inputs) with autograd and return (y, gy, [grad of each input])
    where the gradients are the VJP of y with a random gy (drawn right after y)."""
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    y = fn(*leaves)
    gy = torch.randn(y.shape, dtype=DT) if seed_gy else None
    grads = torch.autograd.grad(y, leaves, gy)
    return y.detach(), gy, [g.detach() for g in grads]


# --------------------------------------------------------------------------
# conv2d: y = conv2d(x, weight, bias, stride, zero padding)
# --------------------------------------------------------------------------
CONV_CASES = [
    # name, kernel, stride, padding
    ("k1s1p0", 1, 1, 0),
    ("k3s1p1", 3, 1, 1),
    ("k3s2p1", 3, 2, 1),
    ("k4s2p1", 4, 2, 1),
    ("k4s4p0", 4, 4, 0),
]


def make_conv():
    tensors, meta = {}, file_metadata()
    N, Cin, H, W, Cout = 2, 3, 8, 8, 4
    for i, (name, k, s, p) in enumerate(CONV_CASES):
        torch.manual_seed(1000 + i)
        x = torch.randn(N, Cin, H, W, dtype=DT)
        w = torch.randn(Cout, Cin, k, k, dtype=DT) / math.sqrt(Cin * k * k)
        b = torch.randn(Cout, dtype=DT)

        def fn(x, w, b, s=s, p=p):
            return F.conv2d(x, w, b, stride=s, padding=p)

        y, gy, (gx, gw, gb) = vjp(fn, [x, w, b], True)
        for key, t in [("x", x), ("weight", w), ("bias", b), ("y", y), ("gy", gy),
                       ("gx", gx), ("gweight", gw), ("gbias", gb)]:
            tensors[f"{name}.{key}"] = np64(t)
        meta[name] = meta_json({"kernel": k, "stride": s, "padding": p})
        # Sanity check: autograd's VJPs against finite differences.
        assert torch.autograd.gradcheck(fn, [t.clone().requires_grad_(True) for t in (x, w, b)])
    return tensors, meta


# --------------------------------------------------------------------------
# GroupNorm: per sample and group, normalise over (C/G, H, W) with the biased
# variance and eps inside the square root, then per-channel affine.
# --------------------------------------------------------------------------
GN_CASES = [
    # name, x shape, groups
    ("g2", (2, 8, 4, 4), 2),
    ("g3", (2, 6, 3, 5), 3),
    ("g1", (1, 4, 2, 2), 1),
]
GN_EPS = 1e-5


def make_groupnorm():
    tensors, meta = {}, file_metadata()
    for i, (name, shape, g) in enumerate(GN_CASES):
        torch.manual_seed(2000 + i)
        C = shape[1]
        # Non-zero mean and non-unit scale so the normalisation is exercised.
        x = 0.5 + 2.0 * torch.randn(*shape, dtype=DT)
        w = 1.0 + 0.3 * torch.randn(C, dtype=DT)
        b = 0.3 * torch.randn(C, dtype=DT)

        def fn(x, w, b, g=g):
            return F.group_norm(x, g, w, b, eps=GN_EPS)

        y, gy, (gx, gw, gb) = vjp(fn, [x, w, b], True)

        # Independent check of the forward against the formula.
        xg = x.reshape(shape[0], g, -1)
        mu = xg.mean(-1, keepdim=True)
        var = ((xg - mu) ** 2).mean(-1, keepdim=True)
        ref = ((xg - mu) / torch.sqrt(var + GN_EPS)).reshape(shape) * w.view(1, C, 1, 1) + b.view(1, C, 1, 1)
        assert torch.allclose(ref, y, rtol=1e-12, atol=1e-12)
        assert torch.autograd.gradcheck(fn, [t.clone().requires_grad_(True) for t in (x, w, b)])

        for key, t in [("x", x), ("weight", w), ("bias", b), ("y", y), ("gy", gy),
                       ("gx", gx), ("gweight", gw), ("gbias", gb)]:
            tensors[f"{name}.{key}"] = np64(t)
        meta[name] = meta_json({"groups": g, "eps": GN_EPS})
    return tensors, meta


# --------------------------------------------------------------------------
# ADM attention core with interleaved qkv.
#   qkv: [N, 3*C, H, W], C = heads * d, L = H * W.
#   Channel of qkv = head*(3*d) + c*3 + s  (s = 0 q, 1 k, 2 v), i.e. qkv viewed
#   as [N, heads, d, 3, L].
#   w[n,h,i,j] = softmax_j( sum_c q[c,i] k[c,j] / sqrt(d) )
#   a[n,h,c,i] = sum_j w[i,j] v[c,j]
#   output [N, C, H, W] with channel = head*d + c.
# --------------------------------------------------------------------------
ATTN_CASES = [
    # name, N, heads, d, H, W
    ("h1d4", 2, 1, 4, 3, 3),
    ("h2d4", 1, 2, 4, 2, 4),
    ("h2d8", 2, 2, 8, 2, 2),
]


def attention_core(qkv, heads):
    N, C3, H, W = qkv.shape
    C = C3 // 3
    d = C // heads
    L = H * W
    t = qkv.reshape(N, heads, d, 3, L)
    q, k, v = t[:, :, :, 0, :], t[:, :, :, 1, :], t[:, :, :, 2, :]  # each [N, heads, d, L]
    logits = torch.matmul(q.transpose(-1, -2), k) / math.sqrt(d)     # [N, heads, L(i), L(j)]
    w = torch.softmax(logits, dim=-1)                                # over keys j
    a = torch.matmul(v, w.transpose(-1, -2))                         # a[c,i] = sum_j v[c,j] w[i,j]
    return a.reshape(N, C, H, W)                                     # channel = head*d + c


def attention_naive(qkv, heads):
    """Loop-by-loop numpy version of the same description, used only to check
    that attention_core's reshapes implement the stated channel layout."""
    x = qkv.numpy()
    N, C3, H, W = x.shape
    C = C3 // 3
    d = C // heads
    L = H * W
    xf = x.reshape(N, C3, L)
    out = np.zeros((N, C, L))
    for n in range(N):
        for h in range(heads):
            ch = lambda c, s: h * 3 * d + c * 3 + s  # noqa: E731
            q = np.stack([xf[n, ch(c, 0)] for c in range(d)])
            k = np.stack([xf[n, ch(c, 1)] for c in range(d)])
            v = np.stack([xf[n, ch(c, 2)] for c in range(d)])
            for i in range(L):
                s = np.array([sum(q[c, i] * k[c, j] for c in range(d)) for j in range(L)]) / math.sqrt(d)
                e = np.exp(s - s.max())
                wts = e / e.sum()
                for c in range(d):
                    out[n, h * d + c, i] = sum(wts[j] * v[c, j] for j in range(L))
    return out.reshape(N, C, H, W)


def make_attention():
    tensors, meta = {}, file_metadata()
    for i, (name, N, heads, d, H, W) in enumerate(ATTN_CASES):
        torch.manual_seed(3000 + i)
        C = heads * d
        qkv = torch.randn(N, 3 * C, H, W, dtype=DT)

        def fn(qkv, heads=heads):
            return attention_core(qkv, heads)

        y, gy, (gqkv,) = vjp(fn, [qkv], True)
        assert np.allclose(attention_naive(qkv, heads), y.numpy(), rtol=1e-12, atol=1e-12)
        assert torch.autograd.gradcheck(fn, [qkv.clone().requires_grad_(True)])

        for key, t in [("qkv", qkv), ("y", y), ("gy", gy), ("gqkv", gqkv)]:
            tensors[f"{name}.{key}"] = np64(t)
        meta[name] = meta_json({"heads": heads})
    return tensors, meta


def write_and_verify(fname, tensors, meta):
    path = os.path.join(OUT_DIR, fname)
    st_io.save(path, tensors, meta)
    # Read back with our own reader and require exact equality.
    back, back_meta = st_io.load(path)
    assert back_meta == meta, f"{fname}: metadata mismatch"
    assert set(back) == set(tensors), f"{fname}: tensor names mismatch"
    for k, v in tensors.items():
        assert back[k].dtype == np.float64 and back[k].shape == v.shape, k
        assert np.array_equal(back[k], v), k
    # The data region must start on an 8-byte boundary.
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
    assert (8 + n) % 8 == 0
    print(f"wrote {os.path.relpath(path, REPO)}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


def main():
    torch.set_default_dtype(DT)
    os.makedirs(OUT_DIR, exist_ok=True)
    write_and_verify("conv2d.safetensors", *make_conv())
    write_and_verify("groupnorm.safetensors", *make_groupnorm())
    write_and_verify("attention.safetensors", *make_attention())


if __name__ == "__main__":
    main()
