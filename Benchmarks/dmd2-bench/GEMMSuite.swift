// `gemm`: single-precision GEMM through the core's backend seam versus BLIS called directly.
//
// Three candidates per shape, timed interleaved:
//   core       Compute.backend.gemm — CPUBackend picks BLIS's packing (shouldPack) per call and
//              cuts the product into blocks (gemmBlocks) that single-threaded BLIS calls
//              compute on our thread pool
//   raw        cblas_sgemm with BLIS's forced packing of A and B switched off (BLIS's default),
//              BLIS's own (OpenMP) threading on --threads threads
//   raw+pack   cblas_sgemm with packing of A and B forced on, BLIS's threading likewise
// Shapes: squares, and the GEMMs of a 3×3 conv at the ADM shapes (per sample: O = C output
// channels, L = H·W positions, K = 9·C):
//   forward  y [O, L]    = W [O, K] · col [K, L]        m = O, n = L, k = K
//   dW       dW [O, K]   = dY [O, L] · colᵀ [L, K]      m = O, n = K, k = L   (B transposed)
//   dcol     dcol [K, L] = Wᵀ [K, O] · dY [O, L]        m = K, n = L, k = O   (A transposed)
// FLOPs = 2·m·n·k.
import CBLIS
import DMD2Core

struct GEMMShape {
    var label: String
    var transA = false, transB = false
    var m, n, k: Int

    var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
    /// Row strides of A and B as stored (A is [m, k] or, transposed, [k, m]; likewise B).
    var lda: Int { transA ? m : k }
    var ldb: Int { transB ? k : n }

    static func squares(_ sizes: [Int]) -> [GEMMShape] {
        sizes.map { GEMMShape(label: "square \($0)", m: $0, n: $0, k: $0) }
    }

    /// The three GEMMs of a 3×3 conv with C in and out channels on an H×H map, per sample.
    static func conv3x3(C: Int, H: Int) -> [GEMMShape] {
        let (O, L, K) = (C, H * H, 9 * C)
        let tag = "C\(C) \(H)x\(H)"
        return [
            GEMMShape(label: "conv fwd  \(tag)", m: O, n: L, k: K),
            GEMMShape(label: "conv dW   \(tag)", transB: true, m: O, n: K, k: L),
            GEMMShape(label: "conv dcol \(tag)", transA: true, m: K, n: L, k: O),
        ]
    }

    static let admConvShapes = conv3x3(C: 192, H: 64) + conv3x3(C: 384, H: 32) + conv3x3(C: 768, H: 8)
}

/// BLIS's global switches for forcing the packing of A and B, and its own thread count (the
/// core always runs BLIS on one thread; the raw candidates use BLIS's threading).
func setBLISPacking(_ on: Bool, threads: Int = 1) {
    bli_pack_set_pack_a(on)
    bli_pack_set_pack_b(on)
    bli_thread_set_num_threads(Int64(threads))
}

/// cblas_sgemm for `s` with α = 1, β = 0, row-major.
func rawSgemm(_ s: GEMMShape, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>) {
    cblas_sgemm(CblasRowMajor, s.transA ? CblasTrans : CblasNoTrans, s.transB ? CblasTrans : CblasNoTrans,
                f77_int(s.m), f77_int(s.n), f77_int(s.k), 1, a, f77_int(s.lda), b, f77_int(s.ldb),
                0, c, f77_int(s.n))
}

func runGEMMSuite(_ settings: RunSettings, shapes: [GEMMShape]) {
    print("""
        == gemm: sgemm, α = 1, β = 0, row-major; GFLOP/s = 2·m·n·k / time
           candidates interleaved per repeat; warm-up \(settings.warmup), repeats \(settings.repeats), \
        samples ≥ \(Int(settings.minSampleSeconds * 1e3)) ms
           core = Compute.backend.gemm (its own packing choice and block count per shape: columns \
        "core packs", "core blocks"; blocks run on \(Threads.count) pool thread(s)); raw = cblas_sgemm, packing off; \
        raw+pack = cblas_sgemm, packing forced on; raw runs BLIS's own threading on \(Threads.count) thread(s)
           cells: median (min–max) GFLOP/s; ratios: median over repeats of paired time ratios
        """)
    var table = Table(["shape", "m", "n", "k", "core packs", "core blocks", "core", "raw", "raw+pack",
                       "core/raw", "core/raw+pack", "core/best raw"])
    var rng = RandomGenerator(seed: 1)
    for s in shapes {
        let a = Buffer(rng.uniform([s.m * s.k], low: -1, high: 1, as: Float.self).scalars)
        let b = Buffer(rng.uniform([s.k * s.n], low: -1, high: 1, as: Float.self).scalars)
        // One output buffer per candidate, so their results can be compared afterwards.
        let c = (0..<3).map { _ in Buffer([Float](repeating: 0, count: s.m * s.n)) }
        let corePacks = CPUBackend.shouldPack(m: s.m, n: s.n, k: s.k)
        let timings = measureInterleaved(settings, [
            // The core remembers which packing it last set and does not set it again; the raw
            // candidates change it behind its back, so put back what the core expects here.
            Candidate(name: "core", prepare: { setBLISPacking(corePacks) }) {
                Compute.backend.gemm(
                    transA: s.transA, transB: s.transB, m: s.m, n: s.n, k: s.k,
                    alpha: 1, a: a.pointer, lda: s.lda, b: b.pointer, ldb: s.ldb,
                    beta: 0, c: c[0].pointer, ldc: s.n)
            },
            Candidate(name: "raw", prepare: { setBLISPacking(false, threads: Threads.count) }) {
                rawSgemm(s, a.pointer, b.pointer, c[1].pointer)
            },
            Candidate(name: "raw+pack", prepare: { setBLISPacking(true, threads: Threads.count) }) {
                rawSgemm(s, a.pointer, b.pointer, c[2].pointer)
            },
        ])
        let (core, raw, rawPack) = (timings[0], timings[1], timings[2])
        let gflops = { (t: Double) in s.flops / t / 1e9 }
        let vsRaw = pairedRatio(raw, core), vsPack = pairedRatio(rawPack, core)
        let vsBest = Timing(samples: (0..<core.samples.count).map {
            Swift.min(raw.samples[$0], rawPack.samples[$0]) / core.samples[$0]
        }).median
        let flag = vsBest < 0.95 && s.m * s.n * s.k >= 256 * 256 * 256 ? " <" : ""
        table.add([s.label, "\(s.m)", "\(s.n)", "\(s.k)", corePacks ? "yes" : "no",
                   "\(CPUBackend.gemmBlocks(m: s.m, n: s.n, k: s.k).count)",
                   rateRange(core, gflops), rateRange(raw, gflops), rateRange(rawPack, gflops),
                   fmt(vsRaw, 2), fmt(vsPack, 2), fmt(vsBest, 2) + flag])
        reportMismatch(s, c.map { Array($0.elements) })
    }
    bli_thread_set_num_threads(1)   // back to what the core expects for the suites after this one
    print(table.render())
    print("""
        ratios are time(raw)/time(core): above 1 means the core is faster. \
        "<" marks core/best raw < 0.95 at m·n·k ≥ 256³ (the target is ≥ 0.95).
        """)
}

/// Sanity check (reported, not asserted): the three candidates computed the same product up to
/// rounding (packing changes only the summation order).
private func reportMismatch(_ s: GEMMShape, _ outputs: [[Float]]) {
    let scale = outputs[1].lazy.map { Swift.abs($0) }.max() ?? 0
    for (j, name) in [(0, "core"), (2, "raw+pack")] {
        let diff = zip(outputs[j], outputs[1]).lazy.map { Swift.abs($0 - $1) }.max() ?? 0
        if diff > 1e-4 * Swift.max(scale, 1) {
            print("WARNING: \(s.label): \(name) differs from raw by \(diff) (max |C| = \(scale))")
        }
    }
}
