"""Small EDM-style network snapshots (`.pkl`) for the native reader behind `dmd2 convert`
(Sources/DMD2Data/EDMSnapshot.swift), written into Tests/EDMTests/Resources/convert/:

  snapshot.pkl               {'ema': network, 'loss_fn': …, 'augment_pipe': None,
                             'dataset_kwargs': {…}} pickled with Python's default protocol, in the
                             structure EDM's training loop writes (see below), holding the tiny
                             network of make_edm_fixtures.py (TINY_CONFIG, seed 3) with dropout
                             0.10 and label dropout 0.1 recorded as EDM records them
  snapshot_expected.safetensors
                             reference/convert_edm_pkl.py's output for snapshot.pkl (unpickled
                             by Python with the stand-in persistence module below): every tensor
                             and the config the Swift reader must reproduce bit for bit
  snapshot_evil_global.pkl   the same, with an object inside the network's recorded kwargs that
                             unpickles by calling posix.system: the reader must refuse the global
  snapshot_truncated.pkl     snapshot.pkl cut to 60 % of its bytes
  snapshot_bad_storage.pkl   one storage's inner stream says it holds one element more than its
                             persistent id (and its bytes) do

and Tests/DMD2DataTests/Resources/torch/small_snapshot.pkl, the same structure at its smallest
for the reader's tests and the fuzzer: {'ema': persistent 'Net' with `layers` a ModuleDict holding
a persistent 'Linear' (weight = arange(12)/4 as [3, 4], bias = zeros(3)), a float16 buffer
`narrow` = [[1, 2], [3, 4]], a buffer `strided` = arange(12) as [4, 3] transposed (strides (1, 3)),
a non-persistent buffer `scratch` (not in the state dict), a None buffer, and init kwargs with a
numpy float64 and a numpy int64}.

The structure, as learnt from pickles of that kind (not from EDM's code, which is CC BY-NC-SA):
every network class of EDM is made "persistent": it pickles as a REDUCE of the global
`torch_utils.persistence._reconstruct_persistent_obj` with one dict argument
{type: 'class', version, module_src: the source text of the module defining the class,
class_name, state: the object's __dict__}; the __dict__ of a torch module holds `_parameters`,
`_buffers`, `_non_persistent_buffers_set`, `_modules` (sub-modules, persistent or plain torch
classes such as ModuleDict, which pickle as NEWOBJ + BUILD), hook OrderedDicts, `training`, the
init arguments the persistence wrapper records (`_init_args`, `_init_kwargs`, which may hold
numpy scalars) and the class's own attributes (img_resolution, sigma_data, label_dropout,
dropout, …). Tensors reduce through torch._utils._rebuild_tensor_v2 / _rebuild_parameter, and
each storage through torch.storage._load_from_bytes(bytes) whose bytes are a legacy (non-zip)
torch.save stream.

Here a stand-in `torch_utils.persistence` module (registered in sys.modules) gives the
modules of our own reference network (edm_model.py) that pickling behaviour: the classes get
EDM's names (EDMPrecond, DhariwalUNet, UNetBlock, Conv2d, Linear, GroupNorm,
PositionalEmbedding) and the kwargs EDM would record for them. Loading such a pickle in Python
runs the stand-in's `_reconstruct_persistent_obj`, which rebuilds from a registry of these
classes (it never executes module_src).

Run from the repository root:  python3 reference/make_edm_pkl_fixtures.py   (needs torch; ~3 s)
Legacy storage keys are memory addresses, so the .pkl bytes differ from run to run; their
contents do not.
"""

import copy
import io
import os
import pickle
import sys
import tempfile
import types

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_edm_pkl  # noqa: E402
import edm_model  # noqa: E402
import make_edm_fixtures  # noqa: E402
import st_io  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "EDMTests", "Resources", "convert")
DATA_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "DMD2DataTests", "Resources", "torch")
CONFIG = dict(make_edm_fixtures.TINY_CONFIG, labelDropout=0.1)
PERSISTENCE_VERSION = 6
# What a persistent object carries as `module_src`: the text of the module that defines its
# class. A short stand-in; a real snapshot stores the whole networks.py once (memoized).
MODULE_SRC = "# stand-in for the source of the module defining the network classes\n"

# ---------------------------------------------------------------------------------------------
# The stand-in persistence module.

REGISTRY = {}


def _reconstruct_persistent_obj(meta):
    """Unpickling side: an instance of the registered class with `state` as its __dict__."""
    if meta.get("type") != "class" or meta.get("version") != PERSISTENCE_VERSION:
        raise ValueError(f"unexpected persistence meta {sorted(meta)}")
    cls = REGISTRY[meta["class_name"]]
    obj = cls.__new__(cls)
    obj.__dict__.update(meta["state"])
    return obj


_persistence = types.ModuleType("torch_utils.persistence")
_persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
_package = types.ModuleType("torch_utils")
_package.persistence = _persistence
sys.modules.setdefault("torch_utils", _package)
sys.modules.setdefault("torch_utils.persistence", _persistence)


class Persistent:
    """Mixin: pickles as REDUCE(_reconstruct_persistent_obj, (meta,)) with the __dict__ as state."""
    persistent_name = None

    def __reduce__(self):
        meta = {"type": "class", "version": PERSISTENCE_VERSION, "module_src": MODULE_SRC,
                "class_name": self.persistent_name, "state": self.__dict__}
        return (_reconstruct_persistent_obj, (meta,))


def persistent(base, name):
    """A subclass of `base` that pickles as a persistent `name` (registered for loading)."""
    if name not in REGISTRY:
        REGISTRY[name] = type(name, (Persistent, base), {"persistent_name": name, "__module__": "persistent_stand_in"})
    return REGISTRY[name]


class PositionalEmbedding(torch.nn.Module):
    """EDM's noise-embedding module has no weights; ours computes it inline. Kept for the
    structure: a child without parameters, holding a non-persistent buffer (not in the state dict)."""

    def __init__(self, num_channels):
        super().__init__()
        self.num_channels = num_channels
        self.max_positions = 10000
        self.endpoint = False
        self.register_buffer("freqs", torch.arange(num_channels // 2, dtype=torch.float32), persistent=False)


class EDMLoss:
    """Stand-in for the snapshot's `loss_fn` entry: a plain persistent object."""

    def __init__(self):
        self.P_mean, self.P_std, self.sigma_data = -1.2, 1.2, 0.5


# ---------------------------------------------------------------------------------------------
# The tiny network dressed as EDM's.

def edm_network():
    """make_edm_fixtures' tiny network (float32 weights, seed 3) with EDM's classes and kwargs."""
    _, net = make_edm_fixtures.models(make_edm_fixtures.TINY_CONFIG, seed=3)
    net = copy.deepcopy(net).to(torch.float32).eval().requires_grad_(False)
    c = CONFIG
    unet = net.model
    init = dict(init_mode="kaiming_uniform", init_weight=np.sqrt(1 / 3), init_bias=np.sqrt(1 / 3))
    unet_kwargs = dict(img_resolution=c["resolution"], in_channels=c["inChannels"], out_channels=c["outChannels"],
                       label_dim=c["labelDim"], augment_dim=0, model_channels=c["modelChannels"],
                       channel_mult=list(c["channelMult"]), channel_mult_emb=c["channelMultEmb"],
                       num_blocks=c["numBlocks"], attn_resolutions=list(c["attnResolutions"]),
                       dropout=c["dropout"], label_dropout=c["labelDropout"])
    for name, m in list(net.named_modules()):
        kind = type(m).__name__
        if kind == "Denoiser":
            m.__class__ = persistent(type(m), "EDMPrecond")
            m.img_resolution, m.img_channels, m.label_dim = c["resolution"], c["inChannels"], c["labelDim"]
            m.use_fp16, m.sigma_min, m.sigma_max, m.sigma_data = False, 0.0, float("inf"), 0.5
            kwargs = {k: v for k, v in unet_kwargs.items() if k not in ("in_channels", "out_channels")}
            kwargs.update(img_channels=c["inChannels"], model_type="DhariwalUNet", use_fp16=False)
        elif kind == "ADMUNet":
            m.__class__ = persistent(type(m), "DhariwalUNet")
            m.label_dropout = c["labelDropout"]
            m.map_noise = persistent(PositionalEmbedding, "PositionalEmbedding")(c["modelChannels"])
            m.map_noise._init_args, m.map_noise._init_kwargs = (), dict(num_channels=c["modelChannels"])
            m._modules["map_augment"] = None                 # augment_dim = 0: a None child
            kwargs = dict(unet_kwargs)
        elif kind == "UNetBlock":
            m.__class__ = persistent(type(m), "UNetBlock")
            kwargs = dict(in_channels=m.norm0.weight.shape[0], out_channels=m.out_channels,
                          emb_channels=m.affine.weight.shape[1], attention=bool(m.heads), dropout=m.dropout,
                          init=init, init_zero=dict(init_weight=0), skip_scale=1, eps=1e-5)
        elif kind == "Conv2d":
            m.__class__ = persistent(type(m), "Conv2d")
            if not m.resample:
                m._buffers["resample_filter"] = None         # a None buffer: not in the state dict
            kwargs = dict(kernel=m.kernel, up=m.resample == "up", down=m.resample == "down", resample_filter=[1, 1], **init)
        elif kind == "Linear":
            m.__class__ = persistent(type(m), "Linear")
            kwargs = dict(in_features=m.weight.shape[1], out_features=m.weight.shape[0], bias=m.bias is not None, **init)
        elif kind == "GroupNorm":
            m.__class__ = persistent(type(m), "GroupNorm")
            kwargs = dict(num_channels=m.weight.shape[0], num_groups=32, eps=1e-5)
        elif kind == "ModuleDict":
            continue                                          # a plain torch class: NEWOBJ + BUILD
        else:
            raise AssertionError(f"unexpected module {name}: {kind}")
        m._init_args, m._init_kwargs = (), kwargs
    return net


def snapshot_dict(net):
    loss = persistent(EDMLoss, "EDMLoss")()
    loss._init_args, loss._init_kwargs = (), {}
    dataset = dict(class_name="training.dataset.ImageFolderDataset", path="datasets/tiny-8x8.zip", use_labels=True,
                   xflip=False, cache=True, resolution=CONFIG["resolution"], max_size=64)
    return dict(ema=net, loss_fn=loss, augment_pipe=None, dataset_kwargs=dataset)


class Evil:
    """Unpickles by calling os.system (posix.system in the pickle)."""

    def __reduce__(self):
        return (os.system, ("echo this should never run",))


class BadStoragePickler(pickle.Pickler):
    """Writes the first storage's legacy stream with an element count one larger than its id's."""
    done = False

    def reducer_override(self, obj):
        if isinstance(obj, torch.storage.TypedStorage) and not self.done:
            self.done = True
            buf = io.BytesIO()
            torch.save(obj, buf, _use_new_zipfile_serialization=False)
            raw = bytearray(buf.getvalue())
            nbytes = obj.nbytes()
            at = len(raw) - nbytes - 8
            count = int.from_bytes(raw[at:at + 8], "little")
            assert count == obj.size(), (count, obj.size())
            raw[at:at + 8] = (count + 1).to_bytes(8, "little")
            return (torch.storage._load_from_bytes, (bytes(raw),))
        return NotImplemented


def small_snapshot():
    """The smallest snapshot of the same structure (see the docstring)."""
    net = persistent(torch.nn.Module, "Net")()
    lin = persistent(edm_model.Linear, "Linear")(4, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.arange(12, dtype=torch.float32).reshape(3, 4) / 4)
        lin.bias.zero_()
    lin._init_args, lin._init_kwargs = (), dict(in_features=4, out_features=3, init_weight=np.sqrt(1 / 3), seed=np.int64(-7))
    net.layers = torch.nn.ModuleDict({"lin": lin})
    net.register_buffer("narrow", torch.tensor([[1.0, 2.0], [3.0, 4.0]]).half())
    net.register_buffer("strided", torch.arange(12, dtype=torch.float32).reshape(4, 3).t())
    assert net.strided.stride() == (1, 3)
    net.register_buffer("scratch", torch.ones(2), persistent=False)
    net.register_buffer("absent", None)
    net._init_args, net._init_kwargs = (), dict(label_dropout=0.25)
    net = net.eval().requires_grad_(False)
    return net


def main():
    torch.set_num_threads(1)
    os.makedirs(DATA_OUT, exist_ok=True)
    small = small_snapshot()
    small_bytes = pickle.dumps({"ema": small, "augment_pipe": None})
    open(os.path.join(DATA_OUT, "small_snapshot.pkl"), "wb").write(small_bytes)
    back = pickle.loads(small_bytes)["ema"]
    assert list(back.state_dict()) == ["narrow", "strided", "layers.lin.weight", "layers.lin.bias"], list(back.state_dict())
    print(f"small_snapshot.pkl: {len(small_bytes):,} bytes")
    os.makedirs(OUT, exist_ok=True)
    net = edm_network()
    expected_state = {k: v.clone() for k, v in net.state_dict().items()}
    data = snapshot_dict(net)
    good = pickle.dumps(data)
    path = os.path.join(OUT, "snapshot.pkl")
    open(path, "wb").write(good)
    print(f"snapshot.pkl: {len(good):,} bytes, protocol {pickle.DEFAULT_PROTOCOL}, {len(expected_state)} state-dict tensors")

    # Python reads it back (stand-in persistence) to the same state dict, and our Python
    # converter turns it into the expected file.
    back = pickle.loads(good)
    assert type(back["ema"]).__name__ == "EDMPrecond" and type(back["ema"].model).__name__ == "DhariwalUNet"
    state = back["ema"].state_dict()
    assert list(state) == list(expected_state), "state-dict names and order survive"
    for k, v in expected_state.items():
        assert torch.equal(state[k], v), k
    expected = os.path.join(OUT, "snapshot_expected.safetensors")
    config = convert_edm_pkl.convert(path, expected, dropout=CONFIG["dropout"], label_dropout=CONFIG["labelDropout"])
    assert config == CONFIG, (config, CONFIG)
    got, meta = st_io.load(expected)
    reference, _ = st_io.load(os.path.join(edm_model.LISTINGS, "edm_tiny_from_pkl.safetensors"))
    assert set(got) == set(reference) and all(np.array_equal(got[k], reference[k]) for k in reference), \
        "same weights as make_edm_fixtures.py's converted tiny network"

    # Malformed variants.
    evil_net = copy.deepcopy(net)
    evil_net.model._init_kwargs["label_dropout"] = Evil()
    evil = pickle.dumps(snapshot_dict(evil_net))
    assert b"posix" in evil and b"system" in evil
    open(os.path.join(OUT, "snapshot_evil_global.pkl"), "wb").write(evil)
    open(os.path.join(OUT, "snapshot_truncated.pkl"), "wb").write(good[: int(len(good) * 0.6)])
    buf = io.BytesIO()
    BadStoragePickler(buf).dump(data)
    open(os.path.join(OUT, "snapshot_bad_storage.pkl"), "wb").write(buf.getvalue())
    # Both broken ones fail in Python too (the evil one is not loaded: it would run).
    for name in ("snapshot_truncated.pkl", "snapshot_bad_storage.pkl"):
        try:
            pickle.loads(open(os.path.join(OUT, name), "rb").read())
        except Exception as e:  # noqa: BLE001
            print(f"  pickle.load({name}) fails: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:90]}")
        else:
            raise AssertionError(f"{name} should not load")
    for name in sorted(os.listdir(OUT)):
        if name.startswith("snapshot"):
            print(f"{name}: {os.path.getsize(os.path.join(OUT, name)):,} bytes")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        main()
