"""Small DMD2-style `.bin` files (torch.save zips) for the Swift converter (`dmd2 convert`,
Sources/EDM/TorchCheckpoint.swift), written into Tests/EDMTests/Resources/convert/:

  prefixed.bin          the tiny network of make_edm_fixtures.py (TINY_CONFIG, seed 3) as DMD2
                        saves its generator: the state dict under `feedforward_model.`;
                        reference/convert_dmd2_bin.py turns it into edm_tiny_from_bin.safetensors,
                        which the Swift conversion must equal bit for bit
  half.bin              the same weights as float16 (widened exactly to float32 on reading)
  nested_two.bin        {'state_dict': generator + fake critic}: two networks, --prefix needed
  evil_global.bin       a data.pkl that calls posix.system: the reader must refuse the global
                        before anything else
  truncated.bin         prefixed.bin cut to 60 % of its bytes (no zip directory)
  truncated_pickle.bin  a valid zip whose data.pkl stops half way

and Tests/DMD2DataTests/Resources/torch/small_state.bin, a four-tensor state dict for the
torch.save reader and the pickle fuzzer: weight = arange(12)/4 as [3, 4], bias = zeros(3),
half = [[1, 2], [3, 4]] in float16, strided = arange(12) as [4, 3] transposed (a [3, 4] view
with strides (1, 3) of its storage).

Run from the repository root:  python3 reference/make_convert_fixtures.py   (needs torch; ~2 s)
"""

import io
import os
import sys
import zipfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_edm_fixtures  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "EDMTests", "Resources", "convert")
DATA_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "DMD2DataTests", "Resources", "torch")


def rezip(src_bytes, edit):
    """A copy of a torch.save zip with `edit(name, data) -> data` applied to each member (stored)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(src_bytes)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, edit(info.filename, zin.read(info.filename)))
    return out.getvalue()


def main():
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(DATA_OUT, exist_ok=True)
    small = {"weight": torch.arange(12, dtype=torch.float32).reshape(3, 4) / 4, "bias": torch.zeros(3),
             "half": torch.tensor([[1.0, 2.0], [3.0, 4.0]]).half(),
             "strided": torch.arange(12, dtype=torch.float32).reshape(4, 3).t()}
    assert small["strided"].stride() == (1, 3)
    torch.save(small, os.path.join(DATA_OUT, "small_state.bin"))
    torch.manual_seed(0)
    _, net32 = make_edm_fixtures.models(make_edm_fixtures.TINY_CONFIG, seed=3)
    state = {k: v.detach().clone() for k, v in net32.state_dict().items()}

    def save(obj, name):
        path = os.path.join(OUT, name)
        torch.save(obj, path)
        print(f"{name}: {os.path.getsize(path):,} bytes")
        return path

    # A real state_dict(): an OrderedDict carrying `_metadata` (pickled as BUILD on the dict).
    wrapper = torch.nn.Module()
    wrapper.feedforward_model = net32
    prefixed = save(wrapper.state_dict(), "prefixed.bin")
    save({"feedforward_model." + k: v.half() for k, v in state.items()}, "half.bin")
    two = {"feedforward_model." + k: v for k, v in state.items()}
    two.update({"guidance_model.fake_unet." + k: v for k, v in state.items()})
    save({"state_dict": two}, "nested_two.bin")

    good = open(prefixed, "rb").read()
    # GLOBAL posix.system, MARK, SHORT_BINUNICODE 'true', TUPLE, REDUCE, STOP (protocol 2).
    evil = b"\x80\x02cposix\nsystem\n(\x8c\x04truet" + b"R."
    evil_bytes = rezip(good, lambda n, d: evil if n.endswith("data.pkl") else d)
    open(os.path.join(OUT, "evil_global.bin"), "wb").write(evil_bytes)
    open(os.path.join(OUT, "truncated.bin"), "wb").write(good[: int(len(good) * 0.6)])
    cut = rezip(good, lambda n, d: d[: len(d) // 2] if n.endswith("data.pkl") else d)
    open(os.path.join(OUT, "truncated_pickle.bin"), "wb").write(cut)
    for name in ("evil_global.bin", "truncated.bin", "truncated_pickle.bin"):
        print(f"{name}: {os.path.getsize(os.path.join(OUT, name)):,} bytes")
    # The malformed ones must fail in torch too (weights_only refuses the global).
    for name in ("evil_global.bin", "truncated.bin", "truncated_pickle.bin"):
        try:
            torch.load(os.path.join(OUT, name), weights_only=True)
        except Exception as e:  # noqa: BLE001
            print(f"  torch.load({name}) fails: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:90]}")
        else:
            raise AssertionError(f"{name} should not load")


if __name__ == "__main__":
    main()
