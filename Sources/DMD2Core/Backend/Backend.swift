// The backend seam: the small set of compute primitives every op is built from.
//
// Ops (DMD2Ops) never loop over memory themselves; they call `Compute.backend`, whose
// primitives are grouped into families below, one protocol per family and one file per
// family. The CPU backend (SIMD + BLIS) is the first implementation; other backends (a plain
// scalar reference, GPU adapters) implement the same protocols and are tested against it.
//
// Buffers are host memory (Tensor storage); pointers are valid only during the call.
// Shapes are passed as plain integers in the paper's letters (N, C, H, W, G, …).
import Synchronization

/// A complete compute backend: every primitive family.
public protocol Backend: AnyObject, Sendable,
    GEMMPrimitives, ElementwisePrimitives, ReductionPrimitives, LayoutPrimitives,
    ConvPrimitives, ResamplePrimitives, NormPrimitives, SoftmaxPrimitives, FusedPrimitives
{
    /// A short name ("cpu", "reference", "cuda") used in reports.
    var name: String { get }
}

/// The backend all ops run on. Choosing a backend is this one setting; it starts as
/// DMD2_BACKEND names (BackendRegistry.swift), else the CPU backend.
public enum Compute {
    private static let current = Mutex<any Backend>(BackendRegistry.startupBackend())

    public static var backend: any Backend {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }

    /// Run `body` with another backend, restoring the previous one afterwards.
    public static func with<R>(_ backend: any Backend, _ body: () throws -> R) rethrows -> R {
        let old = self.backend
        self.backend = backend
        defer { self.backend = old }
        return try body()
    }
}

// MARK: - GEMM

public protocol GEMMPrimitives {
    /// C[m×n] ← α·op(A)·op(B) + β·C, row-major; op(A) is m×k, op(B) is k×n.
    /// `lda`, `ldb`, `ldc` are the row strides of A, B, C as stored.
    func gemm<T: TensorScalar>(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: T, a: UnsafePointer<T>, lda: Int,
        b: UnsafePointer<T>, ldb: Int,
        beta: T, c: UnsafeMutablePointer<T>, ldc: Int)
}

// MARK: - Elementwise

/// Unary maps y = f(x).
public enum UnaryOp: String, CaseIterable, Sendable {
    case neg, exp, log, sqrt, square, abs, sign
    case sigmoid, silu, softplus, tanh
    case sin, cos                           // the sinusoidal noise-level embedding
}

/// Binary maps y = f(a, b) on equal-length buffers. The `…Backward` cases are vector-Jacobian
/// products of unary ops: a = the unary op's input x, b = upstream gradient g, y = f'(x)·g.
public enum BinaryOp: String, CaseIterable, Sendable {
    case add, sub, mul, div, maximum, minimum
    case sigmoidBackward, siluBackward, softplusBackward, tanhBackward
}

public protocol ElementwisePrimitives {
    func unary<T: TensorScalar>(_ op: UnaryOp, _ x: UnsafeBufferPointer<T>, _ y: UnsafeMutableBufferPointer<T>)
    func binary<T: TensorScalar>(
        _ op: BinaryOp, _ a: UnsafeBufferPointer<T>, _ b: UnsafeBufferPointer<T>,
        _ y: UnsafeMutableBufferPointer<T>)
    /// y = scale·x + shift (scalar ops: add, multiply, negate by a constant).
    func affine<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, scale: T, shift: T, _ y: UnsafeMutableBufferPointer<T>)
    /// Replace NaN by `nan`, +∞ by `posInf`, −∞ by `negInf`.
    func nanToNum<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, nan: T, posInf: T, negInf: T, _ y: UnsafeMutableBufferPointer<T>)
}

// MARK: - Reductions

public protocol ReductionPrimitives {
    /// y[o, i] = Σ_r x[o, r, i] for x viewed as [outer, reduced, inner].
    func sumAxis<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, outer: Int, reduced: Int, inner: Int, _ y: UnsafeMutableBufferPointer<T>)
    /// Σ x (in a fixed order for a fixed thread count).
    func sum<T: TensorScalar>(_ x: UnsafeBufferPointer<T>) -> T
    /// Σ a·b.
    func dot<T: TensorScalar>(_ a: UnsafeBufferPointer<T>, _ b: UnsafeBufferPointer<T>) -> T
}

// MARK: - Layout

public protocol LayoutPrimitives {
    /// y = x permuted: y's axis i is x's axis `permutation[i]`; `shape` is x's shape.
    func permute<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, shape: [Int], permutation: [Int], _ y: UnsafeMutableBufferPointer<T>)
    /// y = x broadcast from `shape` to `outShape` (same rank; each x extent is 1 or equal).
    func broadcast<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, shape: [Int], to outShape: [Int], _ y: UnsafeMutableBufferPointer<T>)
    /// Copy `rows` rows of `count` elements: y[r·yStride + yOffset + j] = x[r·xStride + xOffset + j].
    /// (Concat, split and slice along any axis are this strided row copy.)
    func copyRows<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, xStride: Int, xOffset: Int,
        _ y: UnsafeMutableBufferPointer<T>, yStride: Int, yOffset: Int, rows: Int, count: Int)
}

// MARK: - Convolution (lowered to GEMM)

public protocol ConvPrimitives {
    /// Unfold one image for convolution as a GEMM:
    /// col[(c·k + u)·k + v, i·Wo + j] = x[c, i·s + u − p, j·s + v − p] (0 outside the image),
    /// x is [C, H, W], col is [C·k·k, Ho·Wo] with Ho = (H + 2p − k)/s + 1 (likewise Wo), its rows
    /// `ldcol` ≥ Ho·Wo elements apart (row r starts at col + r·ldcol). With ldcol = G·Ho·Wo,
    /// G images unfolded at col, col + Ho·Wo, … fill one [C·k·k, G·Ho·Wo] matrix side by side.
    func im2col<T: TensorScalar>(
        _ x: UnsafePointer<T>, C: Int, H: Int, W: Int, kernel: Int, stride: Int, padding: Int,
        _ col: UnsafeMutablePointer<T>, ldcol: Int)
    /// The adjoint of `im2col` (same layout, rows of col `ldcol` apart): x[c, …] += every col
    /// entry that was read from it.
    func col2im<T: TensorScalar>(
        _ col: UnsafePointer<T>, ldcol: Int, C: Int, H: Int, W: Int, kernel: Int, stride: Int, padding: Int,
        _ x: UnsafeMutablePointer<T>)
    /// y [N, O, Ho, Wo] = conv(x [N, C, H, W], weight [O, C, k, k]) + bias [O] (zero padding), in
    /// one pass with the unfolding fused into the GEMM, or `false` — y untouched — where this
    /// backend has no such kernel for T; the caller then lowers it itself. It must equal the
    /// composition, per image n: im2col(x_n) → col [K, L]; y_n = bias broadcast over [O, L];
    /// gemm(y_n += weight [O, K] · col) (up to GEMM rounding: Tolerance's `conv2dDirect` row).
    func conv2dDirect<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, N: Int, C: Int, H: Int, W: Int,
        weight: UnsafeBufferPointer<T>, O: Int, kernel: Int, stride: Int, padding: Int,
        bias: UnsafeBufferPointer<T>?, _ y: UnsafeMutableBufferPointer<T>) -> Bool
    /// dX [N, C, H, W] of that convolution for upstream dY [N, O, Ho, Wo], in one pass, or
    /// `false` (dX untouched) where this backend has no such kernel for T and this geometry.
    /// It must equal the composition, per image n: dcol = gemm(weightᵀ [K, O] · dY_n [O, L]);
    /// dX_n = col2im(dcol) into zeros (up to GEMM rounding: Tolerance's row).
    func conv2dDirectBackwardData<T: TensorScalar>(
        _ dY: UnsafeBufferPointer<T>, N: Int, C: Int, H: Int, W: Int,
        weight: UnsafeBufferPointer<T>, O: Int, kernel: Int, stride: Int, padding: Int,
        _ dX: UnsafeMutableBufferPointer<T>) -> Bool
    /// dWeight [O, C, k, k] of that convolution for input x [N, C, H, W] and upstream dY
    /// [N, O, Ho, Wo], in one pass (overwritten; zeros for N = 0), or `false` (dWeight
    /// untouched) where this backend has no such kernel for T. It must equal the composition:
    /// dW = 0, then per image n: gemm(dW [O, K] += dY_n [O, L] · im2col(x_n)ᵀ [L, K]) (up to GEMM
    /// rounding over the N·L terms: Tolerance's row).
    func conv2dDirectBackwardWeight<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, _ dY: UnsafeBufferPointer<T>, N: Int, C: Int, H: Int, W: Int,
        O: Int, kernel: Int, stride: Int, padding: Int,
        _ dWeight: UnsafeMutableBufferPointer<T>) -> Bool
}

extension ConvPrimitives {
    /// No direct convolution: ops use im2col + gemm (the composition above).
    public func conv2dDirect<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, N: Int, C: Int, H: Int, W: Int,
        weight: UnsafeBufferPointer<T>, O: Int, kernel: Int, stride: Int, padding: Int,
        bias: UnsafeBufferPointer<T>?, _ y: UnsafeMutableBufferPointer<T>
    ) -> Bool { false }

    /// No direct data gradient: ops use gemm + col2im (the composition above).
    public func conv2dDirectBackwardData<T: TensorScalar>(
        _ dY: UnsafeBufferPointer<T>, N: Int, C: Int, H: Int, W: Int,
        weight: UnsafeBufferPointer<T>, O: Int, kernel: Int, stride: Int, padding: Int,
        _ dX: UnsafeMutableBufferPointer<T>
    ) -> Bool { false }

    /// No direct weight gradient: ops use im2col + gemm (the composition above).
    public func conv2dDirectBackwardWeight<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, _ dY: UnsafeBufferPointer<T>, N: Int, C: Int, H: Int, W: Int,
        O: Int, kernel: Int, stride: Int, padding: Int,
        _ dWeight: UnsafeMutableBufferPointer<T>
    ) -> Bool { false }
}

// MARK: - Resampling (ADM down/up blocks)

public protocol ResamplePrimitives {
    /// y[p, i, j] = ¼·Σ_{a,b∈{0,1}} x[p, 2i+a, 2j+b]; x is [P, H, W] (P = N·C planes), H, W even.
    func avgPool2x2<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, planes: Int, H: Int, W: Int, _ y: UnsafeMutableBufferPointer<T>)
    /// dx[p, i, j] = ¼·dy[p, i/2, j/2]; H, W are the *input* extents.
    func avgPool2x2Backward<T: TensorScalar>(_ dy: UnsafeBufferPointer<T>, planes: Int, H: Int, W: Int, _ dx: UnsafeMutableBufferPointer<T>)
    /// y[p, i, j] = x[p, i/2, j/2]; x is [P, H, W], y is [P, 2H, 2W].
    func upsampleNearest2x<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, planes: Int, H: Int, W: Int, _ y: UnsafeMutableBufferPointer<T>)
    /// dx[p, i, j] = Σ_{a,b} dy[p, 2i+a, 2j+b]; H, W are the *input* extents.
    func upsampleNearest2xBackward<T: TensorScalar>(_ dy: UnsafeBufferPointer<T>, planes: Int, H: Int, W: Int, _ dx: UnsafeMutableBufferPointer<T>)
}

// MARK: - Normalisation

public protocol NormPrimitives {
    /// GroupNorm of x viewed as [N, C, L] with G contiguous channel groups:
    /// y = (x − μ_{n,g})·rstd_{n,g}·γ_c + β_c, rstd = 1/√(biased var + eps).
    /// Writes `mean` and `rstd` ([N·G]) for the backward pass. γ/β nil means 1/0.
    func groupNorm<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int, eps: T,
        gamma: UnsafeBufferPointer<T>?, beta: UnsafeBufferPointer<T>?,
        _ y: UnsafeMutableBufferPointer<T>, mean: UnsafeMutableBufferPointer<T>, rstd: UnsafeMutableBufferPointer<T>)
    /// Vector-Jacobian product of `groupNorm`. Overwrites dx, and dGamma/dBeta ([C]) when given.
    func groupNormBackward<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, _ dy: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int,
        gamma: UnsafeBufferPointer<T>?, mean: UnsafeBufferPointer<T>, rstd: UnsafeBufferPointer<T>,
        _ dx: UnsafeMutableBufferPointer<T>,
        dGamma: UnsafeMutableBufferPointer<T>?, dBeta: UnsafeMutableBufferPointer<T>?)
}

// MARK: - Fusions

/// Compositions of the primitives above done in one pass over memory. Each names the unfused
/// composition it must equal (up to rounding); that composition is the default implementation
/// (below), so a backend that does not fuse still runs them. The CPU backend fuses; the
/// reference backend implements the scalar formulas directly; the shadow checks both.
public protocol FusedPrimitives {
    /// GroupNorm without its own affine, then an affine per (sample, channel), then SiLU:
    /// y = SiLU(z), z = x̂·scale[n, c] + shift[n, c], x̂ = (x − μ_{n,g})·rstd_{n,g} over x viewed as
    /// [N, C, L] with G contiguous channel groups (μ, rstd as `groupNorm` computes and writes them).
    /// Unfused: `groupNorm(x, γ = nil, β = nil)` → `binary(.mul, ·, scale broadcast over L)` →
    /// `binary(.add, ·, shift broadcast over L)` → `unary(.silu)`. ADM's blocks use it twice:
    /// SiLU(norm0(x)) (scale = γ, shift = β for every sample) and SiLU(t + norm1(h)·(1 + s))
    /// (scale = γ·(1 + s), shift = β·(1 + s) + t). `scale`, `shift` are [N·C].
    func groupNormSiLU<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int, eps: T,
        scale: UnsafeBufferPointer<T>, shift: UnsafeBufferPointer<T>,
        _ y: UnsafeMutableBufferPointer<T>, mean: UnsafeMutableBufferPointer<T>, rstd: UnsafeMutableBufferPointer<T>)
    /// Vector-Jacobian product of `groupNormSiLU` for upstream dy, with z recomputed from x:
    /// dz = `siluBackward`(z, dy); dShift[n, c] = Σ_l dz; dScale[n, c] = Σ_l dz·x̂;
    /// dx = `groupNormBackward`(x, dz·scale, γ = nil). Overwrites dx, dScale, dShift ([N·C]).
    func groupNormSiLUBackward<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, _ dy: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int,
        scale: UnsafeBufferPointer<T>, shift: UnsafeBufferPointer<T>,
        mean: UnsafeBufferPointer<T>, rstd: UnsafeBufferPointer<T>,
        _ dx: UnsafeMutableBufferPointer<T>, dScale: UnsafeMutableBufferPointer<T>, dShift: UnsafeMutableBufferPointer<T>)
}

extension FusedPrimitives where Self: ElementwisePrimitives & ReductionPrimitives & LayoutPrimitives & NormPrimitives {
    /// The unfused composition (what a backend without its own fusion runs).
    public func groupNormSiLU<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int, eps: T,
        scale: UnsafeBufferPointer<T>, shift: UnsafeBufferPointer<T>,
        _ y: UnsafeMutableBufferPointer<T>, mean: UnsafeMutableBufferPointer<T>, rstd: UnsafeMutableBufferPointer<T>
    ) {
        let count = N * C * L
        let xHat = UnsafeMutableBufferPointer<T>.allocate(capacity: count)
        let wide = UnsafeMutableBufferPointer<T>.allocate(capacity: count)
        defer { xHat.deallocate(); wide.deallocate() }
        groupNorm(x, N: N, C: C, L: L, groups: G, eps: eps, gamma: nil, beta: nil, xHat, mean: mean, rstd: rstd)
        broadcast(scale, shape: [N * C, 1], to: [N * C, L], wide)
        binary(.mul, UnsafeBufferPointer(xHat), UnsafeBufferPointer(wide), y)
        broadcast(shift, shape: [N * C, 1], to: [N * C, L], wide)
        binary(.add, UnsafeBufferPointer(y), UnsafeBufferPointer(wide), xHat)
        unary(.silu, UnsafeBufferPointer(xHat), y)
    }

    /// The unfused composition of the VJP.
    public func groupNormSiLUBackward<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, _ dy: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int,
        scale: UnsafeBufferPointer<T>, shift: UnsafeBufferPointer<T>,
        mean: UnsafeBufferPointer<T>, rstd: UnsafeBufferPointer<T>,
        _ dx: UnsafeMutableBufferPointer<T>, dScale: UnsafeMutableBufferPointer<T>, dShift: UnsafeMutableBufferPointer<T>
    ) {
        let count = N * C * L
        let xHat = UnsafeMutableBufferPointer<T>.allocate(capacity: count)
        let z = UnsafeMutableBufferPointer<T>.allocate(capacity: count)
        let wide = UnsafeMutableBufferPointer<T>.allocate(capacity: count)
        defer { xHat.deallocate(); z.deallocate(); wide.deallocate() }
        // x̂ = (x − μ)·rstd per group with the forward's statistics, then z as the forward has it.
        let M = (C / G) * L
        for ng in 0..<(N * G) {
            let range = (ng * M)..<((ng + 1) * M)
            affine(UnsafeBufferPointer(rebasing: x[range]), scale: rstd[ng], shift: -mean[ng] * rstd[ng],
                   UnsafeMutableBufferPointer(rebasing: xHat[range]))
        }
        broadcast(scale, shape: [N * C, 1], to: [N * C, L], wide)
        binary(.mul, UnsafeBufferPointer(xHat), UnsafeBufferPointer(wide), z)
        broadcast(shift, shape: [N * C, 1], to: [N * C, L], wide)
        binary(.add, UnsafeBufferPointer(z), UnsafeBufferPointer(wide), z)
        binary(.siluBackward, UnsafeBufferPointer(z), dy, z)                       // z ← dz
        sumAxis(UnsafeBufferPointer(z), outer: N * C, reduced: L, inner: 1, dShift)
        binary(.mul, UnsafeBufferPointer(z), UnsafeBufferPointer(xHat), xHat)     // x̂ ← dz·x̂
        sumAxis(UnsafeBufferPointer(xHat), outer: N * C, reduced: L, inner: 1, dScale)
        broadcast(scale, shape: [N * C, 1], to: [N * C, L], wide)
        binary(.mul, UnsafeBufferPointer(z), UnsafeBufferPointer(wide), z)          // z ← ĝ = dz·scale
        groupNormBackward(x, UnsafeBufferPointer(z), N: N, C: C, L: L, groups: G, gamma: nil, mean: mean, rstd: rstd,
                          dx, dGamma: nil, dBeta: nil)
    }
}

// MARK: - Softmax

public protocol SoftmaxPrimitives {
    /// y[r, :] = softmax(x[r, :]) over `cols`, computed stably (max subtracted).
    func softmaxRows<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, rows: Int, cols: Int, _ y: UnsafeMutableBufferPointer<T>)
    /// dx[r, j] = y[r, j]·(dy[r, j] − Σ_k dy[r, k]·y[r, k]).
    func softmaxRowsBackward<T: TensorScalar>(
        _ y: UnsafeBufferPointer<T>, _ dy: UnsafeBufferPointer<T>, rows: Int, cols: Int, _ dx: UnsafeMutableBufferPointer<T>)
}
