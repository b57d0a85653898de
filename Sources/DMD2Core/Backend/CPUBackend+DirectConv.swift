// A direct Float convolution: our own register-blocked GEMM with the im2col unfolding fused
// into the packing of its B operand, so no col matrix is written and BLIS never packs one.
//
// It computes exactly what `Conv2D.forward`'s lowering does — Y_n [O, L] = W [O, K] · col_n [K, L]
// + b, col_n = im2col(x_n) (ConvPrimitives.conv2dDirect names that composition) — as one GEMM
// over all N·L output columns:
//
//   A = W [O, K], packed once per call into panels of `mr` rows (zero rows past O);
//   B = col [K, N·L], never formed: each column block's k-slab is packed into panels of `nr`
//       columns straight from x (zero padding written while packing);
//   the micro-kernel keeps an mr × nr tile of Y in 12 SIMD8<Float> registers (4 rows × 3
//   vectors: a broadcast of one W value times three vectors of col, fused multiply-add) and
//   stores it straight into y [N, O, L] (bias added at the first k-slab's store).
//
// Blocking: k in slabs of at most `kcMax`; columns in blocks of at most `ncMax` (the unit of
// work handed to a thread), each packed and multiplied one `nr`-column panel at a time, so the
// packed panel is still in L1 when every row panel of A (all of A's slab, in L2) runs over it.
// (Packing a whole kc × nc block first, as BLIS does, spilled it to L2: the packing then cost
// as much as the multiply.) Why 4 × 24 and not BLIS's 6 × 16: conv GEMMs have
// O = 16, 32, 64 … rows, a multiple of 4 (6 × 16 wastes 11 % of the tiles at O = 16 or 32);
// both run at the same speed from L1 (docs/PERFORMANCE-FACTS.md has the measurements).
//
// Determinism: every output element is one dot product summed in the same order — within a
// k-slab from p = 0 up, slab after slab added to the stored value — whatever column block or
// thread computes it. Column blocks depend only on the sizes. So the result is bitwise the
// same for any thread count and any batch size N (an image's outputs do not depend on its
// neighbours in the batch).

extension CPUBackend {
    public func conv2dDirect<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, N: Int, C: Int, H: Int, W: Int,
        weight: UnsafeBufferPointer<T>, O: Int, kernel k: Int, stride s: Int, padding p: Int,
        bias: UnsafeBufferPointer<T>?, _ y: UnsafeMutableBufferPointer<T>
    ) -> Bool {
        // Double stays on BLIS (the gradient checks run in Double).
        guard T.self == Float.self else { return false }
        let shape = DirectConv.Shape(N: N, C: C, H: H, W: W, O: O, k: k, s: s, p: p)
        precondition(x.count == N * C * H * W, "conv2dDirect: x holds \(x.count) values, [\(N), \(C), \(H), \(W)] needs \(N * C * H * W)")
        precondition(weight.count == O * shape.K, "conv2dDirect: weight holds \(weight.count) values, [\(O), \(C), \(k), \(k)] needs \(O * shape.K)")
        precondition(bias == nil || bias!.count == O, "conv2dDirect: bias holds \(bias!.count) values for \(O) output channels")
        precondition(y.count == N * O * shape.L, "conv2dDirect: y holds \(y.count) values, [\(N), \(O), \(shape.Ho), \(shape.Wo)] needs \(N * O * shape.L)")
        guard N > 0 else { return true }
        func floats(_ b: UnsafeBufferPointer<T>) -> UnsafePointer<Float> {
            UnsafeRawPointer(b.baseAddress!).assumingMemoryBound(to: Float.self)
        }
        DirectConv.forward(floats(x), floats(weight), bias.map(floats),
                           UnsafeMutableRawPointer(y.baseAddress!).assumingMemoryBound(to: Float.self), shape,
                           weightLayout: .forward)
        return true
    }

    /// dX [N, C, H, W] = col2im(Wᵀ · dY) for a stride-1 conv, computed as the forward
    /// convolution of dY with the flipped, transposed kernel — W′[c, o, u, v] = W[o, c, k−1−u, k−1−v],
    /// padding k−1−p — which is the same sum (dX[c, h, w] = Σ_{o,u,v} W[o, c, u, v]·dY[o, h+p−u, w+p−v])
    /// without a dcol matrix and with no adds into dX. W′ is never formed: A's packing reads W
    /// in that order.
    public func conv2dDirectBackwardData<T: TensorScalar>(
        _ dY: UnsafeBufferPointer<T>, N: Int, C: Int, H: Int, W: Int,
        weight: UnsafeBufferPointer<T>, O: Int, kernel k: Int, stride s: Int, padding p: Int,
        _ dX: UnsafeMutableBufferPointer<T>
    ) -> Bool {
        guard T.self == Float.self, s == 1, p <= k - 1 else { return false }
        let Ho = H + 2 * p - k + 1, Wo = W + 2 * p - k + 1
        precondition(Ho >= 1 && Wo >= 1, "conv2dDirectBackwardData: kernel \(k)×\(k) does not fit input \(H)×\(W) with padding \(p)")
        precondition(dY.count == N * O * Ho * Wo, "conv2dDirectBackwardData: dY holds \(dY.count) values, [\(N), \(O), \(Ho), \(Wo)] needs \(N * O * Ho * Wo)")
        precondition(weight.count == O * C * k * k, "conv2dDirectBackwardData: weight holds \(weight.count) values, [\(O), \(C), \(k), \(k)] needs \(O * C * k * k)")
        precondition(dX.count == N * C * H * W, "conv2dDirectBackwardData: dX holds \(dX.count) values, [\(N), \(C), \(H), \(W)] needs \(N * C * H * W)")
        guard N > 0 else { return true }
        // The transposed problem: O input channels, C outputs, padding k − 1 − p; its output is H × W.
        let shape = DirectConv.Shape(N: N, C: O, H: Ho, W: Wo, O: C, k: k, s: 1, p: k - 1 - p)
        DirectConv.forward(UnsafeRawPointer(dY.baseAddress!).assumingMemoryBound(to: Float.self),
                           UnsafeRawPointer(weight.baseAddress!).assumingMemoryBound(to: Float.self), nil,
                           UnsafeMutableRawPointer(dX.baseAddress!).assumingMemoryBound(to: Float.self), shape,
                           weightLayout: .flippedTransposed)
        return true
    }
}

extension CPUBackend {
    /// dWeight [O, C, k, k] = Σ_n dY_n [O, L] · im2col(x_n)ᵀ [L, K]: one GEMM dW [O, K] =
    /// dY [O, N·L] · colᵀ [N·L, K] reducing over all N·L output positions, on the same micro-kernel
    /// — A = dY (rows = output channels), B = colᵀ packed straight from x (no col matrix).
    /// Any stride and padding; Float only.
    public func conv2dDirectBackwardWeight<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, _ dY: UnsafeBufferPointer<T>, N: Int, C: Int, H: Int, W: Int,
        O: Int, kernel k: Int, stride s: Int, padding p: Int,
        _ dWeight: UnsafeMutableBufferPointer<T>
    ) -> Bool {
        guard T.self == Float.self else { return false }
        let shape = DirectConv.Shape(N: N, C: C, H: H, W: W, O: O, k: k, s: s, p: p)
        precondition(x.count == N * C * H * W, "conv2dDirectBackwardWeight: x holds \(x.count) values, [\(N), \(C), \(H), \(W)] needs \(N * C * H * W)")
        precondition(dY.count == N * O * shape.L, "conv2dDirectBackwardWeight: dY holds \(dY.count) values, [\(N), \(O), \(shape.Ho), \(shape.Wo)] needs \(N * O * shape.L)")
        precondition(dWeight.count == O * shape.K, "conv2dDirectBackwardWeight: dWeight holds \(dWeight.count) values, [\(O), \(C), \(k), \(k)] needs \(O * shape.K)")
        let dw = UnsafeMutableRawPointer(dWeight.baseAddress!).assumingMemoryBound(to: Float.self)
        guard N > 0 else { dw.update(repeating: 0, count: O * shape.K); return true }
        DirectConv.backwardWeight(UnsafeRawPointer(x.baseAddress!).assumingMemoryBound(to: Float.self),
                                  UnsafeRawPointer(dY.baseAddress!).assumingMemoryBound(to: Float.self), dw, shape)
        return true
    }
}

/// The direct convolution's GEMM (Float only): blocking constants, packing and micro-kernel.
enum DirectConv {
    /// Micro-tile: `mr` rows of Y (output channels) × `nr` columns (output positions).
    static let mr = 4, nr = 24
    /// Largest k-slab (A panel 4·256 floats = 4 KiB and B panel 24·256 = 24 KiB stay in L1).
    static let kcMax = 256
    /// Columns per block: a multiple of `nr`; one block's B slab is 256 × 768 floats (768 KiB).
    static let ncMax = 768
    /// Below this many multiply-adds the column blocks run on the calling thread.
    static let parallelWork = 1 << 22

    struct Shape {
        let N, C, H, W, O, k, s, p: Int
        let Ho, Wo, L, K: Int
        init(N: Int, C: Int, H: Int, W: Int, O: Int, k: Int, s: Int, p: Int) {
            precondition(N >= 0 && C >= 1 && O >= 1 && k >= 1 && s >= 1 && p >= 0,
                         "conv2dDirect: need N ≥ 0, C, O, k, stride ≥ 1 and padding ≥ 0 (got N \(N), C \(C), O \(O), k \(k), stride \(s), padding \(p))")
            precondition(H + 2 * p >= k && W + 2 * p >= k,
                         "conv2dDirect: kernel \(k)×\(k) does not fit input \(H)×\(W) with padding \(p)")
            (self.N, self.C, self.H, self.W, self.O, self.k, self.s, self.p) = (N, C, H, W, O, k, s, p)
            Ho = (H + 2 * p - k) / s + 1
            Wo = (W + 2 * p - k) / s + 1
            L = Ho * Wo
            K = C * k * k
        }
    }

    /// The column blocks of a GEMM with `columns` columns: `ncMax` wide, or narrower (down to
    /// 96) where that would leave fewer than four blocks of a big product, so two threads share
    /// it. From the sizes only.
    static func columnBlock(columns: Int, work: Double) -> Int {
        var nc = ncMax
        if work >= Double(4 * parallelWork), (columns + nc - 1) / nc < 4 {
            nc = Swift.max(96, columns / 4 / nr * nr)
        }
        return nc
    }

    /// How A's element (row o, column q) is read from the weight buffer.
    enum WeightLayout {
        /// w [O, K]: A[o, q] = w[o·K + q].
        case forward
        /// w is a forward weight [C′, O, k, k] of the transposed conv (C′ = this problem's C):
        /// A[o, (c, u, v)] = w[c, o, k−1−u, k−1−v].
        case flippedTransposed
    }

    /// y = conv(x, w) + b for the whole batch.
    static func forward(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
        _ y: UnsafeMutablePointer<Float>, _ g: Shape, weightLayout: WeightLayout
    ) {
        let (O, K) = (g.O, g.K)
        let mPanels = (O + mr - 1) / mr, mPad = mPanels * mr
        let kSlabs = (K + kcMax - 1) / kcMax
        // A: for each k-slab (start pc, width kc), its mPanels panels of kc × mr values, slab
        // after slab: slab b starts at pc·mPad.
        let packedA = alignedFloats(mPad * K)
        defer { packedA.deallocate() }
        for slab in 0..<kSlabs {
            let ks = slabRange(slab, of: kSlabs, K: K)
            for panel in 0..<mPanels {
                var dst = packedA + ks.lowerBound * mPad + panel * ks.count * mr
                for q in ks {
                    for r in 0..<mr {
                        let o = panel * mr + r
                        guard o < O else { dst[r] = 0; continue }
                        switch weightLayout {
                        case .forward:
                            dst[r] = w[o * K + q]
                        case .flippedTransposed:
                            let taps = g.k * g.k, c = q / taps, t = q % taps
                            dst[r] = w[(c * O + o) * taps + (taps - 1 - t)]
                        }
                    }
                    dst += mr
                }
            }
        }
        // Bias padded to whole panels (zeros: adding 0 to a sum leaves it unchanged).
        let biasPad = UnsafeMutablePointer<Float>.allocate(capacity: mPad)
        defer { biasPad.deallocate() }
        for o in 0..<mPad { biasPad[o] = o < O ? (bias?[o] ?? 0) : 0 }

        let columns = g.N * g.L
        let work = Double(O) * Double(columns) * Double(K)
        let nc = columnBlock(columns: columns, work: work)
        let blocks = (columns + nc - 1) / nc
        let box = UncheckedSendable((x, UnsafePointer(packedA), UnsafePointer(biasPad), y))
        let body: (Int) -> Void = { block in
            let (x, a, bias, y) = box.value
            let lo = block * nc
            columnBlock(lo..<Swift.min(lo + nc, columns), x, a, bias, y, g, mPad: mPad, kSlabs: kSlabs)
        }
        if work < Double(parallelWork) {
            for block in 0..<blocks { body(block) }
        } else {
            parallelTasks(blocks, body)
        }
    }

    /// A compute unit's buffers: one packed B panel of up to `kc` rows (64-byte aligned: a panel
    /// row is 96 bytes, so its 32-byte stores and the kernel's loads never straddle a cache line;
    /// malloc's 16-byte alignment split half of them), the mr × nr
    /// tile of partial edges, and mr zeros.
    struct KernelScratch {
        let packedB: UnsafeMutablePointer<Float>
        let tile: UnsafeMutablePointer<Float>
        let zeros: UnsafeMutablePointer<Float>

        init(kc: Int) {
            packedB = alignedFloats(nr * kc)
            tile = .allocate(capacity: mr * nr)
            zeros = .allocate(capacity: mr)
            zeros.initialize(repeating: 0, count: mr)
        }

        func deallocate() {
            packedB.deallocate()
            tile.deallocate()
            zeros.deallocate()
        }
    }

    /// Uninitialised Floats on a 64-byte boundary (free with `deallocate()`).
    static func alignedFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer.allocate(byteCount: Swift.max(1, count) * 4, alignment: 64)
            .bindMemory(to: Float.self, capacity: Swift.max(1, count))
    }

    /// The `slab`-th of `slabs` near-equal k-slabs of 0..<K (288 → 144 + 144, not 256 + 32).
    @inline(__always)
    static func slabRange(_ slab: Int, of slabs: Int, K: Int) -> Range<Int> {
        chunkRange(slab, of: slabs, total: K)
    }

    /// One run of consecutive output columns inside one output row of one image, and where it
    /// lands in a B panel; `clip` is where its taps start in `DirectConv.columnBlock`'s table.
    struct Segment {
        var lane: Int       // first column within the panel
        var count: Int
        var image: Int      // n
        var col: Int        // j of the first column
        var clip: Int
    }

    /// Y's columns `cols` (J = n·L + i·Wo + j) for every output channel, one panel of `nr`
    /// columns at a time: its B slab (kc × nr, 24 KiB at most) is packed into a buffer that
    /// stays in L1, then multiplied by every row panel of A before the next slab.
    static func columnBlock(
        _ cols: Range<Int>, _ x: UnsafePointer<Float>, _ a: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
        _ y: UnsafeMutablePointer<Float>, _ g: Shape, mPad: Int, kSlabs: Int
    ) {
        let (C, H, W, O, k, s, p, Wo, L, K) = (g.C, g.H, g.W, g.O, g.k, g.s, g.p, g.Wo, g.L, g.K)
        let width = cols.count
        let nPanels = (width + nr - 1) / nr
        // Each panel's columns cut into segments that stay within one output row, with their
        // taps precomputed: for each u the input row's offset h·W (−1: h outside the image), for
        // each v the output columns [lo, hi) whose input column lies inside it (lo ≤ hi, both
        // within the segment).
        var segments: [Segment] = []
        var panelStart: [Int] = [0]
        var clips: [Int] = []
        segments.reserveCapacity(nPanels * 2)
        for panel in 0..<nPanels {
            var J = cols.lowerBound + panel * nr
            let stop = Swift.min(J + nr, cols.upperBound)
            while J < stop {
                let n = J / L, l = J % L, i = l / Wo, j = l % Wo
                let count = Swift.min(Wo - j, stop - J)
                segments.append(Segment(lane: J - cols.lowerBound - panel * nr, count: count, image: n, col: j, clip: clips.count))
                for u in 0..<k {
                    let h = i * s + u - p
                    clips.append(h >= 0 && h < H ? h * W : -1)
                }
                for v in 0..<k {
                    let (jLo, jHi) = CPUBackend.validColumns(W: W, Wo: Wo, v: v, stride: s, padding: p)
                    let lo = Swift.min(j + count, Swift.max(j, jLo))
                    clips.append(lo)
                    clips.append(Swift.max(lo, Swift.min(j + count, jHi)))
                }
                J += count
            }
            panelStart.append(segments.count)
        }
        let kcWidest = (K + kSlabs - 1) / kSlabs
        let scratch = KernelScratch(kc: kcWidest)
        defer { scratch.deallocate() }
        let (packedB, tile, zeros) = (scratch.packedB, scratch.tile, scratch.zeros)
        let plane = H * W

        segments.withUnsafeBufferPointer { segments in
        clips.withUnsafeBufferPointer { clips in
        for panel in 0..<nPanels {
            let first = cols.lowerBound + panel * nr
            let last = first + nr - 1
            // A panel whose columns lie in one image and inside the block is stored straight
            // into y; otherwise (across two images, the block's partial last panel) through `tile`.
            let direct = last < cols.upperBound && first / L == last / L ? (first / L) * O * L + first % L : -1
            let segs = panelStart[panel]..<panelStart[panel + 1]
            let filled = last < cols.upperBound ? nr : cols.upperBound - first
            for slab in 0..<kSlabs {
                let ks = slabRange(slab, of: kSlabs, K: K)
                let kc = ks.count
                // Pack B: row r (k index q = (c, u, v)) at packedB + r·nr; lanes past the
                // block's last column are 0 (their products are never stored).
                var c = ks.lowerBound / (k * k), u = (ks.lowerBound / k) % k, v = ks.lowerBound % k
                for r in 0..<kc {
                    let row = packedB + r * nr
                    let channel = x + c * plane - p + v
                    for index in segs {
                        let seg = segments[index]
                        let dst = row + seg.lane - seg.col     // dst[j]: output column j of this segment
                        let hOffset = clips[seg.clip + u]
                        let lo = clips[seg.clip + k + 2 * v], hi = clips[seg.clip + k + 2 * v + 1]
                        guard hOffset >= 0 && lo < hi else {
                            zero(dst + seg.col, seg.count)    // the tap falls in the zero padding
                            continue
                        }
                        if lo > seg.col { zero(dst + seg.col, lo - seg.col) }
                        let src = channel + seg.image * C * plane + hOffset
                        if s == 1 {
                            copy(src + lo, dst + lo, hi - lo)
                        } else {
                            for j in lo..<hi { dst[j] = src[j * s] }
                        }
                        let end = seg.col + seg.count
                        if end > hi { zero(dst + hi, end - hi) }
                    }
                    if filled < nr { zero(row + filled, nr - filled) }
                    v += 1
                    if v == k { v = 0; u += 1; if u == k { u = 0; c += 1 } }
                }
                let aSlab = a + ks.lowerBound * mPad
                let b = UnsafePointer(packedB)
                for ip in stride(from: 0, to: mPad, by: mr) {
                    let ap = aSlab + ip * kc
                    let rows = Swift.min(mr, O - ip)
                    if direct >= 0 && rows == mr {
                        kernel(kc, ap, b, y + direct + ip * L, L, slab == 0 ? bias + ip : nil)
                    } else {
                        // Through the tile: the first slab stores acc + bias, later ones acc + 0.
                        kernel(kc, ap, b, tile, nr, slab == 0 ? bias + ip : UnsafePointer(zeros))
                        scatter(tile, rows: rows, panelStart: first, end: cols.upperBound, row0: ip, y, O: O, L: L, add: slab != 0)
                    }
                }
            }
        }
        }
        }
    }

    // MARK: The weight gradient
    //
    // dW [O, K] = A · B with A = dY [O, R] and B = colᵀ [R, K], R = N·L (J = n·L + i·Wo + j):
    //   A is packed once per call like the forward's W, slab after slab (mr rows × kc per panel);
    //   B is packed one panel of `nr` weight columns q = (c, u, v) × kc positions at a time,
    //     lane by lane: for a fixed q, consecutive positions J of one output row read
    //     consecutive (stride-s) elements of one row of x;
    //   the micro-kernel's tile lands in dW [O, K] (rows K apart), stored at the first slab and
    //     added to at later ones.
    // Determinism: each dW element is summed from p = 0 up within a slab, slab after slab, the
    // slabs cut from R by size alone, whatever unit of work or thread computes it: bitwise the
    // same for any thread count. (Not for any batch size: the batch is the reduction.)

    /// One run of consecutive positions inside one output row: rows `row`..<row + count of a
    /// slab's B panel, image n, output row i, first output column j.
    struct RowRun { var row, count, n, i, j: Int }

    static func backwardWeight(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dw: UnsafeMutablePointer<Float>, _ g: Shape
    ) {
        let (O, K, L) = (g.O, g.K, g.L)
        let R = g.N * L
        let mPanels = (O + mr - 1) / mr, mPad = mPanels * mr
        let kSlabs = (R + kcMax - 1) / kcMax
        // A = dY [O, R]: slab (start pc, width kc) at pc·mPad, its panels kc × mr each.
        let packedA = alignedFloats(mPad * R)
        defer { packedA.deallocate() }
        // Each slab's positions cut into runs within one output row.
        var runs: [RowRun] = []
        var slabStart: [Int] = [0]
        for slab in 0..<kSlabs {
            let ks = slabRange(slab, of: kSlabs, K: R)
            var J = ks.lowerBound
            while J < ks.upperBound {
                let n = J / L, l = J % L, i = l / g.Wo, j = l % g.Wo
                let count = Swift.min(g.Wo - j, ks.upperBound - J)
                runs.append(RowRun(row: J - ks.lowerBound, count: count, n: n, i: i, j: j))
                J += count
            }
            slabStart.append(runs.count)
            for panel in 0..<mPanels {
                let dst = packedA + ks.lowerBound * mPad + panel * ks.count * mr
                for r in 0..<mr {
                    let o = panel * mr + r
                    guard o < O else {
                        for t in 0..<ks.count { dst[t * mr + r] = 0 }
                        continue
                    }
                    var J = ks.lowerBound
                    while J < ks.upperBound {
                        let n = J / L, l = J % L
                        let count = Swift.min(L - l, ks.upperBound - J)
                        let src = dy + (n * O + o) * L + l
                        let d = dst + (J - ks.lowerBound) * mr + r
                        for t in 0..<count { d[t * mr] = src[t] }
                        J += count
                    }
                }
            }
        }
        // The valid output columns of each kernel column v.
        var columns: [(Int, Int)] = []
        for v in 0..<g.k { columns.append(CPUBackend.validColumns(W: g.W, Wo: g.Wo, v: v, stride: g.s, padding: g.p)) }

        // Units of work: chunks of B panels (at least four where there are that many panels),
        // split by row panels too where there are fewer than four chunks. Any split gives the
        // same sums; this one only balances the threads.
        let nPanels = (K + nr - 1) / nr
        let work = Double(O) * Double(K) * Double(R)
        let chunks = Swift.min(nPanels, Swift.max(4, (nPanels + 7) / 8))
        let rowSplits = chunks >= 4 ? 1 : Swift.min(mPanels, 2)
        let box = UncheckedSendable((x, UnsafePointer(packedA), dw, runs, slabStart, columns))
        let body: (Int) -> Void = { unit in
            let (x, a, dw, runs, slabStart, columns) = box.value
            let panels = chunkRange(unit / rowSplits, of: chunks, total: nPanels)
            let rowPanels = chunkRange(unit % rowSplits, of: rowSplits, total: mPanels)
            weightBlock(panels: panels, rowPanels: rowPanels, x, a, dw, g, mPad: mPad, kSlabs: kSlabs,
                        runs: runs, slabStart: slabStart, columns: columns)
        }
        if work < Double(parallelWork) {
            for unit in 0..<(chunks * rowSplits) { body(unit) }
        } else {
            parallelTasks(chunks * rowSplits, body)
        }
    }

    /// dW's columns [panels.lowerBound·nr, panels.upperBound·nr) ∩ [0, K) for the rows of
    /// `rowPanels`: slab after slab, each B panel packed (kc × nr, in L1) and multiplied by
    /// the unit's row panels of A.
    static func weightBlock(
        panels: Range<Int>, rowPanels: Range<Int>, _ x: UnsafePointer<Float>, _ a: UnsafePointer<Float>,
        _ dw: UnsafeMutablePointer<Float>, _ g: Shape, mPad: Int, kSlabs: Int,
        runs: [RowRun], slabStart: [Int], columns: [(Int, Int)]
    ) {
        let (C, H, W, O, k, s, p, K) = (g.C, g.H, g.W, g.O, g.k, g.s, g.p, g.K)
        let R = g.N * g.L
        let kcWidest = (R + kSlabs - 1) / kSlabs
        let scratch = KernelScratch(kc: kcWidest)
        defer { scratch.deallocate() }
        let (packedB, tile, zeros) = (scratch.packedB, scratch.tile, scratch.zeros)
        let plane = H * W
        runs.withUnsafeBufferPointer { runs in
        for slab in 0..<kSlabs {
            let ks = slabRange(slab, of: kSlabs, K: R)
            let kc = ks.count
            let slabRuns = slabStart[slab]..<slabStart[slab + 1]
            for panel in panels {
                let q0 = panel * nr
                let lanes = Swift.min(nr, K - q0)
                // Pack B: lane t (q = q0 + t) of row r (position J = ks.lowerBound + r) at
                // packedB + r·nr + t; lanes past K are 0 (their products are never stored).
                for t in 0..<nr {
                    let lane = packedB + t
                    guard t < lanes else {
                        for r in 0..<kc { lane[r * nr] = 0 }
                        continue
                    }
                    let q = q0 + t
                    let c = q / (k * k), u = (q / k) % k, v = q % k
                    let (jLo, jHi) = columns[v]
                    for index in slabRuns {
                        let run = runs[index]
                        let d = lane + (run.row - run.j) * nr     // d[j·nr]: output column j of this run
                        let end = run.j + run.count
                        let h = run.i * s + u - p
                        guard h >= 0 && h < H else {
                            for j in run.j..<end { d[j * nr] = 0 }
                            continue
                        }
                        let lo = Swift.min(end, Swift.max(run.j, jLo)), hi = Swift.max(lo, Swift.min(end, jHi))
                        for j in run.j..<lo { d[j * nr] = 0 }
                        let src = x + (run.n * C + c) * plane + h * W + v - p
                        if s == 1 {
                            for j in lo..<hi { d[j * nr] = src[j] }
                        } else {
                            for j in lo..<hi { d[j * nr] = src[j * s] }
                        }
                        for j in hi..<end { d[j * nr] = 0 }
                    }
                }
                let aSlab = a + ks.lowerBound * mPad
                let b = UnsafePointer(packedB)
                for rp in rowPanels {
                    let ip = rp * mr
                    let ap = aSlab + ip * kc
                    let rows = Swift.min(mr, O - ip)
                    if rows == mr && lanes == nr {
                        // The first slab stores acc + 0, later ones add.
                        kernel(kc, ap, b, dw + ip * K + q0, K, slab == 0 ? UnsafePointer(zeros) : nil)
                    } else {
                        kernel(kc, ap, b, tile, nr, UnsafePointer(zeros))
                        for r in 0..<rows {
                            let d = dw + (ip + r) * K + q0
                            for t in 0..<lanes { d[t] = slab == 0 ? tile[r * nr + t] : d[t] + tile[r * nr + t] }
                        }
                    }
                }
            }
        }
        }
    }

    // Copies and fills of at most `nr` = 24 floats, written out without a loop: as loops, LLVM
    // turned them into memmove/memset calls, whose call overhead on such short runs cost as
    // much as the copying (a profile of one DMD2 iteration: 12 % of all samples in memmove).

    @inline(__always)
    static func copy(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        let s = UnsafeRawPointer(src), d = UnsafeMutableRawPointer(dst)
        var i = 0
        if n - i >= 8 { d.storeBytes(of: s.loadUnaligned(fromByteOffset: 4 * i, as: V.self), toByteOffset: 4 * i, as: V.self); i += 8 }
        if n - i >= 8 { d.storeBytes(of: s.loadUnaligned(fromByteOffset: 4 * i, as: V.self), toByteOffset: 4 * i, as: V.self); i += 8 }
        if n - i >= 8 { d.storeBytes(of: s.loadUnaligned(fromByteOffset: 4 * i, as: V.self), toByteOffset: 4 * i, as: V.self); i += 8 }
        if n - i >= 4 {
            d.storeBytes(of: s.loadUnaligned(fromByteOffset: 4 * i, as: SIMD4<Float>.self), toByteOffset: 4 * i, as: SIMD4<Float>.self); i += 4
        }
        if n - i >= 2 {
            d.storeBytes(of: s.loadUnaligned(fromByteOffset: 4 * i, as: SIMD2<Float>.self), toByteOffset: 4 * i, as: SIMD2<Float>.self); i += 2
        }
        if n - i >= 1 { dst[i] = src[i] }
    }

    @inline(__always)
    static func zero(_ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        let d = UnsafeMutableRawPointer(dst)
        var i = 0
        if n - i >= 8 { d.storeBytes(of: V(), toByteOffset: 4 * i, as: V.self); i += 8 }
        if n - i >= 8 { d.storeBytes(of: V(), toByteOffset: 4 * i, as: V.self); i += 8 }
        if n - i >= 8 { d.storeBytes(of: V(), toByteOffset: 4 * i, as: V.self); i += 8 }
        if n - i >= 4 { d.storeBytes(of: SIMD4<Float>(), toByteOffset: 4 * i, as: SIMD4<Float>.self); i += 4 }
        if n - i >= 2 { d.storeBytes(of: SIMD2<Float>(), toByteOffset: 4 * i, as: SIMD2<Float>.self); i += 2 }
        if n - i >= 1 { dst[i] = 0 }
    }

    /// y[n, row0 + r, l] (+)= tile[r, q] for the panel's columns J = panelStart + q < end.
    @inline(never)
    static func scatter(
        _ tile: UnsafePointer<Float>, rows: Int, panelStart: Int, end: Int, row0: Int,
        _ y: UnsafeMutablePointer<Float>, O: Int, L: Int, add: Bool
    ) {
        for q in 0..<Swift.min(nr, end - panelStart) {
            let J = panelStart + q
            let base = (J / L) * O * L + J % L
            for r in 0..<rows {
                let d = y + base + (row0 + r) * L
                d.pointee = add ? d.pointee + tile[r * nr + q] : tile[r * nr + q]
            }
        }
    }

    typealias V = SIMD8<Float>
    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) static func load(_ p: UnsafeMutablePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }

    /// The micro-kernel: acc [4, 24] = Σ_{p < kc} a[p, 0..<4] ⊗ b[p, 0..<24] (FMA, p ascending);
    /// then c[r, :] = acc[r, :] + bias[r] when `bias` is given (the first k-slab), else
    /// c[r, :] += acc[r, :]. c's rows are `ldc` apart.
    @inline(never)
    static func kernel(
        _ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ bias: UnsafePointer<Float>?
    ) {
        var c00 = V(), c01 = V(), c02 = V(), c10 = V(), c11 = V(), c12 = V()
        var c20 = V(), c21 = V(), c22 = V(), c30 = V(), c31 = V(), c32 = V()
        var a = a, b = b
        for _ in 0..<kc {
            let b0 = load(b), b1 = load(b + 8), b2 = load(b + 16)
            var t = V(repeating: a[0])
            c00 = c00.addingProduct(t, b0); c01 = c01.addingProduct(t, b1); c02 = c02.addingProduct(t, b2)
            t = V(repeating: a[1])
            c10 = c10.addingProduct(t, b0); c11 = c11.addingProduct(t, b1); c12 = c12.addingProduct(t, b2)
            t = V(repeating: a[2])
            c20 = c20.addingProduct(t, b0); c21 = c21.addingProduct(t, b1); c22 = c22.addingProduct(t, b2)
            t = V(repeating: a[3])
            c30 = c30.addingProduct(t, b0); c31 = c31.addingProduct(t, b1); c32 = c32.addingProduct(t, b2)
            a += mr
            b += nr
        }
        let r0 = c, r1 = c + ldc, r2 = c + 2 * ldc, r3 = c + 3 * ldc
        if let bias {
            var t = V(repeating: bias[0])
            store(c00 + t, r0); store(c01 + t, r0 + 8); store(c02 + t, r0 + 16)
            t = V(repeating: bias[1])
            store(c10 + t, r1); store(c11 + t, r1 + 8); store(c12 + t, r1 + 16)
            t = V(repeating: bias[2])
            store(c20 + t, r2); store(c21 + t, r2 + 8); store(c22 + t, r2 + 16)
            t = V(repeating: bias[3])
            store(c30 + t, r3); store(c31 + t, r3 + 8); store(c32 + t, r3 + 16)
        } else {
            store(load(r0) + c00, r0); store(load(r0 + 8) + c01, r0 + 8); store(load(r0 + 16) + c02, r0 + 16)
            store(load(r1) + c10, r1); store(load(r1 + 8) + c11, r1 + 8); store(load(r1 + 16) + c12, r1 + 16)
            store(load(r2) + c20, r2); store(load(r2 + 8) + c21, r2 + 8); store(load(r2 + 16) + c22, r2 + 16)
            store(load(r3) + c30, r3); store(load(r3 + 8) + c31, r3 + 8); store(load(r3 + 16) + c32, r3 + 16)
        }
    }
}
