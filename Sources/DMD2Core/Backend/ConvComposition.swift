// The compositions the direct convolution primitives (`ConvPrimitives.conv2dDirect`,
// `conv2dDirectBackwardData`, `conv2dDirectBackwardWeight`) must equal, run on any backend's im2col / gemm / col2im. The
// shadow backend judges a candidate that has no direct kernel by this composition, and the
// conformance and golden cases use it where a backend declines.

/// im2col + gemm (+ bias), gemm + col2im, and im2col + gemm for the weight gradient, one image at a time.
public enum ConvComposition {
    /// y_n [O, L] = bias broadcast over [O, L], then gemm(y_n += weight [O, K] · im2col(x_n) [K, L]).
    public static func forward<T: TensorScalar>(
        on b: any Backend, _ x: UnsafeBufferPointer<T>, N: Int, C: Int, H: Int, W: Int,
        weight: UnsafeBufferPointer<T>, O: Int, kernel k: Int, stride s: Int, padding p: Int,
        bias: UnsafeBufferPointer<T>?, _ y: UnsafeMutableBufferPointer<T>
    ) {
        let L = ((H + 2 * p - k) / s + 1) * ((W + 2 * p - k) / s + 1), K = C * k * k
        precondition(x.count == N * C * H * W && weight.count == O * K && y.count == N * O * L,
                     "ConvComposition.forward: buffers \(x.count)/\(weight.count)/\(y.count) do not match N \(N), C \(C), \(H)×\(W), O \(O), k \(k)")
        guard N > 0 else { return }
        withUnsafeTemporaryAllocation(of: T.self, capacity: K * L) { col in
            for n in 0..<N {
                b.im2col(x.baseAddress! + n * C * H * W, C: C, H: H, W: W, kernel: k, stride: s, padding: p,
                         col.baseAddress!, ldcol: L)
                let yn = UnsafeMutableBufferPointer(rebasing: y[(n * O * L)..<((n + 1) * O * L)])
                if let bias { b.broadcast(bias, shape: [O, 1], to: [O, L], yn) }
                b.gemm(transA: false, transB: false, m: O, n: L, k: K, alpha: 1, a: weight.baseAddress!, lda: K,
                       b: col.baseAddress!, ldb: L, beta: bias == nil ? 0 : 1, c: yn.baseAddress!, ldc: L)
            }
        }
    }

    /// dX_n = col2im(gemm(weightᵀ [K, O] · dY_n [O, L])) into zeros.
    public static func backwardData<T: TensorScalar>(
        on b: any Backend, _ dY: UnsafeBufferPointer<T>, N: Int, C: Int, H: Int, W: Int,
        weight: UnsafeBufferPointer<T>, O: Int, kernel k: Int, stride s: Int, padding p: Int,
        _ dX: UnsafeMutableBufferPointer<T>
    ) {
        let L = ((H + 2 * p - k) / s + 1) * ((W + 2 * p - k) / s + 1), K = C * k * k
        precondition(dY.count == N * O * L && weight.count == O * K && dX.count == N * C * H * W,
                     "ConvComposition.backwardData: buffers \(dY.count)/\(weight.count)/\(dX.count) do not match N \(N), C \(C), \(H)×\(W), O \(O), k \(k)")
        guard N > 0 else { return }
        let zero: [T] = [0]
        zero.withUnsafeBufferPointer { b.broadcast($0, shape: [1], to: [dX.count], dX) }
        withUnsafeTemporaryAllocation(of: T.self, capacity: K * L) { dcol in
            for n in 0..<N {
                b.gemm(transA: true, transB: false, m: K, n: L, k: O, alpha: 1, a: weight.baseAddress!, lda: K,
                       b: dY.baseAddress! + n * O * L, ldb: L, beta: 0, c: dcol.baseAddress!, ldc: L)
                b.col2im(dcol.baseAddress!, ldcol: L, C: C, H: H, W: W, kernel: k, stride: s, padding: p,
                         dX.baseAddress! + n * C * H * W)
            }
        }
    }

    /// dW [O, K] = 0, then per image n: gemm(dW += dY_n [O, L] · im2col(x_n)ᵀ [L, K]).
    public static func backwardWeight<T: TensorScalar>(
        on b: any Backend, _ x: UnsafeBufferPointer<T>, _ dY: UnsafeBufferPointer<T>, N: Int, C: Int, H: Int, W: Int,
        O: Int, kernel k: Int, stride s: Int, padding p: Int,
        _ dWeight: UnsafeMutableBufferPointer<T>
    ) {
        let L = ((H + 2 * p - k) / s + 1) * ((W + 2 * p - k) / s + 1), K = C * k * k
        precondition(x.count == N * C * H * W && dY.count == N * O * L && dWeight.count == O * K,
                     "ConvComposition.backwardWeight: buffers \(x.count)/\(dY.count)/\(dWeight.count) do not match N \(N), C \(C), \(H)×\(W), O \(O), k \(k)")
        let zero: [T] = [0]
        zero.withUnsafeBufferPointer { b.broadcast($0, shape: [1], to: [dWeight.count], dWeight) }
        guard N > 0 else { return }
        withUnsafeTemporaryAllocation(of: T.self, capacity: K * L) { col in
            for n in 0..<N {
                b.im2col(x.baseAddress! + n * C * H * W, C: C, H: H, W: W, kernel: k, stride: s, padding: p,
                         col.baseAddress!, ldcol: L)
                b.gemm(transA: false, transB: true, m: O, n: K, k: L, alpha: 1, a: dY.baseAddress! + n * O * L, lda: L,
                       b: col.baseAddress!, ldb: L, beta: 1, c: dWeight.baseAddress!, ldc: K)
            }
        }
    }
}
