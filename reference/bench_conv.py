"""PyTorch CPU baseline for the Swift conv2d benchmark.

Default mode: times a 3x3, stride 1, padding 1, float32, NCHW conv2d (with bias,
Cin = Cout = C) at the ADM UNet shapes for batch N = 8:
    C=192 at 64x64, C=384 at 32x32, C=768 at 8x8
  * fwd_ms    : forward only, under torch.no_grad()
  * fwdbwd_ms : forward + backward producing the input and weight gradients
After warm-up runs, each figure is the median of --repeats timed runs.
gflops_fwd counts 2 FLOP per multiply-add: 2*N*Cout*H*W*Cin*9 / fwd time;
gflops_fwdbwd counts three times that work (forward, input grad, weight grad).
Prints one JSON line per shape.

--gemm mode: times square float32 matrix multiplies (torch.mm) of size
64..2048 (powers of two) and prints one JSON line per size with ms and GFLOP/s.

Threads default to 2 (the project machine's core count); see --threads.
Example: python3 reference/bench_conv.py --threads 2 --repeats 5
"""

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = [
    # (N, C, H, W)
    (8, 192, 64, 64),
    (8, 384, 32, 32),
    (8, 768, 8, 8),
]


def median_ms(fn, repeats, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bench_conv(repeats, warmup):
    for N, C, H, W in SHAPES:
        torch.manual_seed(0)
        x = torch.randn(N, C, H, W, dtype=torch.float32)
        w = torch.randn(C, C, 3, 3, dtype=torch.float32) / (C * 9) ** 0.5
        b = torch.randn(C, dtype=torch.float32)
        gy = torch.randn(N, C, H, W, dtype=torch.float32)

        def fwd():
            with torch.no_grad():
                return F.conv2d(x, w, b, stride=1, padding=1)

        xg = x.clone().requires_grad_(True)
        wg = w.clone().requires_grad_(True)

        def fwdbwd():
            y = F.conv2d(xg, wg, b, stride=1, padding=1)
            return torch.autograd.grad(y, [xg, wg], gy)  # dL/dx and dL/dweight

        fwd_ms = median_ms(fwd, repeats, warmup)
        fwdbwd_ms = median_ms(fwdbwd, repeats, warmup)
        flops = 2.0 * N * C * H * W * C * 9
        print(json.dumps({
            "shape": f"N{N} C{C} {H}x{W} k3s1p1",
            "fwd_ms": round(fwd_ms, 2),
            "fwdbwd_ms": round(fwdbwd_ms, 2),
            "gflops_fwd": round(flops / fwd_ms / 1e6, 1),
            "gflops_fwdbwd": round(3 * flops / fwdbwd_ms / 1e6, 1),
            "threads": torch.get_num_threads(),
        }), flush=True)


def bench_gemm(repeats, warmup):
    n = 64
    while n <= 2048:
        torch.manual_seed(0)
        a = torch.randn(n, n, dtype=torch.float32)
        b = torch.randn(n, n, dtype=torch.float32)
        out = torch.empty(n, n, dtype=torch.float32)
        # Small sizes are too quick for one call to time well: repeat inside.
        inner = max(1, (256 // n) ** 3)

        def mm():
            for _ in range(inner):
                torch.mm(a, b, out=out)

        ms = median_ms(mm, repeats, warmup) / inner
        print(json.dumps({
            "gemm": n,
            "ms": round(ms, 4),
            "gflops": round(2.0 * n ** 3 / ms / 1e6, 1),
            "threads": torch.get_num_threads(),
        }), flush=True)
        n *= 2


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per figure (median; default 5)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    ap.add_argument("--gemm", action="store_true", help="time square sgemm 64..2048 instead")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.gemm:
        bench_gemm(args.repeats, args.warmup)
    else:
        bench_conv(args.repeats, args.warmup)


if __name__ == "__main__":
    main()
