"""Generate the EDM fixtures the Swift EDMTests compare against (FixtureTests.swift), and test
the checkpoint converters on stand-in files.

Writes into Tests/EDMTests/Resources/:
  edm_small16_fixture.safetensors   our PyTorch ADM UNet (edm_model.py) at small16's structure
                                    with model width 16 (see FIXTURE_CONFIG), random non-zero
                                    weights, and its outputs in float64 and float32: D(x; σ, y),
                                    the embedding and every block's output, the EDM loss and its
                                    parameter gradients for fixed draws, a 5-step Heun run; plus
                                    a tiny network's weights and D for the converter tests.
  edm_tiny_from_bin.safetensors     convert_dmd2_bin.py's output for a prefixed state dict of the
                                    tiny network (what a DMD2 `.bin` holds)
  edm_tiny_from_pkl.safetensors     convert_edm_pkl.py's output for a stand-in EDM pickle
                                    ({'ema': module, …}) of the same network

Weights and inputs are drawn in float64 from seeded generators and rounded to float32, and
stored as F32: the float32 and float64 models (and the Swift Float and Double ones) all see
exactly the same values. σ, c_noise and the sampler state are float64.

Run from the repository root:  python3 reference/make_edm_fixtures.py   (~5 s; deterministic)
"""

import copy
import json
import os
import pickle
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_dmd2_bin  # noqa: E402
import convert_edm_pkl  # noqa: E402
import edm_model  # noqa: E402
import st_io  # noqa: E402
from edm_model import Denoiser, edm_loss, heun_sample, make_config  # noqa: E402

OUT_DIR = edm_model.LISTINGS
FIXTURE = os.path.join(OUT_DIR, "edm_small16_fixture.safetensors")
FROM_BIN = os.path.join(OUT_DIR, "edm_tiny_from_bin.safetensors")
FROM_PKL = os.path.join(OUT_DIR, "edm_tiny_from_pkl.safetensors")

# small16's structure (16×16 RGB, 10 classes, channel_mult [1, 2], 1 block, attention at 8,
# embedding 4× the width) at model width 16 instead of 64, so the weights and their float64
# gradients fit in a few MB: 209,587 parameters; widths 16 / 32, GroupNorm groups 4, 8, 12, 16;
# the 32-channel attention has one head of 32 (the Swift rule for layers under 64 channels).
FIXTURE_CONFIG = make_config(16, 3, 10, 16, [1, 2], 1, [8])
# A tiny network for the converter round trips (8×8, 2 channels, 3 classes, 4 × [1, 2],
# embedding 8, attention at 4; 1 and 2 GroupNorm groups): 13 k parameters. The converters
# record dropout 0.10 by default.
TINY_CONFIG = make_config(8, 2, 3, 4, [1, 2], 1, [4], channel_mult_emb=2, dropout=0.10)

SIGMAS = [0.002, 0.5, 2.5, 80.0]
F64, F32 = torch.float64, torch.float32


def f32_values(t):
    """Round a float64 tensor to float32 values (kept as float64)."""
    return t.to(F32).to(F64)


def one_hot(classes, k):
    """[N, k] rows; None is a zero row (no label)."""
    y = torch.zeros(len(classes), k, dtype=F64)
    for n, c in enumerate(classes):
        if c is not None:
            y[n, c] = 1
    return y


def np64(t):
    return t.detach().to(F64).contiguous().numpy().astype("<f8")


def np32(t):
    return t.detach().to(F32).contiguous().numpy().astype("<f4")


def models(config, seed):
    """The float64 and float32 denoisers with the same random float32-valued weights."""
    g = torch.Generator().manual_seed(seed)
    net = Denoiser(config).to(F64)
    edm_model.init_random(net, g)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(f32_values(p))
    net32 = copy.deepcopy(net).to(F32)
    return net.eval(), net32.eval()


def rel_err(a, b):
    """max |a − b| / max |b|."""
    return float((a.to(F64) - b.to(F64)).abs().max() / b.to(F64).abs().max().clamp_min(1e-300))


def fixture_tensors():
    cfg = FIXTURE_CONFIG
    K, C, R = cfg["labelDim"], cfg["inChannels"], cfg["resolution"]
    net, net32 = models(cfg, seed=1)
    g = torch.Generator().manual_seed(2)
    t = {}
    meta = {}
    for name, p in net.state_dict().items():
        t[name] = np32(p)          # parameters and resample_filter buffers: EDM's state dict
    report = {}

    # D(x; σ, y) at each σ, with labels and without (zero rows), batch of 2.
    image = torch.rand(2, C, R, R, generator=g, dtype=F64) * 2 - 1
    eps = torch.randn(2, C, R, R, generator=g, dtype=F64)
    labels = one_hot([3, 7], K)
    t["denoise.sigma"] = np.array(SIGMAS, dtype="<f8")
    t["denoise.labels"] = np32(labels)
    with torch.no_grad():
        for j, s in enumerate(SIGMAS):
            x = f32_values(image + s * eps)
            t[f"denoise.x{j}"] = np32(x)
            for tag, y in (("label", labels), ("nolabel", None)):
                d64 = net(x, s, y)
                d32 = net32(x.to(F32), s, None if y is None else y.to(F32))
                t[f"denoise.out{j}.{tag}.f64"] = np64(d64)
                t[f"denoise.out{j}.{tag}.f32"] = np32(d32)
                report[f"D σ={s} {tag}"] = rel_err(d32, d64)
    meta["denoise"] = {"sigmas": SIGMAS, "classes": [3, 7],
                       "tensors": "x{j} [2,C,R,R], out{j}.{label|nolabel}.{f64|f32}; labels [2,K]; nolabel = no labels"}

    # Per-image σ and a batch mixing a label with no label.
    mixed_sigma = [0.3, 12.0]
    mixed_labels = one_hot([5, None], K)
    x = f32_values(image + torch.tensor(mixed_sigma, dtype=F64).reshape(2, 1, 1, 1) * eps)
    t["mixed.sigma"] = np.array(mixed_sigma, dtype="<f8")
    t["mixed.labels"] = np32(mixed_labels)
    t["mixed.x"] = np32(x)
    with torch.no_grad():
        t["mixed.out.f64"] = np64(net(x, mixed_sigma, mixed_labels))
        t["mixed.out.f32"] = np32(net32(x.to(F32), mixed_sigma, mixed_labels.to(F32)))
    meta["mixed"] = {"sigma": mixed_sigma, "classes": [5, None]}

    # F(x, c_noise, y) directly, with the embedding and every block's output.
    act_x = f32_values(torch.randn(2, C, R, R, generator=g, dtype=F64))
    c_noise = torch.log(torch.tensor([2.5, 0.05], dtype=F64)) / 4
    act_labels = one_hot([3, None], K)
    t["act.x"] = np32(act_x)
    t["act.c_noise"] = np64(c_noise)
    t["act.labels"] = np32(act_labels)
    with torch.no_grad():
        for tag, model, dt in (("f64", net, F64), ("f32", net32, F32)):
            acts = {}
            out = model.model(act_x.to(dt), c_noise.to(dt), act_labels.to(dt), activations=acts)
            acts["F"] = out
            acts["encoder_features"] = model.model.encoder_features(act_x.to(dt), c_noise.to(dt), act_labels.to(dt))
            for k, v in acts.items():
                # Block outputs in float64 only (the Swift Float run is compared with those);
                # the embedding, F and the encoder features in both precisions.
                if dt == F64:
                    t[f"act.f64.{k}"] = np64(v)
                elif k in ("emb", "F", "encoder_features"):
                    t[f"act.f32.{k}"] = np32(v)
            if tag == "f64":
                acts64 = acts
            else:
                for k in acts:
                    report[f"act {k}"] = rel_err(acts[k], acts64[k])
    meta["activations"] = {"c_noise": "ln([2.5, 0.05])/4", "classes": [3, None],
                           "names": ["emb"] + [f"{p}.{n}" for p, mods in (("enc", net.model.enc), ("dec", net.model.dec))
                                               for n in mods] + ["F", "encoder_features"]}

    # EDM loss with fixed draws and its gradients (parameters and images).
    images = f32_values(torch.rand(3, C, R, R, generator=g, dtype=F64) * 2 - 1)
    noise = f32_values(torch.randn(3, C, R, R, generator=g, dtype=F64))
    loss_sigma = [0.08, 0.6, 7.5]
    loss_labels = one_hot([1, 4, 9], K)
    drop = [False, True, False]
    t["loss.images"] = np32(images)
    t["loss.noise"] = np32(noise)
    t["loss.sigma"] = np.array(loss_sigma, dtype="<f8")
    t["loss.labels"] = np32(loss_labels)
    t["loss.drop"] = np.array([1.0 if d else 0.0 for d in drop], dtype="<f8")
    grads = {}
    for tag, model, dt in (("f64", net, F64), ("f32", net32, F32)):
        model.zero_grad()
        xs = images.detach().to(dt).clone().requires_grad_(True)
        loss = edm_loss(model, xs, loss_labels.to(dt), loss_sigma, noise.to(dt), drop)
        loss.backward()
        t[f"loss.value.{tag}"] = (np64 if dt == F64 else np32)(loss.reshape(1))
        grads[tag] = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
        grads[tag]["images"] = xs.grad.detach().clone()
    for n, gr in grads["f64"].items():
        t[f"loss.grad.{n}"] = np64(gr)
    worst = max(grads["f64"], key=lambda n: rel_err(grads["f32"][n], grads["f64"][n]))
    report["loss value"] = rel_err(torch.tensor(t["loss.value.f32"]), torch.tensor(t["loss.value.f64"]))
    report[f"grad (worst: {worst})"] = rel_err(grads["f32"][worst], grads["f64"][worst])
    meta["loss"] = {"sigma": loss_sigma, "classes": [1, 4, 9], "drop_label": drop,
                    "definition": "mean over N*C*H*W of lambda(sigma)*(D(x+sigma*eps; sigma, y')-x)^2",
                    "gradients": "loss.grad.<parameter name> and loss.grad.images, float64 only"}

    # 5-step deterministic Heun from fixed latents (state float64; denoiser in f64 / f32).
    latents = f32_values(torch.randn(2, C, R, R, generator=g, dtype=F64))
    heun_labels = one_hot([2, 8], K)
    t["heun.latents"] = np32(latents)
    t["heun.labels"] = np32(heun_labels)
    t["heun.sigmas"] = np.array(edm_model.karras_sigmas(5), dtype="<f8")
    for tag, model, dt in (("f64", net, F64), ("f32", net32, F32)):
        _, traj, nfe = heun_sample(model, latents, heun_labels.to(dt), steps=5, dtype=dt)
        assert nfe == 9
        t[f"heun.{tag}.x"] = np64(torch.stack(traj))
    report["heun final"] = rel_err(torch.tensor(t["heun.f32.x"][-1]), torch.tensor(t["heun.f64.x"][-1]))
    meta["heun"] = {"steps": 5, "nfe": 9, "sigma_min": 0.002, "sigma_max": 80, "rho": 7, "classes": [2, 8],
                    "tensors": "heun.{f64|f32}.x [5, N, C, R, R]: the state after each step (float64 for both)"}
    return t, meta, report


def tiny_tensors(tmp):
    """The converter round trips: a tiny network's weights, one D, and the converted files."""
    net, _ = models(TINY_CONFIG, seed=3)
    g = torch.Generator().manual_seed(4)
    K, C, R = TINY_CONFIG["labelDim"], TINY_CONFIG["inChannels"], TINY_CONFIG["resolution"]
    x = f32_values(torch.randn(2, C, R, R, generator=g, dtype=F64) * 1.5)
    sigma = [0.7, 20.0]
    labels = one_hot([2, None], K)
    with torch.no_grad():
        out = net(x, sigma, labels)
    t = {"convert.x": np32(x), "convert.sigma": np.array(sigma, dtype="<f8"),
         "convert.labels": np32(labels), "convert.out.f64": np64(out)}
    state32 = {k: v.to(F32) for k, v in net.state_dict().items()}

    def expect_failure(what, fn, needle):
        try:
            fn()
        except (ValueError, KeyError) as e:
            assert needle in str(e), f"{what}: error does not mention '{needle}': {e}"
            print(f"  ok, {what} fails: {str(e).splitlines()[0][:110]}")
            return
        raise AssertionError(f"{what}: conversion should have failed")

    # DMD2 .bin: the generator's state dict under a prefix.
    bin_a = os.path.join(tmp, "prefixed.bin")
    torch.save({"feedforward_model." + k: v for k, v in state32.items()}, bin_a)
    convert_dmd2_bin.convert(bin_a, FROM_BIN)
    reference, _ = st_io.load(FROM_BIN)
    # A bare UNet (no `model.`) with a stray key: refused, then accepted with ignore_unknown.
    bin_b = os.path.join(tmp, "bare.bin")
    bare = {k[len("model."):]: v for k, v in state32.items()}
    bare["sigma_table"] = torch.zeros(4)
    torch.save(bare, bin_b)
    expect_failure("bare UNet with a stray key", lambda: convert_dmd2_bin.convert(bin_b, os.path.join(tmp, "b.st")), "sigma_table")
    convert_dmd2_bin.convert(bin_b, os.path.join(tmp, "b.st"), ignore_unknown=True)
    # Two networks in one file, nested under 'state_dict': the prefix must be chosen.
    bin_c = os.path.join(tmp, "two.bin")
    two = {"feedforward_model." + k: v for k, v in state32.items()}
    two.update({"guidance_model.fake_unet." + k: v for k, v in state32.items()})
    torch.save({"state_dict": two}, bin_c)
    expect_failure("two networks without --prefix", lambda: convert_dmd2_bin.convert(bin_c, os.path.join(tmp, "c.st")), "--prefix")
    convert_dmd2_bin.convert(bin_c, os.path.join(tmp, "c.st"), prefix="feedforward_model.model.", ignore_unknown=True)
    # A mis-shaped tensor is refused with its name.
    bin_d = os.path.join(tmp, "bad.bin")
    bad = dict(state32)
    bad["model.dec.4x4_in0.qkv.bias"] = torch.zeros(5)
    torch.save(bad, bin_d)
    expect_failure("mis-shaped qkv.bias", lambda: convert_dmd2_bin.convert(bin_d, os.path.join(tmp, "d.st")), "dec.4x4_in0.qkv.bias")

    # EDM .pkl stand-in: {'ema': the preconditioned network, …} with EDMPrecond's attributes.
    ema = copy.deepcopy(net).to(F32)
    ema.img_resolution, ema.img_channels, ema.label_dim, ema.sigma_data = R, C, K, 0.5
    pkl = os.path.join(tmp, "network-snapshot.pkl")
    with open(pkl, "wb") as f:
        pickle.dump({"ema": ema, "loss_fn": None, "augment_pipe": None, "dataset_kwargs": {"resolution": R}}, f)
    reference_path = os.path.join(tmp, "reference.safetensors")
    convert_edm_pkl.convert(pkl, FROM_PKL, reference=reference_path)
    ref, _ = st_io.load(reference_path)
    with torch.no_grad():
        again = ema(torch.from_numpy(ref["x"]), torch.from_numpy(ref["sigma"]), torch.from_numpy(ref["labels"]))
    assert np.array_equal(again.numpy(), ref["out"]), "--reference output is the module's D"
    ema.sigma_data = 1.0
    with open(pkl, "wb") as f:
        pickle.dump({"ema": ema}, f)
    expect_failure("sigma_data 1.0", lambda: convert_edm_pkl.convert(pkl, os.path.join(tmp, "p.st")), "sigma_data")

    # Every converted file holds exactly the source weights.
    for path in (FROM_BIN, FROM_PKL, os.path.join(tmp, "b.st"), os.path.join(tmp, "c.st")):
        got, meta = st_io.load(path)
        assert set(got) == set(reference), path
        for k in reference:
            assert np.array_equal(got[k], reference[k]), (path, k)
        assert json.loads(meta["config"]) == TINY_CONFIG and meta["step"] == "0", (path, meta)
    for k, v in state32.items():
        assert np.array_equal(reference[k], v.numpy()), k
    print("  converted files equal the source weights; config", meta["config"])
    return t, {"convert": {"config": json.loads(edm_model.config_json(TINY_CONFIG)), "sigma": sigma, "classes": [2, None],
                           "files": ["edm_tiny_from_bin.safetensors", "edm_tiny_from_pkl.safetensors"]}}


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)   # fixed reduction order, so re-runs give identical bytes
    edm_model.check_listings()
    tensors, meta, report = fixture_tensors()
    print("float32 vs float64 (max |Δ| / max |value|):")
    for k, v in report.items():
        print(f"  {k:45s} {v:.2e}")
    with tempfile.TemporaryDirectory() as tmp:
        print("converters:")
        tt, tm = tiny_tensors(tmp)
    tensors.update(tt)
    meta.update(tm)
    metadata = {
        "format": "swift-dmd2-fixture",
        "version": "1",
        "generator": "reference/make_edm_fixtures.py",
        "torch": torch.__version__,
        "config": edm_model.config_json(FIXTURE_CONFIG),
    }
    metadata.update({k: json.dumps(v, separators=(",", ":")) for k, v in meta.items()})
    st_io.save(FIXTURE, tensors, metadata)
    back, back_meta = st_io.load(FIXTURE)
    assert back_meta == metadata and set(back) == set(tensors)
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and np.array_equal(back[k], v), k
    print(f"wrote {FIXTURE} ({os.path.getsize(FIXTURE):,} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
