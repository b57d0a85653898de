"""Convert a DMD2 ImageNet-64 `.bin` checkpoint (a torch state dict of the one-step generator,
an EDM ADM UNet) to the swift-dmd2 safetensors checkpoint (`EDMCheckpoint` in Sources/EDM).

    python3 reference/convert_dmd2_bin.py pytorch_model.bin generator.safetensors

The keys of the source may carry a prefix before EDM's `model.…` names (`feedforward_model.`,
`module.` from DDP, …) or none at all (a bare UNet's `map_layer0.weight`); the prefix is found
from where `map_layer0.weight` sits, or given with --prefix when several networks share one
file. Every remaining key must be an entry of EDM's state dict for the inferred config: an
unknown key stops the conversion (listed), unless --ignore-unknown drops them. fp16/bf16
tensors are widened to float32. The output has every parameter and `resample_filter` buffer
under its `model.…` name, and metadata format "swift-dmd2.edm-unet", format_version "1",
config (the Swift UNetConfig as JSON), step 0, source, converter.

Needs torch (CPU is enough). `torch.load` runs with weights_only=True, so the file cannot run
code while it is read.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edm_model  # noqa: E402

ANCHOR = "map_layer0.weight"
WRAPPERS = ("state_dict", "model", "generator", "feedforward_model", "module")


def unwrap(obj):
    """The state dict inside `obj`: the dict itself when its values are tensors, or the one
    nested dict under a usual wrapper key (`state_dict`, `model`, …)."""
    while isinstance(obj, dict) and not any(torch.is_tensor(v) for v in obj.values()):
        inner = [k for k in WRAPPERS if isinstance(obj.get(k), dict)]
        if len(inner) != 1:
            raise ValueError(f"no state dict found: top-level keys {sorted(obj)[:20]}")
        print(f"using the nested dict under '{inner[0]}'")
        obj = obj[inner[0]]
    if not isinstance(obj, dict):
        raise ValueError(f"expected a state dict, got {type(obj).__name__}")
    return obj


def find_prefix(keys, prefix=None):
    """The source prefix standing for our `model.` (e.g. `feedforward_model.model.`)."""
    if prefix is not None:
        if not any(k == prefix + ANCHOR for k in keys):
            raise ValueError(f"--prefix '{prefix}': no key '{prefix}{ANCHOR}'")
        return prefix
    found = sorted(k[: -len(ANCHOR)] for k in keys if k.endswith(ANCHOR))
    if len(found) != 1:
        raise ValueError(f"expected one network (one '…{ANCHOR}' key), found prefixes {found}; choose one with --prefix")
    return found[0]


def rename(state, prefix):
    """(our state dict with `model.…` keys, keys outside the prefix)."""
    ours, outside = {}, []
    for k, v in state.items():
        if k.startswith(prefix):
            ours["model." + k[len(prefix):]] = v
        else:
            outside.append(k)
    return ours, outside


def convert(src, dst, prefix=None, ignore_unknown=False, dropout=0.10, label_dropout=0.0, dtype="F32"):
    """Convert `src` to `dst`; returns the config dict."""
    state = unwrap(torch.load(src, map_location="cpu", weights_only=True))
    state = {k: v for k, v in state.items() if torch.is_tensor(v)}
    prefix = find_prefix(list(state), prefix)
    ours, outside = rename(state, prefix)
    print(f"{len(state)} tensors; prefix '{prefix}' → 'model.' for {len(ours)} of them")
    narrow = sorted({str(v.dtype) for v in ours.values() if v.dtype in (torch.float16, torch.bfloat16)})
    if narrow:
        print(f"widening {', '.join(narrow)} tensors to float32")
    config = edm_model.infer_config({k: list(v.shape) for k, v in ours.items()}, dropout, label_dropout)
    print("config:", edm_model.config_json(config))
    expected = {name for name, _ in edm_model.state_table(config)}
    unknown = sorted(outside + [k for k in ours if k not in expected])
    if unknown:
        message = f"{len(unknown)} unknown keys: " + ", ".join(unknown[:30]) + (" …" if len(unknown) > 30 else "")
        if not ignore_unknown:
            raise ValueError(message + " (pass --ignore-unknown to drop them)")
        print("dropping " + message)
        ours = {k: v for k, v in ours.items() if k in expected}
    edm_model.save_checkpoint(dst, ours, config, dtype=dtype, step=0, extra_metadata={
        "source": os.path.basename(src), "converter": "reference/convert_dmd2_bin.py"})
    print(f"wrote {dst} ({os.path.getsize(dst):,} bytes)")
    return config


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="DMD2 .bin (torch state dict)")
    p.add_argument("dst", help="output .safetensors")
    p.add_argument("--prefix", help="source key prefix that stands for 'model.' (default: found from map_layer0.weight)")
    p.add_argument("--ignore-unknown", action="store_true", help="drop keys that are not part of the UNet instead of failing")
    p.add_argument("--dropout", type=float, default=0.10,
                   help="dropout rate recorded in the config (not in a state dict; default 0.10, EDM's ImageNet-64 teacher, "
                        "so the config equals the Swift imagenet64 preset)")
    p.add_argument("--label-dropout", type=float, default=0.0, help="label dropout recorded in the config (default 0)")
    p.add_argument("--dtype", choices=["F32", "F64"], default="F32", help="stored precision (default F32, as trained)")
    a = p.parse_args(argv)
    convert(a.src, a.dst, a.prefix, a.ignore_unknown, a.dropout, a.label_dropout, a.dtype)


if __name__ == "__main__":
    main()
