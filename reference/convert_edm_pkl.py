"""Convert an EDM network pickle (e.g. `edm-imagenet-64x64-cond-adm.pkl`) to the swift-dmd2
safetensors checkpoint (`EDMCheckpoint` in Sources/EDM).

    PYTHONPATH=/path/to/edm python3 reference/convert_edm_pkl.py \
        edm-imagenet-64x64-cond-adm.pkl edm-imagenet64.safetensors

EDM's pickles are a dict whose `ema` entry is the preconditioned network (`EDMPrecond`, whose
`model` is the `DhariwalUNet`); unpickling it imports EDM's own modules (`torch_utils`,
`dnnlib`, `training`), so EDM's repository must be on PYTHONPATH. Unpickling runs code from
the file: convert only pickles you trust.

The state dict of the chosen entry (keys `model.…`) is checked strictly against EDM's table
for the config inferred from its shapes (and against the module's img_resolution,
img_channels, label_dim when it has them); the preconditioning must be EDM's (σ_d = 0.5).
Output: every parameter and `resample_filter` buffer under its `model.…` name, metadata
format "swift-dmd2.edm-unet", format_version "1", config (the Swift UNetConfig as JSON),
step 0, source, converter.

With --reference REF.safetensors the pickled module itself (EDM's own code) also computes
D(x; σ, y) in float32 for two seeded images (σ = 80 and 2.5, two classes) and writes x, sigma,
labels and out, so the Swift side can be checked against EDM's implementation:
    DMD2_EDM_CHECKPOINT=edm-imagenet64.safetensors DMD2_EDM_REFERENCE=REF.safetensors \
        swift test -c release --filter FixtureTests.testConvertedCheckpointFromEnvironment
"""

import argparse
import os
import pickle
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edm_model  # noqa: E402


def network(data, entry):
    """The module (or state dict) under `entry` of an EDM pickle."""
    if not isinstance(data, dict):
        raise ValueError(f"expected EDM's pickle dict ({{'ema': network, …}}), got {type(data).__name__}")
    if entry not in data:
        raise KeyError(f"the pickle has no '{entry}' entry; entries: {sorted(data)}")
    return data[entry]


def check_module(net, config):
    """Cross-check the module's own attributes, where it has them, with the inferred config."""
    kind = type(net).__name__
    if kind.endswith("Precond") and kind != "EDMPrecond":
        raise ValueError(f"the network is a {kind}; only EDM's own preconditioning (EDMPrecond) is implemented")
    for attr, field in (("img_resolution", "resolution"), ("img_channels", "inChannels"), ("label_dim", "labelDim")):
        value = getattr(net, attr, None)
        if value is not None and int(value) != config[field]:
            raise ValueError(f"module says {attr} = {value}, the weights say {field} = {config[field]}")
    sigma_data = getattr(net, "sigma_data", None)
    if sigma_data is not None and float(sigma_data) != edm_model.SIGMA_DATA:
        raise ValueError(f"sigma_data = {sigma_data}; our preconditioning uses {edm_model.SIGMA_DATA}")


def reference_outputs(net, config, path):
    """D(x; σ, y) of the unpickled module for two seeded images, saved for the Swift check."""
    import st_io

    g = torch.Generator().manual_seed(0)
    C, R, K = config["inChannels"], config["resolution"], config["labelDim"]
    sigma = torch.tensor([80.0, 2.5])
    x = torch.randn(2, C, R, R, generator=g) * sigma.reshape(2, 1, 1, 1)
    labels = None
    if K:
        labels = torch.zeros(2, K)
        labels[0, min(1, K - 1)] = 1
        labels[1, K - 1] = 1
    net = net.to(torch.float32).eval()
    with torch.no_grad():
        out = net(x, sigma, labels)
    tensors = {"x": x.numpy().astype("<f4"), "sigma": sigma.double().numpy().astype("<f8"),
               "out": out.float().numpy().astype("<f4")}
    if labels is not None:
        tensors["labels"] = labels.numpy().astype("<f4")
    st_io.save(path, tensors, {"format": "swift-dmd2-reference-output", "version": "1",
                               "generator": "reference/convert_edm_pkl.py", "module": type(net).__name__,
                               "torch": torch.__version__})
    print(f"wrote {path}: D of the pickled {type(net).__name__} for σ = 80, 2.5 (max |D| {float(out.abs().max()):.4g})")


def convert(src, dst, entry="ema", dropout=0.10, label_dropout=0.0, dtype="F32", reference=None):
    """Convert `src` to `dst`; returns the config dict."""
    with open(src, "rb") as f:
        data = pickle.load(f)
    net = network(data, entry)
    state = net.state_dict() if isinstance(net, torch.nn.Module) else net
    state = {k: v for k, v in state.items() if torch.is_tensor(v)}
    print(f"'{entry}': {type(net).__name__} with {len(state)} state-dict tensors")
    config = edm_model.infer_config({k: list(v.shape) for k, v in state.items()}, dropout, label_dropout)
    print("config:", edm_model.config_json(config))
    if isinstance(net, torch.nn.Module):
        check_module(net, config)
    edm_model.save_checkpoint(dst, state, config, dtype=dtype, step=0, extra_metadata={
        "source": os.path.basename(src), "converter": "reference/convert_edm_pkl.py"})
    print(f"wrote {dst} ({os.path.getsize(dst):,} bytes)")
    if reference:
        if not isinstance(net, torch.nn.Module):
            raise ValueError(f"--reference needs a module under '{entry}', found a {type(net).__name__}")
        reference_outputs(net, config, reference)
    return config


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="EDM network pickle (.pkl)")
    p.add_argument("dst", help="output .safetensors")
    p.add_argument("--entry", default="ema", help="pickle entry holding the network (default: ema)")
    p.add_argument("--dropout", type=float, default=0.10,
                   help="dropout rate recorded in the config (not in the weights; default 0.10, EDM's ImageNet-64 "
                        "teacher, so the config equals the Swift imagenet64 preset)")
    p.add_argument("--label-dropout", type=float, default=0.0, help="label dropout recorded in the config (default 0)")
    p.add_argument("--dtype", choices=["F32", "F64"], default="F32", help="stored precision (default F32, as trained)")
    p.add_argument("--reference", help="also write the pickled module's own D(x; σ, y) for two seeded images here")
    a = p.parse_args(argv)
    convert(a.src, a.dst, a.entry, a.dropout, a.label_dropout, a.dtype, a.reference)


if __name__ == "__main__":
    main()
