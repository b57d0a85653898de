"""Check a PyTorch implementation against the goldens of `dmd2 export-goldens --out DIR`.

    python3 reference/run_goldens.py DIR                       # float64 on the CPU
    python3 reference/run_goldens.py DIR --device cuda         # on a GPU
    python3 reference/run_goldens.py DIR --dtype float32       # Float tolerances (u = 2^-24)
    python3 reference/run_goldens.py DIR --only gemm,conv2d    # some files

Every primitive, every op (forward, and the input gradients of <seed, y> by autograd) and the
whole UNet (reference/edm_model.py: F and the gradients of <seed, F> for x and every parameter)
are recomputed in PyTorch from the stored inputs and compared with the stored outputs:

    |got - golden| <= rho * u * sqrt(K) * max|golden|     per tensor, elementwise
    rho = 64, u = 2^-53 (float64) or 2^-24 (float32), K = the case's reductionLength;
    K = 0 (data movement) means bitwise equality; NaN matches NaN.

Prints one line per case (worst error/tolerance: < 1 passes) and a pass/fail table per file;
exits 1 if anything fails. The file layout is in docs/BACKENDS.md. Our own code, written from
the primitives' formulas (Sources/DMD2Core/Backend/ReferenceBackend.swift), not from EDM/DMD2.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st_io  # noqa: E402
import edm_model  # noqa: E402

RHO = 64.0
UNIT_ROUNDOFF = {torch.float64: 2.0 ** -53, torch.float32: 2.0 ** -24}


class Context:
    def __init__(self, device, dtype):
        self.device = device
        self.dtype = dtype

    def t(self, array):
        """A stored array as a tensor of the run's dtype on the run's device."""
        return torch.as_tensor(np.asarray(array), dtype=self.dtype, device=self.device)


def compare(got, golden, K, dtype):
    """(worst error/tolerance ratio, message) for one tensor under the rule above."""
    got = got.detach().to("cpu", torch.float64).numpy().reshape(-1)
    golden = np.asarray(golden, dtype=np.float64).reshape(-1)
    if got.shape != golden.shape:
        return math.inf, f"{got.size} values vs {golden.size} in the golden"
    finite = golden[np.isfinite(golden)]
    scale = max(float(np.max(np.abs(finite))) if finite.size else 0.0, 1e-30)
    tol = 0.0 if K == 0 else RHO * UNIT_ROUNDOFF[dtype] * math.sqrt(K) * scale
    same = (got == golden) | (np.isnan(got) & np.isnan(golden))
    with np.errstate(invalid="ignore"):
        err = np.where(same, 0.0, np.abs(got - golden))
    err = np.where(np.isnan(err), np.inf, err)
    worst = int(np.argmax(err)) if err.size else 0
    e = float(err[worst]) if err.size else 0.0
    ratio = 0.0 if e == 0 else (math.inf if tol == 0 else e / tol)
    msg = f"worst at {worst}: {got[worst] if got.size else ''} vs {golden[worst] if golden.size else ''} (error {e:.3g}, tolerance {tol:.3g})"
    return ratio, msg


# ---------------------------------------------------------------------------------------------
# Primitives (formulas: Sources/DMD2Core/Backend/Backend.swift and ReferenceBackend.swift).

UNARY = {
    "neg": lambda x: -x, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt, "square": lambda x: x * x,
    "abs": torch.abs, "sign": torch.sign, "sigmoid": torch.sigmoid, "silu": F.silu,
    "softplus": lambda x: torch.clamp(x, min=0) + torch.log1p(torch.exp(-x.abs())),
    "tanh": torch.tanh, "sin": torch.sin, "cos": torch.cos,
}

BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
    "maximum": lambda a, b: torch.where(b >= a, b, a), "minimum": lambda a, b: torch.where(b < a, b, a),
    # VJPs of unary ops: a = the op's input x, b = upstream g.
    "sigmoidBackward": lambda x, g: torch.sigmoid(x) * torch.sigmoid(-x) * g,
    "siluBackward": lambda x, g: g * torch.sigmoid(x) * (1 + x * torch.sigmoid(-x)),
    "softplusBackward": lambda x, g: torch.sigmoid(x) * g,
    "tanhBackward": lambda x, g: (1 - torch.tanh(x) ** 2) * g,
}


def strided(flat, rows, cols, ld):
    """The [rows, cols] matrix whose rows start ld apart in `flat`."""
    return torch.as_strided(flat, (rows, cols), (ld, 1))


def prim_gemm(c, p, i):
    m, n, k = p["m"], p["n"], p["k"]
    A, B, C = i["A"], i["B"], i["C"].clone()
    a = strided(A, k, m, p["lda"]).T if p["transA"] else strided(A, m, k, p["lda"])
    b = strided(B, n, k, p["ldb"]).T if p["transB"] else strided(B, k, n, p["ldb"])
    out = strided(C, m, n, p["ldc"])
    product = a @ b if k > 0 else torch.zeros(m, n, dtype=C.dtype, device=C.device)
    out.copy_(p["alpha"] * product + (p["beta"] * out if p["beta"] != 0 else 0))
    return {"C": C}


def prim_unary(c, p, i):
    return {"y": UNARY[p["op"]](i["x"])}


def prim_binary(c, p, i):
    return {"y": BINARY[p["op"]](i["a"], i["b"])}


def prim_affine(c, p, i):
    return {"y": p["scale"] * i["x"] + p["shift"]}


def prim_nanToNum(c, p, i):
    return {"y": torch.nan_to_num(i["x"], nan=p["nan"], posinf=p["posInf"], neginf=p["negInf"])}


def prim_sumAxis(c, p, i):
    return {"y": i["x"].reshape(p["outer"], p["reduced"], p["inner"]).sum(dim=1)}


def prim_sum(c, p, i):
    return {"y": i["x"].sum()}


def prim_dot(c, p, i):
    return {"y": (i["a"] * i["b"]).sum()}


def prim_permute(c, p, i):
    return {"y": i["x"].reshape(p["shape"]).permute(*p["permutation"]).contiguous()}


def prim_broadcast(c, p, i):
    return {"y": i["x"].reshape(p["shape"]).expand(*p["outShape"]).contiguous()}


def prim_copyRows(c, p, i):
    y = i["y"].clone()
    for r in range(p["rows"]):
        xo, yo = r * p["xStride"] + p["xOffset"], r * p["yStride"] + p["yOffset"]
        y[yo:yo + p["count"]] = i["x"][xo:xo + p["count"]]
    return {"y": y}


def _conv_geometry(p):
    C, H, W, k, s, pad = p["C"], p["H"], p["W"], p["kernel"], p["stride"], p["padding"]
    Ho, Wo = (H + 2 * pad - k) // s + 1, (W + 2 * pad - k) // s + 1
    return C, H, W, k, s, pad, Ho * Wo


def prim_im2col(c, p, i):
    # col[(c·k + u)·k + v, i·Wo + j] = x[c, i·s + u − p, j·s + v − p]: F.unfold's layout.
    C, H, W, k, s, pad, L = _conv_geometry(p)
    col = i["col"].clone().reshape(-1)
    unfolded = F.unfold(i["x"].reshape(1, C, H, W), k, padding=pad, stride=s)[0]
    strided(col, C * k * k, L, p["ldcol"]).copy_(unfolded)
    return {"col": col}


def prim_col2im(c, p, i):
    C, H, W, k, s, pad, L = _conv_geometry(p)
    col = strided(i["col"].reshape(-1), C * k * k, L, p["ldcol"])
    folded = F.fold(col.unsqueeze(0), (H, W), k, padding=pad, stride=s)[0]
    return {"x": i["x"].reshape(C, H, W) + folded}


def prim_conv2dDirect(c, p, i):
    N, C, H, W, O, k = p["N"], p["C"], p["H"], p["W"], p["O"], p["kernel"]
    x, w = i["x"].reshape(N, C, H, W), i["weight"].reshape(O, C, k, k)
    return {"y": F.conv2d(x, w, i.get("bias"), stride=p["stride"], padding=p["padding"])}


def prim_conv2dDirectBackwardData(c, p, i):
    N, C, H, W, O, k = p["N"], p["C"], p["H"], p["W"], p["O"], p["kernel"]
    w = i["weight"].reshape(O, C, k, k)
    Ho, Wo = (H + 2 * p["padding"] - k) // p["stride"] + 1, (W + 2 * p["padding"] - k) // p["stride"] + 1
    dy = i["dy"].reshape(N, O, Ho, Wo)
    return {"dx": torch.nn.grad.conv2d_input((N, C, H, W), w, dy, stride=p["stride"], padding=p["padding"])}


def prim_conv2dDirectBackwardWeight(c, p, i):
    N, C, H, W, O, k = p["N"], p["C"], p["H"], p["W"], p["O"], p["kernel"]
    x = i["x"].reshape(N, C, H, W)
    Ho, Wo = (H + 2 * p["padding"] - k) // p["stride"] + 1, (W + 2 * p["padding"] - k) // p["stride"] + 1
    dy = i["dy"].reshape(N, O, Ho, Wo)
    return {"dweight": torch.nn.grad.conv2d_weight(x, (O, C, k, k), dy, stride=p["stride"], padding=p["padding"])}


def prim_avgPool2x2(c, p, i):
    return {"y": F.avg_pool2d(i["x"].reshape(1, p["planes"], p["H"], p["W"]), 2)[0]}


def prim_avgPool2x2Backward(c, p, i):
    dy = i["dy"].reshape(p["planes"], p["H"] // 2, p["W"] // 2)
    return {"dx": 0.25 * dy.repeat_interleave(2, 1).repeat_interleave(2, 2)}


def prim_upsampleNearest2x(c, p, i):
    x = i["x"].reshape(p["planes"], p["H"], p["W"])
    return {"y": x.repeat_interleave(2, 1).repeat_interleave(2, 2)}


def prim_upsampleNearest2xBackward(c, p, i):
    dy = i["dy"].reshape(p["planes"], p["H"], 2, p["W"], 2)
    return {"dx": dy.sum(dim=(2, 4))}


def prim_groupNorm(c, p, i):
    N, C, L, G = p["N"], p["C"], p["L"], p["groups"]
    x = i["x"].reshape(N, C, L)
    xg = x.reshape(N, G, -1)
    mean = xg.mean(dim=2)
    var = ((xg - mean[..., None]) ** 2).mean(dim=2)
    rstd = 1 / torch.sqrt(var + p["eps"])
    y = F.group_norm(x, G, i["gamma"], i["beta"], eps=p["eps"])
    return {"y": y, "mean": mean, "rstd": rstd}


def prim_groupNormBackward(c, p, i):
    N, C, L, G = p["N"], p["C"], p["L"], p["groups"]
    x = i["x"].reshape(N, C, L).clone().requires_grad_(True)
    gamma = i["gamma"].clone().requires_grad_(True)
    beta = torch.zeros_like(gamma, requires_grad=True)
    y = F.group_norm(x, G, gamma, beta, eps=p["eps"])
    dx, dgamma, dbeta = torch.autograd.grad(y, [x, gamma, beta], i["dy"].reshape(N, C, L))
    return {"dx": dx, "dGamma": dgamma, "dBeta": dbeta}


def prim_groupNormSiLU(c, p, i):
    N, C, L, G = p["N"], p["C"], p["L"], p["groups"]
    out = prim_groupNorm(c, p, {"x": i["x"], "gamma": None, "beta": None})
    z = out["y"] * i["scale"].reshape(N, C, 1) + i["shift"].reshape(N, C, 1)
    return {"y": F.silu(z), "mean": out["mean"], "rstd": out["rstd"]}


def prim_groupNormSiLUBackward(c, p, i):
    N, C, L, G = p["N"], p["C"], p["L"], p["groups"]
    x = i["x"].reshape(N, C, L).clone().requires_grad_(True)
    scale = i["scale"].reshape(N, C, 1).clone().requires_grad_(True)
    shift = i["shift"].reshape(N, C, 1).clone().requires_grad_(True)
    y = F.silu(F.group_norm(x, G, eps=p["eps"]) * scale + shift)
    dx, dscale, dshift = torch.autograd.grad(y, [x, scale, shift], i["dy"].reshape(N, C, L))
    return {"dx": dx, "dScale": dscale.reshape(N, C), "dShift": dshift.reshape(N, C)}


def prim_softmaxRows(c, p, i):
    return {"y": torch.softmax(i["x"].reshape(p["rows"], p["cols"]), dim=1)}


def prim_softmaxRowsBackward(c, p, i):
    y, dy = i["y"].reshape(p["rows"], p["cols"]), i["dy"].reshape(p["rows"], p["cols"])
    return {"dx": y * (dy - (dy * y).sum(dim=1, keepdim=True))}


# ---------------------------------------------------------------------------------------------
# Ops (Sources/DMD2Ops): forward from inputs (in the golden's order) and parameters.

def _sum(x, p, mean=False):
    axes = p["axes"]
    f = torch.mean if mean else torch.sum
    if axes is None:
        return f(x)
    return f(x, dim=tuple(axes), keepdim=p["keepingDims"])


def _nan_to_num(x, p):
    # torch.nan_to_num's gradient is grad·isfinite(x), as the Swift op's.
    return torch.nan_to_num(x, nan=p["nan"], posinf=p["posInf"], neginf=p["negInf"])


OPS = {
    "add": lambda p, a, b: a + b, "sub": lambda p, a, b: a - b, "mul": lambda p, a, b: a * b, "div": lambda p, a, b: a / b,
    "addScalar": lambda p, x: x + p["c"], "mulScalar": lambda p, x: x * p["c"],
    "neg": lambda p, x: -x, "exp": lambda p, x: torch.exp(x), "log": lambda p, x: torch.log(x),
    "sqrt": lambda p, x: torch.sqrt(x), "square": lambda p, x: x * x, "abs": lambda p, x: torch.abs(x),
    "sigmoid": lambda p, x: torch.sigmoid(x), "silu": lambda p, x: F.silu(x), "softplus": lambda p, x: F.softplus(x),
    "tanh": lambda p, x: torch.tanh(x),
    "sum": lambda p, x: _sum(x, p), "mean": lambda p, x: _sum(x, p, mean=True),
    "matmul": lambda p, a, b: a @ b, "linear": lambda p, x, w, b: F.linear(x, w, b),
    "conv2d": lambda p, x, w, b: F.conv2d(x, w, b, stride=p["stride"], padding=p["padding"]),
    "avgPool2x2": lambda p, x: F.avg_pool2d(x, 2),
    "upsampleNearest2x": lambda p, x: x.repeat_interleave(2, 2).repeat_interleave(2, 3),
    "groupNorm": lambda p, x, w, b: F.group_norm(x, p["groups"], w, b, eps=p["eps"]),
    "groupNormSiLU": lambda p, x, s, t: F.silu(F.group_norm(x, p["groups"], eps=p["eps"]) * s[:, :, None, None] + t[:, :, None, None]),
    "softmax": lambda p, x: torch.softmax(x, dim=p["axis"]),
    "attention": lambda p, qkv: edm_model.attention_core(qkv, p["heads"]),
    "reshape": lambda p, x: x.reshape(p["shape"]), "permute": lambda p, x: x.permute(*p["permutation"]),
    "concat": lambda p, a, b: torch.cat([a, b], dim=p["axis"]),
    "slice": lambda p, x: x.narrow(p["axis"], p["start"], p["end"] - p["start"]),
    "sinusoidalEmbedding": lambda p, c: _sinusoidal(c, p),
    "dropout": lambda p, x, mask: x * mask / (1 - p["p"]),
    "nanToNum": lambda p, x: _nan_to_num(x, p),
    "mseLoss": lambda p, x, t: ((x - t) ** 2).mean(),
    "weightedMSELoss": lambda p, x, t, w: (w * (x - t) ** 2).mean(),
    "softplusLoss": lambda p, x: F.softplus(x).mean(),
    "softmaxCrossEntropy": lambda p, z: F.cross_entropy(z, torch.tensor(p["labels"], device=z.device)),
}


def _sinusoidal(c, p):
    H = p["channels"] // 2
    f = torch.tensor([(1 / p["maxPeriod"]) ** (j / H) for j in range(H)], dtype=torch.float64).to(c.dtype).to(c.device)
    angle = c[:, None] * f[None, :]
    return torch.cat([torch.cos(angle), torch.sin(angle)], dim=1)


def run_op(ctx, name, case, tensors, meta):
    inputs = [ctx.t(tensors[f"{case}.in.{n}"]).requires_grad_(n in meta["grads"]) for n in meta["inputs"]]
    y = OPS[name](meta["parameters"], *inputs)
    results = {"out.y": y}
    wanted = [x for n, x in zip(meta["inputs"], inputs) if n in meta["grads"]]
    if wanted:
        seed = ctx.t(tensors[f"{case}.seed.y"]).reshape(y.shape)
        grads = torch.autograd.grad(y, wanted, seed, allow_unused=True)
        for n, g in zip(meta["grads"], grads):
            results[f"grad.{n}"] = g if g is not None else torch.zeros_like(inputs[meta["inputs"].index(n)])
    return results


def run_primitive(ctx, name, case, tensors, meta):
    inputs = {n: ctx.t(tensors[f"{case}.in.{n}"]) for n in meta["inputs"]}
    out = globals()[f"prim_{name}"](ctx, meta["parameters"], inputs)
    return {f"out.{k}": v for k, v in out.items()}


def run_unet(ctx, tensors, meta):
    config = json.loads(meta["config"])
    net = edm_model.ADMUNet(config).to(ctx.device, ctx.dtype)
    names = [k[len("weight.model."):] for k in tensors if k.startswith("weight.model.")]
    state = {n: ctx.t(tensors[f"weight.model.{n}"]) for n in names}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or any(not m.endswith("resample_filter") for m in missing):
        raise ValueError(f"UNet weights do not match edm_model.ADMUNet: missing {missing}, unexpected {unexpected}")
    x = ctx.t(tensors["in.x"]).requires_grad_(True)
    labels = ctx.t(tensors["in.class_labels"]) if "in.class_labels" in tensors else None
    Fx = net(x, ctx.t(tensors["in.noise_labels"]), labels)
    params = [p for _, p in net.named_parameters()]
    grads = torch.autograd.grad(Fx, [x] + params, ctx.t(tensors["seed.F"]))
    results = {"out.F": Fx, "grad.x": grads[0]}
    for (name, _), g in zip(net.named_parameters(), grads[1:]):
        results[f"grad.model.{name}"] = g
    return results


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", help="the folder written by `dmd2 export-goldens --out`")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--only", default="", help="comma-separated file names (gemm,conv2d,small16,…)")
    ap.add_argument("--verbose", action="store_true", help="print every case")
    args = ap.parse_args()
    torch.manual_seed(0)
    ctx = Context(torch.device(args.device), getattr(torch, args.dtype))
    with open(os.path.join(args.folder, "manifest.json")) as f:
        manifest = json.load(f)
    if manifest.get("format") != "swift-dmd2-goldens" or manifest.get("version") != 1:
        sys.exit(f"{args.folder}/manifest.json is not a version-1 swift-dmd2 goldens manifest")
    only = set(filter(None, args.only.split(",")))
    print(f"goldens: {args.folder} (written by {manifest['generator']} on backend {manifest['backend']}); "
          f"PyTorch {torch.__version__} on {args.device}, {args.dtype}; rule {manifest['tolerance']['rule']}")
    rows, failures = [], 0
    for entry in manifest["files"]:
        if only and entry["name"] not in only:
            continue
        tensors, meta = st_io.load(os.path.join(args.folder, entry["path"]))
        worst, failed, compared = 0.0, [], 0
        for case in entry["cases"]:
            try:
                if entry["kind"] == "unet":
                    got = run_unet(ctx, tensors, meta)
                    K = int(meta["reductionLength"])
                    expected = {k: v for k, v in tensors.items() if k.startswith(("out.", "grad."))}
                else:
                    cmeta = json.loads(meta[case])
                    K = cmeta["reductionLength"]
                    runner = run_primitive if entry["kind"] == "primitive" else run_op
                    got = runner(ctx, entry["name"], case, tensors, cmeta)
                    expected = {k[len(case) + 1:]: v for k, v in tensors.items()
                                if k.startswith(case + ".out.") or k.startswith(case + ".grad.")}
            except Exception as e:  # report and carry on with the other files
                failed.append(f"{case}: {type(e).__name__}: {e}")
                continue
            if set(got) != set(expected):
                failed.append(f"{case}: computed {sorted(set(got) - set(expected))}, missing {sorted(set(expected) - set(got))}")
            for key in sorted(set(got) & set(expected)):
                ratio, msg = compare(got[key], expected[key], K, ctx.dtype)
                compared += 1
                worst = max(worst, ratio)
                if not ratio <= 1:
                    failed.append(f"{case} {key}: {msg}")
                if args.verbose:
                    print(f"  {entry['path']} {case} {key}: err/tol {ratio:.3g}")
        failures += len(failed)
        rows.append((entry["kind"], entry["name"], len(entry["cases"]), compared, worst, "PASS" if not failed else "FAIL"))
        for f in failed:
            print(f"FAIL {entry['path']} {f}")
    print()
    print(f"{'kind':<10} {'file':<28} {'cases':>5} {'tensors':>7} {'worst err/tol':>14}  result")
    for kind, name, cases, compared, worst, result in rows:
        print(f"{kind:<10} {name:<28} {cases:>5} {compared:>7} {worst:>14.3g}  {result}")
    passed = sum(1 for r in rows if r[-1] == "PASS")
    print(f"\n{passed}/{len(rows)} files pass, {failures} failing checks")
    if manifest.get("ops_without_golden"):
        print(f"ops without a golden: {manifest['ops_without_golden']}")
    step = manifest.get("dmd2_step", {})
    if step.get("path"):
        # The DMD2 step has its own key layout and tolerances (docs/DEBUG-STATE.md): replay it
        # with dmd2_step.py, our PyTorch port of the method, and count it as one more file.
        import subprocess
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dmd2_step.py")
        path = os.path.join(args.folder, step["path"])
        result = subprocess.run([sys.executable, script, path], capture_output=True, text=True)
        last = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
        print(f"dmd2_step: {step['path']}: {'PASS' if result.returncode == 0 else 'FAIL'} ({last})")
        if result.returncode != 0:
            failures += 1
            print(result.stdout[-2000:] + result.stderr[-2000:])
    else:
        print(f"dmd2_step: not written ({step.get('note', '')})")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
