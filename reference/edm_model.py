"""Our own PyTorch ADM UNet ("DhariwalUNet" in EDM) with EDM's preconditioning, training
loss and Heun sampler — the independent reference the Swift EDM module is checked against.

Written from the project's specification (docs/ARCHITECTURE-ADM.md and docs/METHOD.md
§1), not from the official EDM/DMD2 code. Module and parameter names follow EDM's checkpoint
interface, so `Denoiser(config).state_dict()` has exactly the keys, shapes and order of EDM's
state dict (`model.map_layer0.weight`, …, the `resample_filter` buffers included); running this
file checks that against the published listings (`python3 reference/edm_model.py`).

Configs are dicts with the Swift `UNetConfig` field names (resolution, inChannels, outChannels,
labelDim, modelChannels, channelMult, channelMultEmb, numBlocks, attnResolutions, dropout,
labelDropout), so a config round-trips through checkpoint metadata unchanged.

Letters: N batch, C channels, R resolution, E embedding width, K classes, M model channels.
  D(x; σ, y) = c_skip·x + c_out·F(c_in·x, c_noise, y)                        (Precond)
  F:  e = [cos(c_noise·f), sin(c_noise·f)], f_j = (1/10⁴)^(j/(M/2))          [N, M]
      e = map_layer1(SiLU(map_layer0(e))) + map_label(y);  emb = SiLU(e)      [N, E]
      encoder (skips pushed), decoder (skips popped and concatenated, x first),
      out_conv(SiLU(out_norm(h)))                                             [N, C, R, R]
  block: h = conv0(resample(SiLU(norm0(x)))); (scale, shift) = affine(emb);
         h = conv1(dropout(SiLU(shift + norm1(h)·(scale + 1)))) + skip(x);
         with attention h = h + proj(attention(qkv(norm2(h)))).
"""

import json
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LISTINGS = os.path.join(REPO, "Tests", "EDMTests", "Resources")

CONFIG_FIELDS = [
    "resolution", "inChannels", "outChannels", "labelDim", "modelChannels", "channelMult",
    "channelMultEmb", "numBlocks", "attnResolutions", "dropout", "labelDropout",
]


def make_config(resolution, in_channels, label_dim, model_channels, channel_mult, num_blocks,
                attn_resolutions, channel_mult_emb=4, out_channels=None, dropout=0.0, label_dropout=0.0):
    """A config dict in the Swift `UNetConfig` field names."""
    return {
        "resolution": resolution, "inChannels": in_channels,
        "outChannels": in_channels if out_channels is None else out_channels,
        "labelDim": label_dim, "modelChannels": model_channels, "channelMult": list(channel_mult),
        "channelMultEmb": channel_mult_emb, "numBlocks": num_blocks,
        "attnResolutions": list(attn_resolutions), "dropout": float(dropout), "labelDropout": float(label_dropout),
    }


# The Swift presets (Sources/EDM/Config.swift), restated.
PRESETS = {
    "imagenet64": make_config(64, 3, 1000, 192, [1, 2, 3, 4], 3, [32, 16, 8], dropout=0.10),
    "small16": make_config(16, 3, 10, 64, [1, 2], 1, [8]),
    "cpu64Tiny": make_config(64, 1, 10, 16, [1, 2, 4, 4], 1, [8], dropout=0.10, label_dropout=0.10),
    "cpu64Small": make_config(64, 1, 10, 32, [1, 2, 3, 4], 1, [16, 8], dropout=0.10, label_dropout=0.10),
}


def config_json(config):
    """The config as the Swift checkpoint stores it: JSON with sorted keys, no spaces."""
    missing = [k for k in CONFIG_FIELDS if k not in config]
    if missing or len(config) != len(CONFIG_FIELDS):
        raise ValueError(f"config must have exactly the fields {CONFIG_FIELDS}; missing {missing}")
    return json.dumps({k: config[k] for k in sorted(config)}, separators=(",", ":"))


def group_count(channels):
    """ADM's GroupNorm groups: min(32, C/4)."""
    if channels < 4:
        raise ValueError(f"ADM GroupNorm needs at least 4 channels, got {channels}")
    return min(32, channels // 4)


def attention_heads(channels):
    """Heads of 64 channels (EDM: channels // 64). Narrower layers, which EDM cannot build
    (0 heads), get one head holding every channel — the Swift `UNetConfig.attentionHeads` rule."""
    return max(1, channels // 64)


# ---------------------------------------------------------------------------------------------
# Layers (their registration order is the state-dict order).

class Linear(nn.Module):
    """y = x·Wᵀ + b with W [out, in]."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class Conv2d(nn.Module):
    """A k×k convolution (zero padding k/2, stride 1), optionally preceded by 2×2 resampling.

    kernel 0 means "resampling only" (the skip path of a down/up block without a width change):
    no weight, only the fixed `resample_filter` buffer EDM stores ([1, 1, 2, 2] of 0.25)."""

    def __init__(self, in_channels, out_channels, kernel, resample=None):
        super().__init__()
        assert resample in (None, "down", "up")
        self.kernel = kernel
        self.resample = resample
        if kernel:
            self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel, kernel))
            self.bias = nn.Parameter(torch.empty(out_channels))
        if resample:
            self.register_buffer("resample_filter", torch.full((1, 1, 2, 2), 0.25))

    def forward(self, x):
        if self.resample == "down":
            x = F.avg_pool2d(x, 2)
        elif self.resample == "up":
            x = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        if self.kernel:
            x = F.conv2d(x, self.weight, self.bias, padding=self.kernel // 2)
        return x


class GroupNorm(nn.Module):
    """GroupNorm with min(32, C/4) contiguous groups, eps 1e-5, biased variance, affine [C]."""

    def __init__(self, channels):
        super().__init__()
        self.groups = group_count(channels)
        self.weight = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))

    def forward(self, x):
        return F.group_norm(x, self.groups, self.weight, self.bias, eps=1e-5)


def attention_core(qkv, heads):
    """qkv [N, 3C, H, W], channel head·3d + c·3 + s (s = 0 q, 1 k, 2 v) → [N, C, H, W] with
    channel head·d + c: per head, a[c, i] = Σ_j softmax_j(Σ_c' q[c', i]·k[c', j]/√d)·v[c, j]."""
    N, C3, H, W = qkv.shape
    C = C3 // 3
    d = C // heads
    t = qkv.reshape(N, heads, d, 3, H * W)
    q, k, v = t[:, :, :, 0], t[:, :, :, 1], t[:, :, :, 2]                 # [N, heads, d, L]
    logits = torch.einsum("nhci,nhcj->nhij", q, k) / math.sqrt(d)          # query i, key j
    # Softmax in at least float32 (the spec's rule for lower precisions); float64 stays float64.
    w = torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1).to(logits.dtype)
    a = torch.einsum("nhij,nhcj->nhci", w, v)
    return a.reshape(N, C, H, W)


class UNetBlock(nn.Module):
    """ADM's residual block (docs/ARCHITECTURE-ADM.md "UNetBlock")."""

    def __init__(self, in_channels, out_channels, emb_channels, resample=None, attention=False, dropout=0.0):
        super().__init__()
        self.out_channels = out_channels
        self.dropout = dropout
        self.heads = attention_heads(out_channels) if attention else 0
        self.norm0 = GroupNorm(in_channels)
        self.conv0 = Conv2d(in_channels, out_channels, 3, resample=resample)
        self.affine = Linear(emb_channels, 2 * out_channels)
        self.norm1 = GroupNorm(out_channels)
        self.conv1 = Conv2d(out_channels, out_channels, 3)
        self.skip = None
        if in_channels != out_channels or resample:
            self.skip = Conv2d(in_channels, out_channels, 1 if in_channels != out_channels else 0, resample=resample)
        if attention:
            self.norm2 = GroupNorm(out_channels)
            self.qkv = Conv2d(out_channels, 3 * out_channels, 1)
            self.proj = Conv2d(out_channels, out_channels, 1)

    def forward(self, x, emb, dropout_mask=None):
        h = self.conv0(F.silu(self.norm0(x)))
        scale, shift = self.affine(emb)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(shift + self.norm1(h) * (scale + 1))
        if dropout_mask is not None:                                 # explicit mask (fixtures)
            h = h * dropout_mask / (1 - self.dropout)
        elif self.training and self.dropout > 0:
            h = F.dropout(h, p=self.dropout, training=True)
        h = self.conv1(h)
        h = h + (self.skip(x) if self.skip is not None else x)
        if self.heads:
            h = h + self.proj(attention_core(self.qkv(self.norm2(h)), self.heads))
        return h


class ADMUNet(nn.Module):
    """The network F(x, c_noise, y) for a config dict (Swift field names)."""

    def __init__(self, config):
        super().__init__()
        c = dict(config)
        self.config = c
        M, E, K = c["modelChannels"], c["modelChannels"] * c["channelMultEmb"], c["labelDim"]
        res, mult = c["resolution"], c["channelMult"]
        block = lambda cin, cout, **kw: UNetBlock(cin, cout, E, dropout=c["dropout"], **kw)  # noqa: E731

        self.map_layer0 = Linear(M, E)
        self.map_layer1 = Linear(E, E)
        self.map_label = Linear(K, E, bias=False) if K else None

        # Encoder: every output is a skip.
        self.enc = nn.ModuleDict()
        cout = M * mult[0]
        skips = []
        for level, m in enumerate(mult):
            r = res >> level
            if level == 0:
                self.enc[f"{r}x{r}_conv"] = Conv2d(c["inChannels"], cout, 3)
            else:
                self.enc[f"{r}x{r}_down"] = block(cout, cout, resample="down")
            skips.append(cout)
            for i in range(c["numBlocks"]):
                cin, cout = cout, M * m
                self.enc[f"{r}x{r}_block{i}"] = block(cin, cout, attention=r in c["attnResolutions"])
                skips.append(cout)

        # Decoder: from the lowest resolution up.
        self.dec = nn.ModuleDict()
        self.pops_skip = {}
        for level in reversed(range(len(mult))):
            r = res >> level
            if level == len(mult) - 1:
                self.dec[f"{r}x{r}_in0"] = block(cout, cout, attention=True)
                self.dec[f"{r}x{r}_in1"] = block(cout, cout)
            else:
                self.dec[f"{r}x{r}_up"] = block(cout, cout, resample="up")
            for i in range(c["numBlocks"] + 1):
                cin, cout = cout + skips.pop(), M * mult[level]
                name = f"{r}x{r}_block{i}"
                self.dec[name] = block(cin, cout, attention=r in c["attnResolutions"])
                self.pops_skip[name] = True
        assert not skips
        self.out_norm = GroupNorm(cout)
        self.out_conv = Conv2d(cout, c["outChannels"], 3)

    def embedding(self, noise_labels, class_labels):
        """emb [N, E] from c_noise [N] and one-hot labels [N, K] (None or zero rows: no label)."""
        M = self.config["modelChannels"]
        half = M // 2
        # Frequencies in float64, rounded once to the working precision (as the Swift side).
        f = torch.tensor([(1 / 10000) ** (j / half) for j in range(half)], dtype=torch.float64)
        angle = noise_labels[:, None] * f.to(noise_labels.dtype)[None, :]
        e = torch.cat([torch.cos(angle), torch.sin(angle)], dim=1)
        e = self.map_layer1(F.silu(self.map_layer0(e)))
        if class_labels is not None:
            e = e + self.map_label(class_labels)
        return F.silu(e)

    def forward(self, x, noise_labels, class_labels, dropout_masks=None, activations=None):
        """F [N, outChannels, R, R]. `activations`, when a dict, receives emb and every block's
        output by name (`enc.16x16_conv`, …, `dec.16x16_block1`)."""
        masks = dropout_masks or {}
        emb = self.embedding(noise_labels, class_labels)
        if activations is not None:
            activations["emb"] = emb
        skips = []
        h = x
        for name, module in self.enc.items():
            h = module(h) if name.endswith("_conv") else module(h, emb, masks.get("enc." + name))
            skips.append(h)
            if activations is not None:
                activations["enc." + name] = h
        for name, module in self.dec.items():
            if name in self.pops_skip:
                h = torch.cat([h, skips.pop()], dim=1)
            h = module(h, emb, masks.get("dec." + name))
            if activations is not None:
                activations["dec." + name] = h
        return self.out_conv(F.silu(self.out_norm(h)))

    def encoder_features(self, x, noise_labels, class_labels):
        """The last encoder output — the input conv and every encoder block, before the middle
        blocks (`enc.8x8_block2` at ImageNet-64): DMD2's GAN head input. The embedding is the
        full forward's (the Swift `UNet.encoderFeatures`)."""
        emb = self.embedding(noise_labels, class_labels)
        h = x
        for name, module in self.enc.items():
            h = module(h) if name.endswith("_conv") else module(h, emb)
        return h


# ---------------------------------------------------------------------------------------------
# EDM preconditioning, loss, sampler.

SIGMA_DATA = 0.5


def precond_coefficients(sigma, dtype):
    """c_skip, c_out, c_in as [N, 1, 1, 1] and c_noise as [N], computed in float64 from σ [N]
    and rounded once to `dtype` (the Swift side does the same)."""
    s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
    s2 = s * s + SIGMA_DATA ** 2
    c_skip = SIGMA_DATA ** 2 / s2
    c_out = s * SIGMA_DATA / s2.sqrt()
    c_in = 1 / s2.sqrt()
    c_noise = s.log() / 4
    view = lambda t: t.to(dtype).reshape(-1, 1, 1, 1)  # noqa: E731
    return view(c_skip), view(c_out), view(c_in), c_noise.to(dtype)


class Denoiser(nn.Module):
    """D(x; σ, y) = c_skip·x + c_out·F(c_in·x, c_noise, y) around `self.model` (EDM's
    `EDMPrecond`: its state-dict keys are `model.…`)."""

    def __init__(self, config):
        super().__init__()
        self.model = ADMUNet(config)

    @property
    def config(self):
        return self.model.config

    def forward(self, x, sigma, class_labels, dropout_masks=None):
        """x [N, C, R, R]; sigma: a float or N floats (float64); class_labels [N, K] or None."""
        N = x.shape[0]
        s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
        if s.numel() == 1:
            s = s.expand(N)
        if s.numel() != N:
            raise ValueError(f"Denoiser: {s.numel()} σ values for a batch of {N}")
        c_skip, c_out, c_in, c_noise = precond_coefficients(s, x.dtype)
        Fx = self.model(x * c_in, c_noise, class_labels, dropout_masks=dropout_masks)
        return x * c_skip + Fx * c_out

    def encoder_features(self, x, sigma, class_labels):
        """The encoder bottleneck of F at the preconditioned input, F's encoder applied to
        (c_in·x, c_noise, y): the input conv and every encoder block, stopping before the middle
        blocks ([N, 768, 8, 8] at ImageNet-64). DMD2's GAN head reads it (the Swift
        `Denoiser.encoderFeatures`); c_skip and c_out play no part."""
        N = x.shape[0]
        s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
        if s.numel() == 1:
            s = s.expand(N)
        if s.numel() != N:
            raise ValueError(f"Denoiser: {s.numel()} σ values for a batch of {N}")
        _, _, c_in, c_noise = precond_coefficients(s, x.dtype)
        return self.model.encoder_features(x * c_in, c_noise, class_labels)


def loss_weight(sigma):
    """λ(σ) = (σ² + σ_d²)/(σ·σ_d)², float64."""
    s = torch.as_tensor(sigma, dtype=torch.float64)
    return (s * s + SIGMA_DATA ** 2) / (s * SIGMA_DATA) ** 2


def edm_loss(denoiser, images, class_labels, sigma, noise, drop_label, dropout_masks=None):
    """EDM's training loss with fixed draws (the Swift `EDMLoss` with `Draws`):
    L = mean over all N·C·H·W elements of λ(σ)·(D(x + σ·ε; σ, y') − x)², y' = y with the rows
    where `drop_label` is true set to zero. σ [N] float64; σ and λ are rounded once to x's dtype."""
    dt = images.dtype
    N = images.shape[0]
    s = torch.as_tensor(sigma, dtype=torch.float64).reshape(N)
    noisy = images + noise * s.to(dt).reshape(N, 1, 1, 1)
    labels = None
    if class_labels is not None:
        keep = torch.tensor([0.0 if d else 1.0 for d in drop_label], dtype=dt).reshape(N, 1)
        labels = class_labels * keep
    D = denoiser(noisy, s, labels, dropout_masks=dropout_masks)
    lam = loss_weight(s).to(dt).reshape(N, 1, 1, 1)
    return (lam * (D - images) ** 2).mean()


def karras_sigmas(steps, sigma_min=0.002, sigma_max=80.0, rho=7.0):
    """n levels from σ_max to σ_min, uniform in σ^{1/ρ}, then 0 (Python floats)."""
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    s = [sigma_max if steps == 1 else (a + i / (steps - 1) * (b - a)) ** rho for i in range(steps)]
    return s + [0.0]


@torch.no_grad()
def heun_sample(denoiser, latents, class_labels, steps, dtype=torch.float64):
    """EDM's deterministic Heun sampler. The state is float64; the denoiser runs in `dtype`
    on the state rounded to it. Returns (final state, [state after each step], NFE)."""
    t = karras_sigmas(steps)
    x = latents.to(torch.float64) * t[0]
    trajectory = []
    nfe = 0

    def d(x, s):
        nonlocal nfe
        nfe += 1
        D = denoiser(x.to(dtype), s, class_labels).to(torch.float64)
        return (x - D) * (1 / s)

    for i in range(steps):
        s, s_next = t[i], t[i + 1]
        d_cur = d(x, s)
        x_next = x + d_cur * (s_next - s)
        if s_next > 0:
            d_next = d(x_next, s_next)
            x_next = x + (d_cur + d_next) * (0.5 * (s_next - s))
        x = x_next
        trajectory.append(x)
    return x, trajectory, nfe


# ---------------------------------------------------------------------------------------------
# Initialisation.

def init_training(denoiser, generator):
    """The spec's training initialisation: U(±1/√fan_in) weights and biases, conv1/proj/out_conv
    zero, map_label N(0, 1), GroupNorm γ = 1, β = 0."""
    with torch.no_grad():
        for name, p in denoiser.named_parameters():
            leaf = name.rsplit(".", 2)
            module, kind = leaf[-2], leaf[-1]
            if module.startswith("norm") or module == "out_norm":
                p.fill_(1.0 if kind == "weight" else 0.0)
            elif module in ("conv1", "proj", "out_conv"):
                p.zero_()
            elif module == "map_label":
                p.normal_(generator=generator)
            else:
                w = denoiser.get_parameter(name.rsplit(".", 1)[0] + ".weight")
                fan_in = w[0].numel()
                p.uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), generator=generator)


def init_random(denoiser, generator):
    """Random values with no zero layer (fixtures): weights N(0, 1/fan_in) — zero-initialised
    convs too, or a zero conv1/proj/out_conv would hide everything before it — GroupNorm γ
    1 + 0.2·N(0, 1), β and biases of zero-initialised layers 0.2·N(0, 1), other biases
    N(0, 1/fan_in), map_label N(0, 1)."""
    with torch.no_grad():
        for name, p in denoiser.named_parameters():
            module, kind = name.rsplit(".", 2)[-2:]
            if module.startswith("norm") or module == "out_norm":
                p.normal_(generator=generator).mul_(0.2).add_(1.0 if kind == "weight" else 0.0)
            elif module == "map_label":
                p.normal_(generator=generator)
            elif kind == "bias" and module in ("conv1", "proj", "out_conv"):
                p.normal_(generator=generator).mul_(0.2)
            else:
                w = denoiser.get_parameter(name.rsplit(".", 1)[0] + ".weight")
                p.normal_(generator=generator).mul_(1 / math.sqrt(w[0].numel()))


# ---------------------------------------------------------------------------------------------
# The checkpoint interface: state-dict tables, config inference, our safetensors checkpoint.

def state_table(config):
    """[(name, shape)] of EDM's state dict for `config`, in order, without allocating weights."""
    with torch.device("meta"):
        net = Denoiser(config)
    return [(k, list(v.shape)) for k, v in net.state_dict().items()]


def read_listing(path):
    """A published state-dict listing (name TAB [shape] TAB dtype) as [(name, shape)]."""
    rows = []
    with open(path) as f:
        for line in f:
            if line.strip():
                name, shape, _ = line.rstrip("\n").split("\t")
                rows.append((name, json.loads(shape)))
    return rows


def check_listings():
    """Our state-dict tables equal the published listings, name by name, in order."""
    for preset in ("imagenet64", "small16"):
        ours = state_table(PRESETS[preset])
        theirs = read_listing(os.path.join(LISTINGS, f"{preset}.tsv"))
        if ours != theirs:
            diff = next(i for i in range(max(len(ours), len(theirs)))
                        if i >= len(ours) or i >= len(theirs) or ours[i] != theirs[i])
            raise AssertionError(f"{preset}: state dict differs from the listing at row {diff}: "
                                 f"{ours[diff] if diff < len(ours) else None} vs {theirs[diff] if diff < len(theirs) else None}")
        params = sum(math.prod(s) for n, s in ours if not n.endswith("resample_filter"))
        print(f"{preset}: {len(ours)} state-dict entries equal the listing ({params:,} parameters)")


def infer_config(shapes, dropout=0.0, label_dropout=0.0):
    """The config of an EDM ADM state dict from its keys and shapes ({name: shape}, `model.` keys).
    Dropout rates are not in a state dict; pass them."""
    def shape(name):
        if name not in shapes:
            raise KeyError(f"state dict has no '{name}': not an EDM ADM UNet (DhariwalUNet)")
        return list(shapes[name])

    E, M = shape("model.map_layer0.weight")
    if E % M:
        raise ValueError(f"embedding width {E} is not a multiple of model channels {M}")
    labels = shapes.get("model.map_label.weight")
    convs = [k for k in shapes if k.startswith("model.enc.") and k.endswith("_conv.weight")]
    if len(convs) != 1:
        raise KeyError(f"expected one input conv 'model.enc.{{R}}x{{R}}_conv.weight', found {convs}")
    res = int(convs[0].split(".")[2].split("x")[0])
    # Levels: the input resolution, then one per `down` block.
    levels = [res]
    while f"model.enc.{levels[-1] // 2}x{levels[-1] // 2}_down.conv0.weight" in shapes:
        levels.append(levels[-1] // 2)
    # Every level has ≥ 1 decoder `_block`s: their width is the level's, their attention the level's.
    mult, attn = [], []
    for r in levels:
        width = shape(f"model.dec.{r}x{r}_block0.conv1.weight")[0]
        if width % M:
            raise ValueError(f"level {r}x{r} width {width} is not a multiple of model channels {M}")
        mult.append(width // M)
        if f"model.dec.{r}x{r}_block0.qkv.weight" in shapes:
            attn.append(r)
    num_blocks = 0
    while f"model.enc.{res}x{res}_block{num_blocks}.conv0.weight" in shapes:
        num_blocks += 1
    return make_config(res, shape(convs[0])[1], labels[1] if labels else 0, M, mult, num_blocks, attn,
                       channel_mult_emb=E // M, out_channels=shape("model.out_conv.weight")[0],
                       dropout=dropout, label_dropout=label_dropout)


def check_state_dict(state, config):
    """Strict comparison of a state dict with the table of `config`: returns (missing, unexpected,
    mis-shaped) lists of messages."""
    expected = dict(state_table(config))
    missing = [f"{k} {s}" for k, s in expected.items() if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [f"{k}: {list(state[k].shape)}, expected {s}" for k, s in expected.items()
                 if k in state and list(state[k].shape) != s]
    return missing, unexpected, misshaped


def checkpoint_metadata(config, step=0, extra=None):
    """Metadata of the Swift `EDMCheckpoint` format."""
    meta = {"format": "swift-dmd2.edm-unet", "format_version": "1", "config": config_json(config), "step": str(step)}
    meta.update(extra or {})
    return meta


def save_checkpoint(path, state, config, dtype="F32", step=0, extra_metadata=None):
    """Write `state` ({`model.…`: tensor}) as our safetensors checkpoint after a strict check;
    `resample_filter` buffers are written as 0.25s whether or not the source had them."""
    import numpy as np

    import st_io

    missing, unexpected, misshaped = check_state_dict(state, config)
    missing = [m for m in missing if not m.split(" ")[0].endswith("resample_filter")]
    if missing or unexpected or misshaped:
        raise ValueError("state dict does not fit the config:\n  missing: " + ", ".join(missing[:20])
                         + "\n  unexpected: " + ", ".join(unexpected[:20]) + "\n  mis-shaped: " + ", ".join(misshaped[:20]))
    np_dtype = {"F32": "<f4", "F64": "<f8"}[dtype]
    tensors = {}
    for name, shape in state_table(config):
        if name.endswith("resample_filter"):
            if name in state and not torch.all(state[name].float() == 0.25):
                raise ValueError(f"'{name}' is not 0.25 everywhere (a 2×2 average filter)")
            tensors[name] = np.full(shape, 0.25, dtype=np_dtype)
        else:
            tensors[name] = state[name].detach().to("cpu", torch.float64).numpy().astype(np_dtype)
    st_io.save(path, tensors, checkpoint_metadata(config, step, extra_metadata))
    return tensors


if __name__ == "__main__":
    check_listings()
    for preset in ("cpu64Tiny", "cpu64Small"):
        table = state_table(PRESETS[preset])
        print(f"{preset}: {sum(math.prod(s) for n, s in table if not n.endswith('resample_filter')):,} parameters")
