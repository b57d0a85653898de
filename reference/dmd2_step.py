"""Replay of the DMD2 debug state in PyTorch: one DMD2 iteration (generator step + critic step)
recomputed from the file's inputs and compared with every tensor the Swift side recorded.

Written from the project's specification (docs/METHOD.md §2) and the Swift sources
(Sources/DMD2/*.swift, Sources/DMD2Train/AdamW.swift), not from the official DMD2 code. The
contract (keys, draws, tolerances) is docs/DEBUG-STATE.md.

    python3 reference/dmd2_step.py Tests/DMD2Tests/Resources/dmd2_debug_state.safetensors
    python3 reference/dmd2_step.py FILE --dtype float32      # one precision only
    python3 reference/dmd2_step.py FILE --json report.json   # every key's error, both precisions

What is replayed (letters: N batch, σ_max = 80, σ_d = 0.5, K the σ grid, sg stop-gradient):
  x_g    = G(σ_max·z; σ_max, y)                                   recorded through G
  L_DM   = ½·mean((x_g − sg(x_g − g))²),  g = nan_to_num((μ_fake(x_t) − μ_real(x_t))/w),
           x_t = x_g + K[t]·ε,  w = mean_{C,H,W}|x_g − μ_real(x_t)|  (predictions without grad)
  L_G    = mean softplus(−D(x_g + K[t']·ε')),  D = head ∘ μ_fake.encoder (no parameter grad)
  ∂(L_DM + w_G·L_G)/∂x_g on a leaf copy of x_g, then pushed through G (the split at x_g)
  L_fake = mean((1/σ² + 1/σ_d²)·(μ_fake(x + σε; σ, y) − x)²),  x = sg(x_g)
  L_D    = mean softplus(D(x + σ_f ε_f)) + mean softplus(−D(x_real + σ_r ε_r))
  critic gradients of L_fake + w_D·L_D (μ_fake, then the head)
  per optimiser: clip the global norm to maxGradNorm, then torch.optim.AdamW at the warm-up's
  first learning rate lr·min(1, 1/W) — applied to the FILE's gradients (`grad.…`), as the Swift
  replay does, so the update rule is compared independently of the gradients' rounding.

Few-step files (metadata `generator_steps` k > 1, docs/METHOD.md §3) are replayed too: G's input
is step j of the schedule K[t_i] — the rollout of G without grad from σ_0·z (backward
simulation), or x_real + σ_j·ε_j with the real images' classes — and x_g = G(x_j; σ_j, y).

The script runs the step in float32 (the file's precision: the contract) and in float64 (the
same float32 inputs widened: what is left is Swift's Float rounding), compares every key with
max|ours − file| / max|file| against the key's tolerance (inputs 0, updated weights and
learning rates 1e-6, everything else 1e-4), prints the worst keys and exits 1 on any failure.
The functions here (GANHead, generate, the losses, generator_phase, critic_phase) are also what
reference/bench_dmd2.py times.
"""

import argparse
import json
import math
import os
import sys

# Idle OpenMP workers sleep instead of spinning (the machine is shared); read when torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edm_model  # noqa: E402
import st_io  # noqa: E402

FORMAT = "swift-dmd2.dmd2-debug-state"
SIGMA_MAX = 80.0
SIGMA_DATA = edm_model.SIGMA_DATA
# The draws of one iteration, in the order they are drawn (Sources/DMD2/Draws.swift).
DRAWS = ["dm", "gen_gan", "fake", "disc_fake", "disc_real"]
NETWORKS = ["real", "generator", "fake"]


# ---------------------------------------------------------------------------------------------
# σ grid, head, networks.

def sigma_grid(count=1000, sigma_min=0.002, sigma_max=80.0, rho=7.0):
    """K ascending: the Karras schedule from σ_max down to σ_min, reversed (K[0] = σ_min)."""
    return list(reversed(edm_model.karras_sigmas(count, sigma_min, sigma_max, rho)[:-1]))


GRID = sigma_grid()


def grid_sigmas(t):
    """σ = K[t] per image, float64 [N]."""
    return torch.tensor([GRID[int(i)] for i in t], dtype=torch.float64)


def per_image(values, dtype):
    """[N] float64 → [N, 1, 1, 1] rounded once to dtype."""
    return torch.as_tensor(values, dtype=torch.float64).to(dtype).reshape(-1, 1, 1, 1)


class GANHead(nn.Module):
    """DMD2's classifier head on the critic's 8×8 bottleneck [N, Cb, 8, 8] → one logit per image:
    Conv(k4, s2, p1) → GroupNorm → SiLU → Conv(k4, s4, p0) → GroupNorm → SiLU → Conv(Cb → 1, k1).
    Parameter names `cls_pred_branch.{0,1,3,4,6}.{weight,bias}` (positions in the Sequential)."""

    def __init__(self, channels, groups):
        super().__init__()
        self.cls_pred_branch = nn.Sequential(
            nn.Conv2d(channels, channels, 4, stride=2, padding=1),
            nn.GroupNorm(groups, channels, eps=1e-5),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 4, stride=4, padding=0),
            nn.GroupNorm(groups, channels, eps=1e-5),
            nn.SiLU(),
            nn.Conv2d(channels, 1, 1),
        )

    def forward(self, features):
        if features.shape[2:] != (8, 8):
            raise ValueError(f"GANHead: features {list(features.shape)}, expected [N, C, 8, 8]")
        return self.cls_pred_branch(features).reshape(features.shape[0])


def bottleneck_channels(config):
    return config["modelChannels"] * config["channelMult"][-1]


def one_hot(labels, classes, dtype):
    """One-hot rows [N, K]; label −1 gives a zero row."""
    y = torch.zeros(len(labels), classes, dtype=dtype)
    for n, k in enumerate(labels):
        if int(k) != -1:
            y[n, int(k)] = 1
    return y


# ---------------------------------------------------------------------------------------------
# The losses (docs/METHOD.md §2). σ arguments are float64 [N]; ε has the images' shape.

def generate(generator, z, labels):
    """x_g = G(σ_max·z; σ_max, y)."""
    return generator(z * SIGMA_MAX, torch.full((z.shape[0],), SIGMA_MAX, dtype=torch.float64), labels)


def generator_input(step_sigmas, j, previous, noise):
    """Input of step j (docs/METHOD.md §3): σ_0·z for j = 0 without a previous output, else
    previous + σ_j·ε_j; returns (x, σ [N] float64)."""
    N = noise.shape[0]
    sigma = torch.full((N,), step_sigmas[j], dtype=torch.float64)
    x = noise * step_sigmas[0] if previous is None else previous + noise * step_sigmas[j]
    return x, sigma


def rollout(G, step_sigmas, j, z, renoise, labels):
    """Backward simulation / inference: G without grad through steps 0 … j−1 from σ_0·z,
    re-noising with renoise = [ε_1, …]; returns (input of step j, its σ, [x̂_0 … x̂_{j−1}])."""
    x, sigma = generator_input(step_sigmas, 0, None, z)
    outputs = []
    for i in range(j):
        with torch.no_grad():
            x_hat = G(x, sigma, labels)
        outputs.append(x_hat)
        x, sigma = generator_input(step_sigmas, i + 1, x_hat, renoise[i])
    return x, sigma, outputs


def dm_loss(xg, labels, real, fake, sigma, noise):
    """Distribution matching: returns L_DM (differentiable in xg) and its intermediates."""
    x = xg.detach()
    N = x.shape[0]
    CHW = x[0].numel()
    noisy = x + noise * per_image(sigma, x.dtype)
    with torch.no_grad():
        a = real(noisy, sigma, labels)
        b = fake(noisy, sigma, labels)
    w = (x - a).abs().reshape(N, CHW).sum(dim=1) * (1 / CHW)
    g = torch.nan_to_num((b - a) / w.reshape(N, 1, 1, 1))
    loss = F.mse_loss(xg, x - g) * 0.5
    return loss, {"x_t": noisy, "pred_real": a, "pred_fake": b, "normalizer": w, "grad": g}


def discriminator_logits(x, labels, sigma, noise, critic, head):
    """D(x) = head(μ_fake.encoder(x + σ·ε; σ, y)), [N]."""
    return head(critic.encoder_features(x + noise * per_image(sigma, noise.dtype), sigma, labels))


def generator_gan_loss(xg, labels, critic, head, sigma, noise):
    """L_G = mean softplus(−D(x_g + σ'ε')); differentiate it w.r.t. xg only (autograd.grad)."""
    logits = discriminator_logits(xg, labels, sigma, noise, critic, head)
    return F.softplus(-logits).mean(), logits


def fake_critic_loss(x, labels, fake, sigma, noise):
    """L_fake = mean((1/σ² + 1/σ_d²)·(μ_fake(x + σε) − x)²) on detached images x."""
    noisy = x + noise * per_image(sigma, x.dtype)
    pred = fake(noisy, sigma, labels)
    weight = per_image(1 / sigma ** 2 + 1 / SIGMA_DATA ** 2, x.dtype)
    return (weight * (pred - x) ** 2).mean(), noisy, pred


def discriminator_loss(x_fake, fake_labels, x_real, real_labels, critic, head, fake_draw, real_draw):
    """L_D = mean softplus(D(fake)) + mean softplus(−D(real)); draws are (σ, ε)."""
    lf = discriminator_logits(x_fake, fake_labels, *fake_draw, critic, head)
    lr = discriminator_logits(x_real, real_labels, *real_draw, critic, head)
    return F.softplus(lf).mean() + F.softplus(-lr).mean(), lf, lr


def generator_phase(G, real, fake, head, xg, labels, dm_draw, gan_draw, w_gan, timings=None):
    """L_DM + w_G·L_G on a leaf copy of x_g; its gradient w.r.t. x_g pushed through G (leaves
    G's parameter .grad). Returns (total, image gradient, dm dict, L_DM, L_G, gan logits).
    `timings`, when a callable, is called with a phase name at each phase's end."""
    mark = timings or (lambda name: None)
    leaf = xg.detach().requires_grad_(True)
    l_dm, dm = dm_loss(leaf, labels, real, fake, *dm_draw)
    mark("dm_forward")
    l_g, logits = generator_gan_loss(leaf, labels, fake, head, *gan_draw)
    total = l_dm + l_g * w_gan
    (grad_xg,) = torch.autograd.grad(total, leaf)          # no parameter gets a gradient here
    mark("gan_fwd_bwd")
    params = [p for p in G.parameters()]
    grads = torch.autograd.grad(xg, params, grad_xg)       # the chain rule through G
    for p, g in zip(params, grads):
        p.grad = g
    mark("g_backward")
    return total, grad_xg, dm, l_dm, l_g, logits


def critic_phase(fake, head, images, labels, real_images, real_labels, fake_draw, disc_fake_draw, disc_real_draw, w_disc,
                 timings=None):
    """L_fake + w_D·L_D on sg(x_g); leaves μ_fake's and the head's .grad. Returns (total, L_fake,
    fake noisy, fake pred, L_D, logits fake, logits real)."""
    mark = timings or (lambda name: None)
    images = images.detach()
    l_fake, noisy, pred = fake_critic_loss(images, labels, fake, *fake_draw)
    l_d, lf, lr = discriminator_loss(images, labels, real_images, real_labels, fake, head, disc_fake_draw, disc_real_draw)
    total = l_fake + l_d * w_disc
    mark("critic_fwd")
    params = list(fake.parameters()) + list(head.parameters())
    grads = torch.autograd.grad(total, params)
    for p, g in zip(params, grads):
        p.grad = g
    mark("critic_bwd")
    return total, l_fake, noisy, pred, l_d, lf, lr


def warmup_lr(lr, warm_up_steps, t):
    """lr_t at the optimiser's t-th step (t ≥ 1): lr·min(1, t/W) (W = 0: constant)."""
    return lr if warm_up_steps <= 0 or t >= warm_up_steps else lr * t / warm_up_steps


def make_adamw(params, s):
    return torch.optim.AdamW(params, lr=s["learningRate"], betas=(s["beta1"], s["beta2"]), eps=s["eps"],
                             weight_decay=s["weightDecay"])


def clip_and_step(optimizer, params, s, t):
    """Clip the global gradient norm to maxGradNorm, step AdamW at lr_t; returns (norm, lr_t)."""
    norm = torch.nn.utils.clip_grad_norm_(params, s["maxGradNorm"])
    lr_t = warmup_lr(s["learningRate"], s["warmUpSteps"], t)
    for group in optimizer.param_groups:
        group["lr"] = lr_t
    optimizer.step()
    return float(norm), lr_t


# ---------------------------------------------------------------------------------------------
# Replay.

def tolerance(key):
    """The contract's tolerance for a key (DebugState.tolerance(forKey:))."""
    if key.startswith("input.") or any(key.startswith(p + ".model.") for p in NETWORKS) or key.startswith("head."):
        return 0.0
    if key.startswith("updated.") or key.startswith("lr."):
        return 1e-6
    return 1e-4


def load_network(config, tensors, prefix, dtype):
    """A Denoiser with the file's `prefix.model.…` weights; every parameter must be there."""
    net = edm_model.Denoiser(config).to(dtype)
    names = [n for n, _ in net.named_parameters()]
    keys = sorted(k[len(prefix) + 1:] for k in tensors if k.startswith(prefix + ".model."))
    if sorted(names) != keys:
        raise ValueError(f"'{prefix}.' keys differ from the network's parameters: "
                         f"{sorted(set(names) ^ set(keys))[:10]}")
    with torch.no_grad():
        for n, p in net.named_parameters():
            v = tensors[f"{prefix}.{n}"]
            if list(v.shape) != list(p.shape):
                raise ValueError(f"'{prefix}.{n}' has shape {list(v.shape)}, the network {list(p.shape)}")
            p.copy_(torch.tensor(np.asarray(v)).to(dtype))
    return net


# Deliberate mistakes (--mutations): each must make some key fail, or the comparison is blind to it.
MUTATIONS = {
    "no-generator-gan": "L_G left out of the generator loss (w_G = 0)",
    "no-discriminator": "L_D left out of the critic loss (w_D = 0)",
    "grid-off-by-one": "σ = K[t + 1] instead of K[t]",
    "head-groups-1": "the head's GroupNorm with 1 group",
    "no-weight-decay": "AdamW without weight decay",
    "no-warm-up": "the first step at the full learning rate",
    "no-clipping": "gradients not clipped",
}


def replay(tensors, meta, dtype, mutation=None):
    """Every key of the debug state recomputed at `dtype` (numpy float64/int64 arrays);
    `mutation` (a MUTATIONS key) replays with that mistake."""
    if meta.get("format") != FORMAT:
        raise ValueError(f"metadata 'format' is {meta.get('format')!r}, expected {FORMAT!r}")
    config, s = json.loads(meta["config"]), json.loads(meta["settings"])
    s.update({"no-generator-gan": {"ganWeightGenerator": 0.0}, "no-discriminator": {"ganWeightCritic": 0.0},
              "no-weight-decay": {"weightDecay": 0.0}, "no-warm-up": {"warmUpSteps": 0},
              "no-clipping": {"maxGradNorm": math.inf}}.get(mutation, {}))
    config["dropout"] = 0.0                                  # DMD2 networks run without dropout
    # Copies, never views: clipping scales .grad in place, and the file's arrays are the reference.
    T = lambda k: torch.tensor(np.asarray(tensors[k])).to(dtype)  # noqa: E731
    ints = lambda k: [int(v) for v in np.asarray(tensors[k])]  # noqa: E731
    out = {}

    nets = {n: load_network(config, tensors, n, dtype) for n in NETWORKS}
    for p in nets["real"].parameters():
        p.requires_grad_(False)
    Cb, groups = bottleneck_channels(config), int(meta["head_groups"])
    if groups != edm_model.group_count(Cb):
        raise ValueError(f"head_groups {groups}, ADM's rule gives {edm_model.group_count(Cb)} for {Cb} channels")
    head = GANHead(Cb, 1 if mutation == "head-groups-1" else groups).to(dtype)
    with torch.no_grad():
        for n, p in head.named_parameters():
            p.copy_(T("head." + n))
    for prefix, module in list(nets.items()) + [("head", head)]:
        for n, p in module.named_parameters():
            out[f"{prefix}.{n}"] = p.detach().clone()

    # Inputs: copied, except what follows from them (one-hot rows, σ = K[t]).
    K = config["labelDim"]
    labels_idx, real_idx = ints("input.labels"), ints("input.real_labels")
    labels, real_labels = one_hot(labels_idx, K, dtype), one_hot(real_idx, K, dtype)
    z, real_images = T("input.z"), T("input.real_images")
    out.update({"input.z": z, "input.real_images": real_images,
                "input.labels": torch.tensor(labels_idx), "input.real_labels": torch.tensor(real_idx),
                "input.labels_onehot": labels, "input.real_labels_onehot": real_labels})
    draws = {}
    for d in DRAWS:
        t = ints(f"input.{d}.t")
        sigma, noise = grid_sigmas([i + 1 for i in t] if mutation == "grid-off-by-one" else t), T(f"input.{d}.noise")
        lo, hi = (s["dmMinStep"], s["dmMaxStep"]) if d == "dm" else (0, len(GRID) - 1)
        if not all(lo <= i <= hi for i in t):
            raise ValueError(f"input.{d}.t = {t} outside {lo}…{hi}")
        draws[d] = (sigma, noise)
        out.update({f"input.{d}.t": torch.tensor(t), f"input.{d}.sigma": sigma, f"input.{d}.noise": noise})

    G, real, fake = nets["generator"], nets["real"], nets["fake"]
    # The generator's input: σ_max·z (one step), or step j of a k-step schedule (docs/METHOD.md §3).
    indices = json.loads(meta.get("generator_sigma_indices", "[999]"))
    step_sigmas = [GRID[i] for i in indices]
    j, renoise, backward = 0, [], True
    if len(indices) > 1:
        j = ints("input.fewstep.step")[0]
        renoise = [T(f"input.fewstep.noise.{i}") for i in range(1, len(indices))]
        backward = meta.get("backward_simulation", "true") == "true"
        out.update({"input.fewstep.step": torch.tensor([j]), "input.fewstep.sigma_index": torch.tensor(indices),
                    "input.fewstep.sigma": torch.tensor(step_sigmas, dtype=torch.float64)})
        out.update({f"input.fewstep.noise.{i + 1}": e for i, e in enumerate(renoise)})
    if backward:
        x_in, sigma_in, outputs = rollout(G, step_sigmas, j, z, renoise, labels)
    else:                                   # noised real images; G (and every loss) reads their classes
        labels = real_labels
        x_in, sigma_in = generator_input(step_sigmas, j, real_images, z if j == 0 else renoise[j - 1])
        outputs = []
    if len(indices) > 1:
        out["fewstep.input"], out["fewstep.input_sigma"] = x_in, sigma_in
        out.update({f"fewstep.x_hat.{i}": x for i, x in enumerate(outputs)})
    # Generator phase.
    xg = G(x_in, sigma_in, labels)
    total, grad_xg, dm, l_dm, l_g, gan_logits = generator_phase(G, real, fake, head, xg, labels, draws["dm"],
                                                                draws["gen_gan"], s["ganWeightGenerator"])
    out["gen.x_g"], out["gen.grad_x_g"] = xg.detach(), grad_xg
    for k, v in dm.items():
        out["dm." + k] = v
    out["gen_gan.logits"] = gan_logits.detach()
    out["loss.dm"], out["loss.gen_gan"], out["loss.generator"] = l_dm.detach(), l_g.detach(), total.detach()
    # Critic phase on sg(x_g).
    c_total, l_fake, noisy, pred, l_d, lf, lr = critic_phase(
        fake, head, xg, labels, real_images, real_labels, draws["fake"], draws["disc_fake"], draws["disc_real"],
        s["ganWeightCritic"])
    out.update({"fake.x_t": noisy, "fake.pred": pred.detach(), "disc.logits_fake": lf.detach(),
                "disc.logits_real": lr.detach(), "loss.fake": l_fake.detach(), "loss.disc": l_d.detach(),
                "loss.critic": c_total.detach()})
    groups_ = {"generator": G, "fake": fake, "head": head}
    for prefix, module in groups_.items():
        for n, p in module.named_parameters():
            out[f"grad.{prefix}.{n}"] = p.grad.detach().clone()

    # Optimiser steps from the file's own gradients (set just before clipping).
    for prefix, module in groups_.items():
        for n, p in module.named_parameters():
            p.grad = T(f"grad.{prefix}.{n}")
    for name, params in [("generator", list(G.parameters())), ("critic", list(fake.parameters()) + list(head.parameters()))]:
        norm, lr_t = clip_and_step(make_adamw(params, s), params, s, t=1)
        out[f"grad_norm.{name}"], out[f"lr.{name}"] = torch.tensor(norm, dtype=torch.float64), torch.tensor(lr_t, dtype=torch.float64)
    for prefix, module in groups_.items():
        for n, p in module.named_parameters():
            out[f"updated.{prefix}.{n}"] = p.detach().clone()
    return {k: v.detach().to(torch.float64 if v.is_floating_point() else torch.int64).numpy() for k, v in out.items()}


def compare(ours, theirs):
    """[(key, error, tolerance)] over the file's keys; keys missing on either side raise."""
    missing = sorted(set(ours) ^ set(theirs))
    if missing:
        raise ValueError(f"keys differ between the file and the replay: {missing[:10]}")
    rows = []
    for key in sorted(theirs):
        a, b = np.asarray(ours[key], dtype=np.float64), np.asarray(theirs[key], dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(f"'{key}' has shape {list(b.shape)} in the file, {list(a.shape)} in the replay")
        scale = max(float(np.abs(b).max()) if b.size else 0.0, 1e-30)
        err = float(np.abs(a - b).max()) / scale if a.size else 0.0
        rows.append((key, math.inf if math.isnan(err) else err, tolerance(key)))
    return rows


def group_of(key):
    if tolerance(key) == 0:
        return "inputs"
    return key.split(".")[0]


def report(rows, label, top):
    failed = [r for r in rows if r[1] > r[2]]
    print(f"\n== {label}: {len(rows)} keys, {len(failed)} over tolerance")
    worst = {}
    for key, err, tol in rows:
        g = group_of(key)
        if g not in worst or err > worst[g][1]:
            worst[g] = (key, err, tol)
    print(f"   {'group':<10} {'worst key':<52} {'max|a-b|/max|b|':>16} {'tolerance':>10}")
    for g in sorted(worst):
        key, err, tol = worst[g]
        print(f"   {g:<10} {key:<52} {err:16.3e} {tol:10.0e}")
    for tol_class, what in [(1e-4, "computed"), (1e-6, "updated weights and learning rates")]:
        ranked = sorted((r for r in rows if r[2] == tol_class), key=lambda r: r[1], reverse=True)[:top]
        print(f"   worst {len(ranked)} {what} (tolerance {tol_class:.0e}):")
        for key, err, tol in ranked:
            print(f"   {'FAIL' if err > tol else 'ok':<4} {key:<58} {err:12.3e}")
    for key, err, tol in failed:
        if tol == 0:
            print(f"   FAIL {key:<58} {err:12.3e} (input, must be exact)")
    return failed


def main():
    p = argparse.ArgumentParser(description="Replay a DMD2 debug state in PyTorch (see the module docstring)")
    p.add_argument("file", help="debug-state safetensors (dmd2 distill --debug-state FILE)")
    p.add_argument("--dtype", choices=["float32", "float64", "both"], default="both")
    p.add_argument("--top", type=int, default=8, help="how many of the worst keys of each tolerance class to list")
    p.add_argument("--json", metavar="PATH", help="write every key's error and tolerance as JSON")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--mutations", action="store_true",
                   help="also replay (float32) with each deliberate mistake of MUTATIONS and check that each is caught")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    tensors, meta = st_io.load(a.file)
    print(f"{a.file}: {len(tensors)} tensors; config {meta.get('config')}; head_groups {meta.get('head_groups')}")
    print(f"settings {meta.get('settings')}; torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    failed_any, dump = False, {}
    for dt in (["float32", "float64"] if a.dtype == "both" else [a.dtype]):
        rows = compare(replay(tensors, meta, getattr(torch, dt)), tensors)
        failed_any |= bool(report(rows, f"PyTorch {dt} vs the file", a.top))
        dump[dt] = {k: {"error": e, "tolerance": t} for k, e, t in rows}
    if a.mutations:
        print("\n== mutations (float32): each deliberate mistake must put some key over its tolerance")
        for name, what in MUTATIONS.items():
            rows = compare(replay(tensors, meta, torch.float32, mutation=name), tensors)
            bad = sorted((r for r in rows if r[1] > r[2]), key=lambda r: r[1] / max(r[2], 1e-300), reverse=True)
            caught = bool(bad)
            failed_any |= not caught
            first = f"{len(bad)} keys, e.g. {bad[0][0]} {bad[0][1]:.2e}" if caught else "NOT CAUGHT"
            print(f"   {'caught' if caught else 'MISSED':<7} {name:<18} {what:<52} {first}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dump, f, indent=1, sort_keys=True)
    print("\nFAILED" if failed_any else "\nOK: every key within its tolerance")
    sys.exit(1 if failed_any else 0)


if __name__ == "__main__":
    main()
