// A test-only backend: the CPU backend with one primitive deliberately wrong, for checking that
// the shadow catches it and names it.
import DMD2Checks
import DMD2Core

final class BrokenBackend: Backend {
    enum Fault: Sendable, Equatable {
        /// softmaxRows normalises each row by the sum of all but its last exp (a loop bound off by one).
        case softmaxOffByOne
        /// gemm with transB reads B as if it were stored untransposed (a forgotten transpose).
        case gemmIgnoresTransB
        /// unary writes its result into its input as well.
        case unaryWritesInput
        /// gemm adds `factor` tolerances (64·u·√(k+1)·max|C|, the shadow's rule) to C[0, 0].
        case gemmNudge(factor: Double)
        /// permute flips the last bit of the first output (one ulp: data movement must be exact).
        case permuteOneULP
    }

    let fault: Fault
    let cpu = CPUBackend()
    var name: String { "broken(\(fault))" }
    init(_ fault: Fault) { self.fault = fault }

    func gemm<T: TensorScalar>(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: T, a: UnsafePointer<T>, lda: Int,
        b: UnsafePointer<T>, ldb: Int, beta: T, c: UnsafeMutablePointer<T>, ldc: Int
    ) {
        if fault == .gemmIgnoresTransB && transB {
            // B is [n, k] (ldb = k); read as a [k, n] matrix: in bounds, and wrong.
            precondition(ldb == k, "BrokenBackend: the forgotten transpose needs a contiguous B")
            return cpu.gemm(transA: transA, transB: false, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                            b: b, ldb: n, beta: beta, c: c, ldc: ldc)
        }
        cpu.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                 b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        if case .gemmNudge(let factor) = fault, m > 0, n > 0 {
            var maxC = 0.0
            for i in 0..<m { for j in 0..<n { maxC = max(maxC, abs(Double(c[i * ldc + j]))) } }
            let tolerance = Tolerance.rho * T.unitRoundoff * Double(Tolerance.K("gemm", .init(k: k))).squareRoot() * maxC
            c[0] = T(Double(c[0]) + factor * tolerance)
        }
    }

    func unary<T: TensorScalar>(_ op: UnaryOp, _ x: UnsafeBufferPointer<T>, _ y: UnsafeMutableBufferPointer<T>) {
        cpu.unary(op, x, y)
        if fault == .unaryWritesInput, x.count > 0 {
            UnsafeMutableBufferPointer(mutating: x)[0] = y[0]
        }
    }

    func binary<T: TensorScalar>(_ op: BinaryOp, _ a: UnsafeBufferPointer<T>, _ b: UnsafeBufferPointer<T>, _ y: UnsafeMutableBufferPointer<T>) {
        cpu.binary(op, a, b, y)
    }
    func affine<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, scale: T, shift: T, _ y: UnsafeMutableBufferPointer<T>) {
        cpu.affine(x, scale: scale, shift: shift, y)
    }
    func nanToNum<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, nan: T, posInf: T, negInf: T, _ y: UnsafeMutableBufferPointer<T>) {
        cpu.nanToNum(x, nan: nan, posInf: posInf, negInf: negInf, y)
    }
    func sumAxis<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, outer: Int, reduced: Int, inner: Int, _ y: UnsafeMutableBufferPointer<T>) {
        cpu.sumAxis(x, outer: outer, reduced: reduced, inner: inner, y)
    }
    func sum<T: TensorScalar>(_ x: UnsafeBufferPointer<T>) -> T { cpu.sum(x) }
    func dot<T: TensorScalar>(_ a: UnsafeBufferPointer<T>, _ b: UnsafeBufferPointer<T>) -> T { cpu.dot(a, b) }

    func permute<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, shape: [Int], permutation: [Int], _ y: UnsafeMutableBufferPointer<T>) {
        cpu.permute(x, shape: shape, permutation: permutation, y)
        if fault == .permuteOneULP, y.count > 0 { y[0] = y[0].nextUp }
    }
    func broadcast<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, shape: [Int], to outShape: [Int], _ y: UnsafeMutableBufferPointer<T>) {
        cpu.broadcast(x, shape: shape, to: outShape, y)
    }
    func copyRows<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, xStride: Int, xOffset: Int,
        _ y: UnsafeMutableBufferPointer<T>, yStride: Int, yOffset: Int, rows: Int, count: Int
    ) {
        cpu.copyRows(x, xStride: xStride, xOffset: xOffset, y, yStride: yStride, yOffset: yOffset, rows: rows, count: count)
    }
    func im2col<T: TensorScalar>(
        _ x: UnsafePointer<T>, C: Int, H: Int, W: Int, kernel: Int, stride: Int, padding: Int,
        _ col: UnsafeMutablePointer<T>, ldcol: Int
    ) {
        cpu.im2col(x, C: C, H: H, W: W, kernel: kernel, stride: stride, padding: padding, col, ldcol: ldcol)
    }
    func col2im<T: TensorScalar>(
        _ col: UnsafePointer<T>, ldcol: Int, C: Int, H: Int, W: Int, kernel: Int, stride: Int, padding: Int,
        _ x: UnsafeMutablePointer<T>
    ) {
        cpu.col2im(col, ldcol: ldcol, C: C, H: H, W: W, kernel: kernel, stride: stride, padding: padding, x)
    }
    func avgPool2x2<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, planes: Int, H: Int, W: Int, _ y: UnsafeMutableBufferPointer<T>) {
        cpu.avgPool2x2(x, planes: planes, H: H, W: W, y)
    }
    func avgPool2x2Backward<T: TensorScalar>(_ dy: UnsafeBufferPointer<T>, planes: Int, H: Int, W: Int, _ dx: UnsafeMutableBufferPointer<T>) {
        cpu.avgPool2x2Backward(dy, planes: planes, H: H, W: W, dx)
    }
    func upsampleNearest2x<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, planes: Int, H: Int, W: Int, _ y: UnsafeMutableBufferPointer<T>) {
        cpu.upsampleNearest2x(x, planes: planes, H: H, W: W, y)
    }
    func upsampleNearest2xBackward<T: TensorScalar>(_ dy: UnsafeBufferPointer<T>, planes: Int, H: Int, W: Int, _ dx: UnsafeMutableBufferPointer<T>) {
        cpu.upsampleNearest2xBackward(dy, planes: planes, H: H, W: W, dx)
    }
    func groupNorm<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int, eps: T,
        gamma: UnsafeBufferPointer<T>?, beta: UnsafeBufferPointer<T>?,
        _ y: UnsafeMutableBufferPointer<T>, mean: UnsafeMutableBufferPointer<T>, rstd: UnsafeMutableBufferPointer<T>
    ) {
        cpu.groupNorm(x, N: N, C: C, L: L, groups: G, eps: eps, gamma: gamma, beta: beta, y, mean: mean, rstd: rstd)
    }
    func groupNormBackward<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, _ dy: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int,
        gamma: UnsafeBufferPointer<T>?, mean: UnsafeBufferPointer<T>, rstd: UnsafeBufferPointer<T>,
        _ dx: UnsafeMutableBufferPointer<T>, dGamma: UnsafeMutableBufferPointer<T>?, dBeta: UnsafeMutableBufferPointer<T>?
    ) {
        cpu.groupNormBackward(x, dy, N: N, C: C, L: L, groups: G, gamma: gamma, mean: mean, rstd: rstd, dx, dGamma: dGamma, dBeta: dBeta)
    }

    func softmaxRows<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, rows: Int, cols: Int, _ y: UnsafeMutableBufferPointer<T>) {
        cpu.softmaxRows(x, rows: rows, cols: cols, y)
        guard fault == .softmaxOffByOne, cols > 1 else { return }
        // Σ over j < cols − 1 instead of j < cols: every row divided by (1 − y_last).
        for r in 0..<rows {
            let scale = 1 / (1 - y[r * cols + cols - 1])
            for j in 0..<cols { y[r * cols + j] *= scale }
        }
    }
    func softmaxRowsBackward<T: TensorScalar>(
        _ y: UnsafeBufferPointer<T>, _ dy: UnsafeBufferPointer<T>, rows: Int, cols: Int, _ dx: UnsafeMutableBufferPointer<T>
    ) {
        cpu.softmaxRowsBackward(y, dy, rows: rows, cols: cols, dx)
    }
}
