"""PyTorch CPU timings of our ADM UNet (edm_model.py), the side-by-side baseline for the Swift
EDM benchmarks:

  imagenet64 forward          batch 1, no_grad, eval mode (D(x; σ, y): preconditioning + F)
  imagenet64 forward+backward batch 1, the EDM loss with fixed draws, train mode (dropout 0.1),
                              backward into every parameter
  cpu64Tiny / cpu64Small      one teacher training step at batch 16 and 32: EDM loss with label
                              dropout, backward, global gradient norm, AdamW, EMA update

Each case runs in its own process (so `peak_rss_mb`, the process's maximum resident set, belongs
to that case alone; `base_rss_mb` is the same process before the model is built), does one
warm-up run and reports the median of --repeats runs. GFLOP counts 2 per multiply-add of the
convolutions, linear layers and attention products (the Swift `forwardCost`); forward+backward
and training steps count 3× the forward. Prints one JSON line per case.

    python3 reference/bench_edm.py                 # all cases, 2 threads, 3 repeats
    python3 reference/bench_edm.py --case imagenet64-forward --repeats 5
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

# Idle OpenMP workers sleep instead of spinning (as the project's scripts run Swift): spinning
# workers on a shared 2-core machine stall every parallel region (measured: imagenet64 forward
# 6–10 s spinning vs 3–4 s passive under the same load). libgomp reads this when torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edm_model  # noqa: E402

CASES = ["imagenet64-forward", "imagenet64-fwdbwd",
         "cpu64Tiny-train-16", "cpu64Tiny-train-32", "cpu64Small-train-16", "cpu64Small-train-32"]


def forward_gflop(config, batch=1):
    """Forward FLOPs / 1e9 (the Swift `UNetConfig.forwardCost`): convolutions, linear layers,
    the two attention products."""
    c = config
    E, M = c["modelChannels"] * c["channelMultEmb"], c["modelChannels"]
    conv = lambda cin, cout, k, r: 2.0 * cin * cout * k * k * r * r  # noqa: E731
    total = 2.0 * (M * E + E * E + c["labelDim"] * E)
    with torch.device("meta"):
        net = edm_model.ADMUNet(c)
    total += conv(c["inChannels"], M * c["channelMult"][0], 3, c["resolution"])
    for name, block in list(net.enc.items()) + list(net.dec.items()):
        if name.endswith("_conv"):
            continue
        r = int(name.split("x")[0])
        cin, cout = block.norm0.weight.shape[0], block.out_channels
        total += conv(cin, cout, 3, r) + conv(cout, cout, 3, r) + 2.0 * E * 2 * cout
        if cin != cout:
            total += conv(cin, cout, 1, r)
        if block.heads:
            total += conv(cout, 4 * cout, 1, r) + 4.0 * (r * r) ** 2 * cout
    total += conv(net.out_norm.weight.shape[0], c["outChannels"], 3, c["resolution"])
    return total * batch / 1e9


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def inputs(config, batch, g):
    C, R, K = config["inChannels"], config["resolution"], config["labelDim"]
    x = torch.rand(batch, C, R, R, generator=g) * 2 - 1
    y = torch.nn.functional.one_hot(torch.randint(0, K, (batch,), generator=g), K).float()
    return x, y


def draws(batch, shape, g, label_dropout):
    sigma = torch.exp(-1.2 + 1.2 * torch.randn(batch, generator=g, dtype=torch.float64))
    noise = torch.randn(shape, generator=g)
    drop = (torch.rand(batch, generator=g) < label_dropout).tolist()
    return sigma, noise, drop


def timed(fn, repeats):
    fn()                                       # warm-up
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return runs


def run_case(case, repeats):
    g = torch.Generator().manual_seed(0)
    base = rss_mb()
    preset, kind = case.split("-")[0], case.split("-")[1]
    config = edm_model.PRESETS[preset]
    net = edm_model.Denoiser(config)
    edm_model.init_training(net, g)
    result = {"case": case, "preset": preset, "parameters": sum(p.numel() for p in net.parameters())}

    if kind == "forward":
        batch = 1
        net.eval()
        x, y = inputs(config, batch, g)
        def step():
            with torch.no_grad():
                net(x * 80, 80.0, y)
        work = forward_gflop(config, batch)
    elif kind == "fwdbwd":
        batch = 1
        net.train()
        x, y = inputs(config, batch, g)
        sigma, noise, drop = draws(batch, x.shape, g, 0.0)
        def step():
            net.zero_grad(set_to_none=True)
            edm_model.edm_loss(net, x, y, sigma, noise, drop).backward()
        work = 3 * forward_gflop(config, batch)
    else:
        batch = int(case.split("-")[2])
        net.train()
        ema = [p.detach().clone() for p in net.parameters()]
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
        x, y = inputs(config, batch, g)
        def step():
            sigma, noise, drop = draws(batch, x.shape, g, config["labelDropout"])
            opt.zero_grad(set_to_none=True)
            edm_model.edm_loss(net, x, y, sigma, noise, drop).backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), float("inf"))   # the logged global norm
            opt.step()
            with torch.no_grad():
                for e, p in zip(ema, net.parameters()):
                    e.lerp_(p, 1 - 0.999)
        work = 3 * forward_gflop(config, batch)

    runs = timed(step, repeats)
    median = statistics.median(runs)
    result.update({
        "batch": batch, "median_s": round(median, 4), "runs_s": [round(r, 4) for r in runs],
        "gflop": round(work, 2), "gflops_per_s": round(work / median, 1),
        "base_rss_mb": round(base), "peak_rss_mb": round(rss_mb()), "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "loadavg": os.getloadavg()[0],
    })
    if kind == "train":
        result["images_per_s"] = round(batch / median, 2)
    return result


def main():
    p = argparse.ArgumentParser(description="PyTorch CPU timings of the ADM UNet (see the module docstring)")
    p.add_argument("--case", choices=CASES, help="run one case in this process (default: every case, one process each)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    if a.case:
        torch.set_num_threads(a.threads)
        torch.set_num_interop_threads(1)
        print(json.dumps(run_case(a.case, a.repeats)), flush=True)
        return
    print(json.dumps({"torch": torch.__version__, "threads": a.threads, "repeats": a.repeats,
                      "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}), flush=True)
    for case in CASES:
        subprocess.run([sys.executable, os.path.abspath(__file__), "--case", case,
                        "--threads", str(a.threads), "--repeats", str(a.repeats)], check=True)
    print(json.dumps({"uptime_after": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}), flush=True)


if __name__ == "__main__":
    main()
