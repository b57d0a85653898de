"""PyTorch CPU timings of one DMD2 iteration by phase: the side-by-side baseline for the Swift
`dmd2-bench dmd2` suite (Benchmarks/dmd2-bench/DMD2Suite.swift), which runs this script per case
and reads the JSON line it prints.

The iteration is reference/dmd2_step.py's (the code that replays the debug state), on the
cpu64Tiny and cpu64Small presets with dropout 0 (every DMD2 network), cases NAME =
<preset>-<batch>: cpu64Tiny-8, cpu64Tiny-16, cpu64Small-8, cpu64Small-16, and (on request only)
imagenet64-2, the full ImageNet-64 network at batch 2. G, μ_real and μ_fake
are copies of one random teacher with non-zero output layers (`edm_model.init_random`, so every
phase does its real work); the GAN head is fresh; real images U[−1, 1); one set of draws (z, y,
the five (t, ε)) is drawn once and reused, as the Swift side does.

  generator iteration (TTUR: every 5th), phase by phase, the names the Swift suite prints:
    g_forward      x_g = G(80·z; 80, y), recorded for backward
    dm_forwards    L_DM: μ_real and μ_fake on x_g + σ·ε without grad, the normaliser, g
    gan_generator  L_G through μ_fake's encoder + the head, and ∂(L_DM + w_G·L_G)/∂x_g
    g_backward     that image gradient pushed through G (∂L/∂θ_G)
    critic         L_fake + w_D·L_D forward and backward into μ_fake and the head
                   (also split as critic_forward / critic_backward in `phases_detail`)
    optimizer      clip to 10 and AdamW for G, then for μ_fake + head
  critic-only iteration (the other four): G forward without grad, critic, critic optimiser.
  TTUR-5 iteration = (generator + 4 × critic-only)/5.

Each case runs in its own process (so `peak_rss_mb`, the process's ru_maxrss, is that case's;
`base_rss_mb` is the same process before the networks are built). After one warm-up (--warmup) of each
kind, every repeat runs one generator iteration and one critic-only iteration; the result holds
the median per phase and per iteration kind. A --case run prints one JSON line (the Swift suite
reads the last line starting with "{"); a run of several cases prints one line per case, a
table on stderr, and with `--json PATH` writes every result into one file.

    python3 reference/bench_dmd2.py                            # every case, 1 thread, 3 repeats
    python3 reference/bench_dmd2.py --threads 2 --json /tmp/dmd2-torch.json
    python3 reference/bench_dmd2.py --case cpu64Tiny-8 --repeats 5 --json
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

# Idle OpenMP workers sleep instead of spinning (shared machine); read when torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_edm  # noqa: E402
import dmd2_step  # noqa: E402
import edm_model  # noqa: E402

CASES = ["cpu64Tiny-8", "cpu64Tiny-16", "cpu64Small-8", "cpu64Small-16", "imagenet64-2"]
# What runs without --case/--cases; imagenet64-2 (the full ImageNet-64 network, 295.9 M parameters
# per UNet, batch 2) takes minutes per iteration: ask for it, with --warmup 0 --repeats 1.
DEFAULT_CASES = ["cpu64Tiny-8", "cpu64Tiny-16", "cpu64Small-8", "cpu64Small-16"]
PHASES = ["g_forward", "dm_forwards", "gan_generator", "g_backward", "critic", "optimizer"]
# The recipe (docs/METHOD.md §2); no warm-up, so every step runs at lr.
SETTINGS = {"learningRate": 2e-6, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weightDecay": 0.01,
            "warmUpSteps": 0, "maxGradNorm": 10.0}
W_GAN_G, W_GAN_D = 3e-3, 1e-2


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Marks:
    """Phase clock: each call records the seconds since the previous one under a name."""

    def __init__(self):
        self.times = {}
        self.last = time.perf_counter()

    def __call__(self, name):
        now = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + now - self.last
        self.last = now


def build(config, g):
    """μ_real (frozen), G and μ_fake (copies of one random teacher), a fresh head."""
    teacher = edm_model.Denoiser(config)
    edm_model.init_random(teacher, g)
    nets = []
    for _ in range(3):
        net = edm_model.Denoiser(config)
        net.load_state_dict(teacher.state_dict())
        nets.append(net)
    G, real, fake = nets
    for p in real.parameters():
        p.requires_grad_(False)
    Cb = dmd2_step.bottleneck_channels(config)
    return G, real, fake, dmd2_step.GANHead(Cb, edm_model.group_count(Cb))


def draw(config, batch, g):
    """One iteration's random inputs (the order of Sources/DMD2/Draws.swift), real images and labels."""
    C, R, K = config["inChannels"], config["resolution"], config["labelDim"]
    shape = (batch, C, R, R)
    one_hot = lambda: torch.nn.functional.one_hot(torch.randint(0, K, (batch,), generator=g), K).float()  # noqa: E731
    z = torch.randn(shape, generator=g)
    labels = one_hot()
    draws = {}
    for name in dmd2_step.DRAWS:
        lo, hi = (20, 980) if name == "dm" else (0, 999)
        t = torch.randint(lo, hi + 1, (batch,), generator=g).tolist()
        draws[name] = (dmd2_step.grid_sigmas(t), torch.randn(shape, generator=g))
    real_images = torch.rand(shape, generator=g) * 2 - 1
    return z, labels, draws, real_images, one_hot()


def run_case(case, repeats, warmup=1):
    preset, batch = case.split("-")[0], int(case.split("-")[1])
    g = torch.Generator().manual_seed(0)
    base = rss_mb()
    config = dict(edm_model.PRESETS[preset], dropout=0.0)
    G, real, fake, head = build(config, g)
    g_params, c_params = list(G.parameters()), list(fake.parameters()) + list(head.parameters())
    opt_g, opt_c = dmd2_step.make_adamw(g_params, SETTINGS), dmd2_step.make_adamw(c_params, SETTINGS)
    z, labels, draws, real_images, real_labels = draw(config, batch, g)
    steps = {"g": 0, "c": 0}

    def zero_grad():
        for p in g_params + c_params:
            p.grad = None

    def critic(mark, xg):
        dmd2_step.critic_phase(fake, head, xg, labels, real_images, real_labels, draws["fake"], draws["disc_fake"],
                               draws["disc_real"], W_GAN_D, timings=mark)

    def generator_iteration():
        zero_grad()
        mark = Marks()
        xg = dmd2_step.generate(G, z, labels)
        mark("g_forward")
        dmd2_step.generator_phase(G, real, fake, head, xg, labels, draws["dm"], draws["gen_gan"], W_GAN_G, timings=mark)
        critic(mark, xg)
        steps["g"] += 1
        steps["c"] += 1
        dmd2_step.clip_and_step(opt_g, g_params, SETTINGS, steps["g"])
        dmd2_step.clip_and_step(opt_c, c_params, SETTINGS, steps["c"])
        mark("optimizer")
        t = mark.times
        return {"g_forward": t["g_forward"], "dm_forwards": t["dm_forward"], "gan_generator": t["gan_fwd_bwd"],
                "g_backward": t["g_backward"], "critic": t["critic_fwd"] + t["critic_bwd"], "optimizer": t["optimizer"],
                "critic_forward": t["critic_fwd"], "critic_backward": t["critic_bwd"]}

    def critic_iteration():
        zero_grad()
        mark = Marks()
        with torch.no_grad():
            xg = dmd2_step.generate(G, z, labels)
        mark("g_forward")
        critic(mark, xg)
        steps["c"] += 1
        dmd2_step.clip_and_step(opt_c, c_params, SETTINGS, steps["c"])
        mark("optimizer")
        t = mark.times
        return {"g_forward": t["g_forward"], "critic_forward": t["critic_fwd"], "critic_backward": t["critic_bwd"],
                "optimizer": t["optimizer"]}

    for _ in range(warmup):                                       # warm-up
        generator_iteration()
        critic_iteration()
    gen_runs, crit_runs = [], []
    for _ in range(repeats):
        gen_runs.append(generator_iteration())
        crit_runs.append(critic_iteration())
    med = lambda runs, k: statistics.median(r[k] for r in runs)  # noqa: E731
    gen_total = statistics.median(sum(r[k] for k in PHASES) for r in gen_runs)
    crit_total = statistics.median(sum(r.values()) for r in crit_runs)
    ttur5 = (gen_total + 4 * crit_total) / 5
    return {
        # The fields the Swift suite decodes (DMD2CaseResult).
        "case": case, "batch": batch, "threads": torch.get_num_threads(),
        "phases": {k: med(gen_runs, k) for k in PHASES},
        "generator_iteration_s": gen_total, "critic_iteration_s": crit_total, "ttur5_iteration_s": ttur5,
        "peak_rss_mb": rss_mb(),
        # More detail.
        "preset": preset, "phases_detail": {k: med(gen_runs, k) for k in gen_runs[0]},
        "critic_phases": {k: med(crit_runs, k) for k in crit_runs[0]},
        "generator_runs_s": [sum(r[k] for k in PHASES) for r in gen_runs],
        "critic_runs_s": [sum(r.values()) for r in crit_runs],
        "images_per_s_ttur5": batch / ttur5, "unet_forward_gflop": bench_edm.forward_gflop(config, batch),
        "parameters_per_unet": sum(p.numel() for p in G.parameters()), "head_parameters": sum(p.numel() for p in head.parameters()),
        "base_rss_mb": base, "repeats": repeats, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "loadavg": os.getloadavg()[0], "torch": torch.__version__,
    }


def print_table(results):
    """Medians in ms, one row per case (stderr)."""
    cols = PHASES + ["gen iter", "critic iter", "TTUR-5", "img/s", "peak MiB"]
    print(f"\n{'case':<15}" + "".join(f"{c:>14}" for c in cols), file=sys.stderr)
    for r in results:
        cells = [r["phases"][k] * 1e3 for k in PHASES] + [r["generator_iteration_s"] * 1e3, r["critic_iteration_s"] * 1e3,
                                                           r["ttur5_iteration_s"] * 1e3]
        print(f"{r['case']:<15}" + "".join(f"{c:14.0f}" for c in cells)
              + f"{r['images_per_s_ttur5']:14.2f}{r['peak_rss_mb']:14.0f}", file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description="PyTorch CPU timings of one DMD2 iteration by phase (see the module docstring)")
    p.add_argument("--case", choices=CASES, help="run one case in this process and print its JSON line")
    p.add_argument("--cases", help=f"comma-separated subset (default: {', '.join(DEFAULT_CASES)}; also {', '.join(c for c in CASES if c not in DEFAULT_CASES)})")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 or 2 on the project machine; default 1)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations of each kind first (default 1)")
    p.add_argument("--json", nargs="?", const=True, metavar="PATH",
                   help="JSON output: a --case run prints its JSON line either way; with several cases, write them all to PATH")
    a = p.parse_args()
    if a.threads < 1:
        p.error("--threads must be ≥ 1")
    if a.case:
        torch.set_num_threads(a.threads)
        torch.set_num_interop_threads(1)
        print(json.dumps(run_case(a.case, a.repeats, a.warmup)), flush=True)
        return
    cases = a.cases.split(",") if a.cases else DEFAULT_CASES
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        p.error(f"unknown cases {unknown}; choose from {CASES}")
    uptime = lambda: subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()  # noqa: E731
    meta = {"torch": torch.__version__, "threads": a.threads, "repeats": a.repeats, "uptime": uptime()}
    print(json.dumps(meta), flush=True)
    results = []
    for case in cases:
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--case", case, "--threads", str(a.threads),
                              "--repeats", str(a.repeats), "--warmup", str(a.warmup)], check=True, capture_output=True, text=True).stdout
        line = [ln for ln in out.splitlines() if ln.startswith("{")][-1]
        print(line, flush=True)
        results.append(json.loads(line))
    meta["uptime_after"] = uptime()
    print(json.dumps({"uptime_after": meta["uptime_after"]}), flush=True)
    print_table(results)
    if isinstance(a.json, str):
        with open(a.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
