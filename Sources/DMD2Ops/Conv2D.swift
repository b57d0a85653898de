// 2-D convolution (PyTorch's `F.conv2d`: cross-correlation, zero padding), lowered to GEMM.
//
// Letters: N batch, C (= Cin) input channels, O (= Cout) output channels, H×W input,
// k×k kernel, s stride, p zero padding, Ho×Wo output with Ho = (H + 2p − k)/s + 1 (likewise Wo),
// L = Ho·Wo output positions, K = C·k·k the length of one dot product.
//
// Forward:  y[n, o, i, j] = b[o] + Σ_{c,u,v} W[o, c, u, v] · x[n, c, i·s + u − p, j·s + v − p]
//           (x is 0 outside the image). Per sample n, `im2col` unfolds x_n into col [K, L] and
//           y_n [O, L] = W [O, K] · col [K, L] is one GEMM.
// Backward: dW [O, K]   = Σ_n dY_n [O, L] · col_nᵀ [L, K]
//           dB [O]      = Σ_{n,i,j} dY[n, o, i, j]
//           dcol [K, L] = Wᵀ [K, O] · dY_n [O, L], and dX_n = col2im(dcol) (the adjoint of im2col).
//
// The unfolded image is recomputed in the backward pass rather than kept from the forward one:
// for an ADM block at 64×64 it is 9× the activation, and the GEMMs dominate the time anyway.
// A 1×1 kernel with stride 1 and no padding needs no unfolding: col_n is x_n itself.
import DMD2Core

/// The forward and backward kernels of `conv2d`, on plain tensors.
public enum Conv2D {
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
    }

    /// y [N, O, Ho, Wo] = conv(x [N, C, H, W], weight [O, C, k, k]) + bias [O].
    public static func forward<T>(
        _ x: Tensor<T>, weight: Tensor<T>, bias: Tensor<T>?, stride: Int, padding: Int
    ) -> Tensor<T> {
        let g = Geometry(x: x.shape, weight: weight.shape, stride: stride, padding: padding)
        if let bias {
            precondition(bias.shape == [g.O], "conv2d: bias \(bias.shape) for weight \(weight.shape) (want [\(g.O)])")
        }
        let (N, C, H, W, O, L, K) = (g.N, g.C, g.H, g.W, g.O, g.L, g.K)
        // With a bias, y starts as b broadcast over (n, i, j) and each GEMM adds into it (β = 1).
        var y = bias.map { $0.reshaped([1, O, 1]).broadcast(to: [N, O, L]).reshaped(g.outputShape) }
            ?? Tensor(shape: g.outputShape, unsafeUninitialized: { _ in })   // β = 0 never reads it
        let beta: T = bias == nil ? 0 : 1
        var col = [T](repeating: 0, count: g.isPointwise ? 0 : K * L)      // one sample's col [K, L]
        x.withUnsafeBufferPointer { xs in
            weight.withUnsafeBufferPointer { ws in
                y.withUnsafeMutableBufferPointer { ys in
                    col.withUnsafeMutableBufferPointer { cs in
                        for n in 0..<N {
                            let xn = xs.baseAddress! + n * C * H * W
                            let colN = unfold(xn, g, into: cs)
                            // y_n [O, L] (+)= W [O, K] · col_n [K, L]
                            Compute.backend.gemm(
                                transA: false, transB: false, m: O, n: L, k: K,
                                alpha: 1, a: ws.baseAddress!, lda: K, b: colN, ldb: L,
                                beta: beta, c: ys.baseAddress! + n * O * L, ldc: L)
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
        needX: Bool, needWeight: Bool, needBias: Bool
    ) -> (dX: Tensor<T>?, dWeight: Tensor<T>?, dBias: Tensor<T>?) {
        let g = Geometry(x: x.shape, weight: weight.shape, stride: stride, padding: padding)
        precondition(dY.shape == g.outputShape,
                     "conv2d backward: upstream gradient \(dY.shape), output is \(g.outputShape)")
        let (N, C, H, W, O, L, K) = (g.N, g.C, g.H, g.W, g.O, g.L, g.K)

        // dB[o] = Σ_n Σ_l dY[n, o, l]: first over l (rows of [N·O, L]), then over n.
        let dBias: Tensor<T>? = needBias
            ? dY.reshaped([N * O, L]).sum(axis: 1).reshaped([N, O]).sum(axis: 0) : nil

        guard needX || needWeight else { return (nil, nil, dBias) }
        var dX: Tensor<T>? = needX ? Tensor.zeros(x.shape) : nil
        var dWeight: Tensor<T>? = needWeight ? Tensor(shape: weight.shape, unsafeUninitialized: { _ in }) : nil
        var col = [T](repeating: 0, count: needWeight && !g.isPointwise ? K * L : 0)    // col_n [K, L]
        var dcol = [T](repeating: 0, count: needX && !g.isPointwise ? K * L : 0)        // dcol_n [K, L]

        x.withUnsafeBufferPointer { xs in
            weight.withUnsafeBufferPointer { ws in
                dY.withUnsafeBufferPointer { dys in
                    col.withUnsafeMutableBufferPointer { cs in
                        dcol.withUnsafeMutableBufferPointer { dcs in
                            withOptionalMutablePointer(&dX) { dxs in
                                withOptionalMutablePointer(&dWeight) { dws in
                                    for n in 0..<N {
                                        let dyN = dys.baseAddress! + n * O * L
                                        if let dws {
                                            // dW [O, K] (+)= dY_n [O, L] · col_nᵀ [L, K]
                                            let colN = unfold(xs.baseAddress! + n * C * H * W, g, into: cs)
                                            Compute.backend.gemm(
                                                transA: false, transB: true, m: O, n: K, k: L,
                                                alpha: 1, a: dyN, lda: L, b: colN, ldb: L,
                                                beta: n == 0 ? 0 : 1, c: dws, ldc: K)
                                        }
                                        if let dxs {
                                            // dcol [K, L] = Wᵀ [K, O] · dY_n [O, L]; for a pointwise
                                            // conv dcol is dX_n itself.
                                            let dxN = dxs + n * C * H * W
                                            let target = g.isPointwise ? dxN : dcs.baseAddress!
                                            Compute.backend.gemm(
                                                transA: true, transB: false, m: K, n: L, k: O,
                                                alpha: 1, a: ws.baseAddress!, lda: K, b: dyN, ldb: L,
                                                beta: 0, c: target, ldc: L)
                                            if !g.isPointwise {
                                                Compute.backend.col2im(
                                                    dcs.baseAddress!, C: C, H: H, W: W, kernel: g.k,
                                                    stride: g.stride, padding: g.padding, dxN)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        // N = 0 leaves dW unwritten: it is the empty sum.
        if N == 0, needWeight { dWeight = Tensor.zeros(weight.shape) }
        return (dX, dWeight, dBias)
    }

    /// col_n for sample x_n [C, H, W]: `im2col` into `buffer`, or x_n itself for a pointwise conv.
    @inline(__always)
    static func unfold<T: TensorScalar>(
        _ xn: UnsafePointer<T>, _ g: Geometry, into buffer: UnsafeMutableBufferPointer<T>
    ) -> UnsafePointer<T> {
        if g.isPointwise { return xn }
        Compute.backend.im2col(xn, C: g.C, H: g.H, W: g.W, kernel: g.k, stride: g.stride,
                               padding: g.padding, buffer.baseAddress!)
        return UnsafePointer(buffer.baseAddress!)
    }
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
