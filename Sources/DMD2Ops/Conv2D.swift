// 2-D convolution (PyTorch's `F.conv2d`: cross-correlation, zero padding), lowered to GEMM.
//
// Letters: N batch, C (= Cin) input channels, O (= Cout) output channels, H×W input,
// k×k kernel, s stride, p zero padding, Ho×Wo output with Ho = (H + 2p − k)/s + 1 (likewise Wo),
// L = Ho·Wo output positions, K = C·k·k the length of one dot product, G samples per GEMM.
//
// Forward:  y[n, o, i, j] = b[o] + Σ_{c,u,v} W[o, c, u, v] · x[n, c, i·s + u − p, j·s + v − p]
//           (x is 0 outside the image). `im2col` unfolds sample x_n into col_n [K, L], so that
//           y_n [O, L] = W [O, K] · col_n [K, L]. Samples go G at a time: their col_n sit side by
//           side in col [K, G·L], one GEMM gives Y [O, G·L] = W · col, and Y read as [O, G, L]
//           is permuted into the group's y [G, O, L].
// Backward: per group, dY [O, G·L] is the group's dY [G, O, L] permuted the same way, and
//           dW [O, K]     = Σ_groups dY [O, G·L] · colᵀ [G·L, K], computed as its transpose
//                           dWᵀ [K, O] = Σ_groups col [K, G·L] · dYᵀ [G·L, O] and transposed
//                           once at the end (see `backward` for why)
//           dB [O]        = Σ_{n,i,j} dY[n, o, i, j]
//           dcol [K, G·L] = Wᵀ [K, O] · dY [O, G·L], and dX_n = col2im(dcol_n) (the adjoint of
//           im2col) for each sample's block of L columns.
//
// Why groups: one sample's GEMM has only L columns (64 at 8×8, 256 at 16×16), too few for BLIS
// to run near its peak or for two threads to pay. G is chosen so that G·L reaches
// `Conv2D.gemmColumns` while col stays within `Conv2D.maxColumnBytes`; at 64×64 it is 1. G
// depends only on the shapes, so results are bitwise reproducible for a fixed thread count, and
// since BLIS never splits a dot product over threads, the same for every thread count.
//
// A backend may compute the forward pass, dX and dW in one pass each instead
// (`conv2dDirect`, `conv2dDirectBackwardData`, `conv2dDirectBackwardWeight`; the CPU backend
// does for Float: its own GEMM with the unfolding fused into its packing, no col matrix, no
// col2im). The lowering below is what they must equal, and what runs where a backend declines
// (Double on the CPU, dX of strided convs, backends without them).
//
// The unfolded image is recomputed in the backward pass rather than kept from the forward one:
// for an ADM block at 64×64 it is 9× the activation, and the GEMMs dominate the time anyway.
// A 1×1 kernel with stride 1 and no padding needs no unfolding: col is the group's x [G, C, L]
// permuted to [C, G·L], and for G = 1 it is x_n itself.
import DMD2Core

/// The forward and backward kernels of `conv2d`, on plain tensors.
public enum Conv2D {
    /// Columns a conv GEMM should reach by taking several samples at once (G·L ≥ this, when
    /// the batch allows).
    public static let gemmColumns = 4096
    /// The most memory one group's col [K, G·L] may take (one sample always fits).
    public static let maxColumnBytes = 32 << 20

    /// Sizes of one convolution, checked against each other.
    public struct Geometry: Equatable, Sendable {
        public var N, C, H, W, O, k, stride, padding: Int
        /// Output extents.
        public var Ho: Int { (H + 2 * padding - k) / stride + 1 }
        public var Wo: Int { (W + 2 * padding - k) / stride + 1 }
        /// Output positions per channel, and the length of one dot product.
        public var L: Int { Ho * Wo }
        public var K: Int { C * k * k }
        /// Whether x_n can serve as its own im2col matrix.
        public var isPointwise: Bool { k == 1 && stride == 1 && padding == 0 }
        public var outputShape: [Int] { [N, O, Ho, Wo] }

        /// The geometry of x [N, C, H, W] convolved with weight [O, C, k, k]; traps with both
        /// shapes named when they do not fit together.
        public init(x: [Int], weight: [Int], stride: Int, padding: Int) {
            precondition(x.count == 4, "conv2d: input must be [N, C, H, W], got \(x)")
            precondition(weight.count == 4, "conv2d: weight must be [Cout, Cin, k, k], got \(weight)")
            precondition(weight[2] == weight[3], "conv2d: kernel must be square, weight is \(weight)")
            precondition(x[1] == weight[1],
                         "conv2d: input \(x) has \(x[1]) channels, weight \(weight) expects \(weight[1])")
            precondition(stride >= 1 && padding >= 0,
                         "conv2d: need stride ≥ 1 and padding ≥ 0, got stride \(stride), padding \(padding)")
            precondition(weight[0] >= 1 && weight[1] >= 1 && weight[2] >= 1,
                         "conv2d: weight \(weight) has an empty dimension")
            (N, C, H, W) = (x[0], x[1], x[2], x[3])
            (O, k) = (weight[0], weight[2])
            (self.stride, self.padding) = (stride, padding)
            precondition(H + 2 * padding >= k && W + 2 * padding >= k,
                         "conv2d: kernel \(k)×\(k) does not fit input \(x) with padding \(padding): output size ≤ 0")
        }

        /// The samples 0..<N split into consecutive groups, one GEMM each: G = ⌈columns / L⌉
        /// samples (at most N, at least 1, no more than fit `maxColumnBytes`), then evened out —
        /// N = 20 at L = 256 gives groups of 10 and 10, not 16 and 4.
        public func sampleGroups(columns: Int, elementSize: Int) -> [Range<Int>] {
            guard N > 0 else { return [] }
            let wanted = (columns + L - 1) / L
            let fitting = Conv2D.maxColumnBytes / (K * L * elementSize)
            let most = Swift.max(1, Swift.min(N, wanted, fitting))
            let groupCount = (N + most - 1) / most
            let G = (N + groupCount - 1) / groupCount
            return Swift.stride(from: 0, to: N, by: G).map { $0..<Swift.min($0 + G, N) }
        }
    }

    /// y [N, O, Ho, Wo] = conv(x [N, C, H, W], weight [O, C, k, k]) + bias [O].
    /// `gemmColumns` sets how many samples share a GEMM (see `Geometry.sampleGroups`); the
    /// result is the same up to rounding for any value.
    public static func forward<T>(
        _ x: Tensor<T>, weight: Tensor<T>, bias: Tensor<T>?, stride: Int, padding: Int,
        gemmColumns: Int = Conv2D.gemmColumns
    ) -> Tensor<T> {
        let g = Geometry(x: x.shape, weight: weight.shape, stride: stride, padding: padding)
        if let bias {
            precondition(bias.shape == [g.O], "conv2d: bias \(bias.shape) for weight \(weight.shape) (want [\(g.O)])")
        }
        let (O, L, K) = (g.O, g.L, g.K)
        var y = Tensor<T>(shape: g.outputShape, unsafeUninitialized: { _ in })
        // The backend's direct kernel (the CPU's for Float: im2col fused into its own GEMM), when
        // it has one; otherwise the lowering below, which it must equal up to rounding.
        let direct = x.withUnsafeBufferPointer { xs in
            weight.withUnsafeBufferPointer { ws in
                y.withUnsafeMutableBufferPointer { ys in
                    withOptionalBuffer(bias) { bs in
                        Compute.backend.conv2dDirect(xs, N: g.N, C: g.C, H: g.H, W: g.W, weight: ws, O: O, kernel: g.k,
                                                     stride: stride, padding: padding, bias: bs, ys)
                    }
                }
            }
        }
        if direct { return y }
        let groups = g.sampleGroups(columns: gemmColumns, elementSize: MemoryLayout<T>.stride)
        let G = groups.first?.count ?? 0
        // Scratch: col [K, G·L] (not needed when x_n is its own col), then Y [O, G·L] (not
        // needed for one-sample groups, whose Y is y_n itself).
        let colCount = g.isPointwise && G == 1 ? 0 : K * G * L
        let yCount = G > 1 ? O * G * L : 0
        withUnsafeTemporaryAllocation(of: T.self, capacity: colCount + yCount) { scratch in
            x.withUnsafeBufferPointer { xs in
                weight.withUnsafeBufferPointer { ws in
                    y.withUnsafeMutableBufferPointer { ys in
                        for samples in groups {
                            let columns = samples.count * L
                            let col = unfold(xs, samples, g, into: scratch.baseAddress)
                            let Yg = samples.count == 1 ? ys.baseAddress! + samples.lowerBound * O * L
                                                        : scratch.baseAddress! + colCount
                            let outY = UnsafeMutableBufferPointer(start: Yg, count: O * columns)
                            // With a bias, Y starts as b broadcast over its columns and the GEMM
                            // adds into it (β = 1).
                            bias?.withUnsafeBufferPointer { bs in
                                Compute.backend.broadcast(bs, shape: [O, 1], to: [O, columns], outY)
                            }
                            // Y [O, G·L] (+)= W [O, K] · col [K, G·L]
                            Compute.backend.gemm(
                                transA: false, transB: false, m: O, n: columns, k: K,
                                alpha: 1, a: ws.baseAddress!, lda: K, b: col, ldb: columns,
                                beta: bias == nil ? 0 : 1, c: Yg, ldc: columns)
                            if samples.count > 1 {
                                // y[n, o, l] = Y[o, (n − n₀)·L + l]: Y [O, G, L] → y_group [G, O, L]
                                Compute.backend.permute(
                                    UnsafeBufferPointer(outY), shape: [O, samples.count, L], permutation: [1, 0, 2],
                                    UnsafeMutableBufferPointer(start: ys.baseAddress! + samples.lowerBound * O * L, count: O * columns))
                            }
                        }
                    }
                }
            }
        }
        return y
    }

    /// The vector-Jacobian products of `forward` for upstream dY [N, O, Ho, Wo]: dX [N, C, H, W],
    /// dWeight [O, C, k, k] and dBias [O], each computed only when asked for.
    public static func backward<T>(
        _ dY: Tensor<T>, x: Tensor<T>, weight: Tensor<T>, stride: Int, padding: Int,
        needX: Bool, needWeight: Bool, needBias: Bool, gemmColumns: Int = Conv2D.gemmColumns
    ) -> (dX: Tensor<T>?, dWeight: Tensor<T>?, dBias: Tensor<T>?) {
        let g = Geometry(x: x.shape, weight: weight.shape, stride: stride, padding: padding)
        precondition(dY.shape == g.outputShape,
                     "conv2d backward: upstream gradient \(dY.shape), output is \(g.outputShape)")
        let (N, C, H, W, O, L, K) = (g.N, g.C, g.H, g.W, g.O, g.L, g.K)

        // dB[o] = Σ_n Σ_l dY[n, o, l]: first over l (rows of [N·O, L]), then over n.
        let dBias: Tensor<T>? = needBias
            ? dY.reshaped([N * O, L]).sum(axis: 1).reshaped([N, O]).sum(axis: 0) : nil

        guard needX || needWeight else { return (nil, nil, dBias) }
        // dX from the backend's direct kernel when it has one (the CPU's, for Float at stride 1):
        // then the loop below computes only dW.
        var needX = needX
        var directDX: Tensor<T>? = nil
        if needX {
            var candidate = Tensor<T>(shape: x.shape, unsafeUninitialized: { _ in })
            let done = dY.withUnsafeBufferPointer { dys in
                weight.withUnsafeBufferPointer { ws in
                    candidate.withUnsafeMutableBufferPointer { dxs in
                        Compute.backend.conv2dDirectBackwardData(dys, N: N, C: C, H: H, W: W, weight: ws, O: O, kernel: g.k,
                                                                 stride: stride, padding: padding, dxs)
                    }
                }
            }
            if done { directDX = candidate; needX = false }
        }
        // Likewise dW (the CPU's for Float: one GEMM over all N·L positions, col never formed).
        var needWeight = needWeight
        var directDW: Tensor<T>? = nil
        if needWeight {
            var candidate = Tensor<T>(shape: weight.shape, unsafeUninitialized: { _ in })
            let done = x.withUnsafeBufferPointer { xs in
                dY.withUnsafeBufferPointer { dys in
                    candidate.withUnsafeMutableBufferPointer { dws in
                        Compute.backend.conv2dDirectBackwardWeight(xs, dys, N: N, C: C, H: H, W: W, O: O, kernel: g.k,
                                                                   stride: stride, padding: padding, dws)
                    }
                }
            }
            if done { directDW = candidate; needWeight = false }
        }
        guard needX || needWeight else { return (directDX, directDW, dBias) }
        let groups = g.sampleGroups(columns: gemmColumns, elementSize: MemoryLayout<T>.stride)
        let G = groups.first?.count ?? 0
        // col2im adds into dX, so it starts at 0: one zero broadcast by the backend (`Tensor.zeros`
        // in this unspecialised generic code would copy element by element through T's witness
        // table). A pointwise conv writes every dX entry once.
        var dX: Tensor<T>? = !needX ? nil
            : Tensor(shape: x.shape, unsafeUninitialized: { buffer in
                guard !g.isPointwise else { return }
                Tensor<T>(shape: [1], scalars: [0]).withUnsafeBufferPointer { zero in
                    Compute.backend.broadcast(zero, shape: [1], to: [buffer.count], buffer)
                }
            })
        var dWeight: Tensor<T>? = needWeight ? Tensor(shape: weight.shape, unsafeUninitialized: { _ in }) : nil
        // Scratch: one [K, G·L] matrix that holds col for dW and then dcol for dX (not needed
        // when x_n and dX_n serve as those), then dY [O, G·L] (not needed for one-sample groups),
        // then dWᵀ [K, O].
        let matrixCount = g.isPointwise && G == 1 ? 0 : K * G * L
        let dyCount = G > 1 ? O * G * L : 0
        let dwtCount = needWeight ? K * O : 0

        withUnsafeTemporaryAllocation(of: T.self, capacity: matrixCount + dyCount + dwtCount) { scratch in
            x.withUnsafeBufferPointer { xs in
                weight.withUnsafeBufferPointer { ws in
                    dY.withUnsafeBufferPointer { dys in
                        withOptionalMutablePointer(&dX) { dxs in
                            withOptionalMutablePointer(&dWeight) { dws in
                                for (index, samples) in groups.enumerated() {
                                    let columns = samples.count * L
                                    // dY [O, G·L] = the group's dY [G, O, L] permuted (dY_n for G = 1).
                                    let dYn = dys.baseAddress! + samples.lowerBound * O * L
                                    var dYg = dYn
                                    if samples.count > 1 {
                                        let buffer = scratch.baseAddress! + matrixCount
                                        Compute.backend.permute(
                                            UnsafeBufferPointer(start: dYn, count: O * columns),
                                            shape: [samples.count, O, L], permutation: [1, 0, 2],
                                            UnsafeMutableBufferPointer(start: buffer, count: O * columns))
                                        dYg = UnsafePointer(buffer)
                                    }
                                    if dws != nil {
                                        // dWᵀ [K, O] (+)= col [K, G·L] · dYᵀ [G·L, O]. The same sums
                                        // as dW = dY · colᵀ, but BLIS then packs col from rows
                                        // (contiguous) instead of gathering it down columns one
                                        // element at a time: 1.2–3× faster at every conv shape
                                        // measured (2–3× where O ≤ 64; docs/PERFORMANCE-FACTS.md).
                                        let col = unfold(xs, samples, g, into: scratch.baseAddress)
                                        Compute.backend.gemm(
                                            transA: false, transB: true, m: K, n: O, k: columns,
                                            alpha: 1, a: col, lda: columns, b: dYg, ldb: columns,
                                            beta: index == 0 ? 0 : 1, c: scratch.baseAddress! + matrixCount + dyCount, ldc: O)
                                    }
                                    if let dxs {
                                        // dcol [K, G·L] = Wᵀ [K, O] · dY [O, G·L], over col (used
                                        // above); for a one-sample pointwise group, dcol is dX_n.
                                        let dxFirst = dxs + samples.lowerBound * C * H * W
                                        let dcol = g.isPointwise && samples.count == 1 ? dxFirst : scratch.baseAddress!
                                        Compute.backend.gemm(
                                            transA: true, transB: false, m: K, n: columns, k: O,
                                            alpha: 1, a: ws.baseAddress!, lda: K, b: dYg, ldb: columns,
                                            beta: 0, c: dcol, ldc: columns)
                                        fold(dcol, samples.count, g, into: dxFirst)
                                    }
                                }
                                if let dws, N > 0 {
                                    // dW [O, K] = (dWᵀ [K, O])ᵀ
                                    Compute.backend.permute(
                                        UnsafeBufferPointer(start: scratch.baseAddress! + matrixCount + dyCount, count: K * O),
                                        shape: [K, O], permutation: [1, 0], UnsafeMutableBufferPointer(start: dws, count: K * O))
                                }
                            }
                        }
                    }
                }
            }
        }
        // N = 0 leaves dW unwritten: it is the empty sum.
        if N == 0, needWeight { dWeight = Tensor.zeros(weight.shape) }
        return (directDX ?? dX, directDW ?? dWeight, dBias)
    }

    /// col [K, G·L] for the samples `samples` of x: each x_n unfolded by `im2col` into its block
    /// of L columns of `buffer`; for a pointwise conv the group's x [G, C, L] permuted to
    /// [C, G·L], or x_n itself when G = 1.
    static func unfold<T: TensorScalar>(
        _ xs: UnsafeBufferPointer<T>, _ samples: Range<Int>, _ g: Geometry, into buffer: UnsafeMutablePointer<T>?
    ) -> UnsafePointer<T> {
        let (C, H, W, L, G) = (g.C, g.H, g.W, g.L, samples.count)
        let first = xs.baseAddress! + samples.lowerBound * C * H * W
        if g.isPointwise {
            if G == 1 { return first }
            Compute.backend.permute(UnsafeBufferPointer(start: first, count: G * C * L), shape: [G, C, L],
                                    permutation: [1, 0, 2], UnsafeMutableBufferPointer(start: buffer!, count: G * C * L))
        } else {
            for m in 0..<G {
                Compute.backend.im2col(first + m * C * H * W, C: C, H: H, W: W, kernel: g.k, stride: g.stride,
                                       padding: g.padding, buffer! + m * L, ldcol: G * L)
            }
        }
        return UnsafePointer(buffer!)
    }

    /// The adjoint of `unfold` for dcol [K, G·L]: each sample's block of columns folded into
    /// dX_n by `col2im` (adding); for a pointwise conv dcol [C, G, L] permuted into dX's
    /// [G, C, L], or nothing when dcol already is dX_n (G = 1).
    static func fold<T: TensorScalar>(
        _ dcol: UnsafeMutablePointer<T>, _ G: Int, _ g: Geometry, into dxFirst: UnsafeMutablePointer<T>
    ) {
        let (C, H, W, L) = (g.C, g.H, g.W, g.L)
        if g.isPointwise {
            if G == 1 { return }
            Compute.backend.permute(UnsafeBufferPointer(start: dcol, count: G * C * L), shape: [C, G, L],
                                    permutation: [1, 0, 2], UnsafeMutableBufferPointer(start: dxFirst, count: G * C * L))
        } else {
            for m in 0..<G {
                Compute.backend.col2im(dcol + m * L, ldcol: G * L, C: C, H: H, W: W, kernel: g.k,
                                       stride: g.stride, padding: g.padding, dxFirst + m * C * H * W)
            }
        }
    }
}

/// Run `body` with an optional tensor's storage (nil when the tensor is nil).
@inline(__always)
private func withOptionalBuffer<T, R>(_ t: Tensor<T>?, _ body: (UnsafeBufferPointer<T>?) -> R) -> R {
    guard let t else { return body(nil) }
    return t.withUnsafeBufferPointer { body($0) }
}

/// Run `body` with the base address of an optional tensor's storage (nil when the tensor is nil).
@inline(__always)
private func withOptionalMutablePointer<T, R>(
    _ t: inout Tensor<T>?, _ body: (UnsafeMutablePointer<T>?) -> R
) -> R {
    guard t != nil else { return body(nil) }
    return t!.withUnsafeMutableBufferPointer { body($0.baseAddress) }
}

/// 2-D convolution (cross-correlation, as PyTorch's `F.conv2d`) with zero padding:
/// y[n, o, i, j] = bias[o] + Σ_{c,u,v} weight[o, c, u, v] · x[n, c, i·stride + u − padding, j·stride + v − padding].
///
/// - Parameters:
///   - x: [N, Cin, H, W].
///   - weight: [Cout, Cin, k, k] (square kernels only).
///   - bias: [Cout], or nil for none.
/// - Returns: [N, Cout, Ho, Wo] with Ho = (H + 2·padding − k)/stride + 1 (likewise Wo).
///
/// Linear in each of x, weight and bias with the others fixed.
public func conv2d<T>(
    _ x: Variable<T>, weight: Variable<T>, bias: Variable<T>?, stride: Int = 1, padding: Int
) -> Variable<T> {
    let y = Conv2D.forward(x.value, weight: weight.value, bias: bias?.value, stride: stride, padding: padding)
    let parents = [x, weight] + (bias.map { [$0] } ?? [])
    return Variable.record("conv2d", y, parents: parents) { dY, needed in
        let g = Conv2D.backward(dY, x: x.value, weight: weight.value, stride: stride, padding: padding,
                                needX: needed[0], needWeight: needed[1],
                                needBias: bias != nil && needed[2])
        return [g.dX, g.dWeight] + (bias != nil ? [g.dBias] : [])
    }
}
