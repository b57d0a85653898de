// TensorScalar: the element types a Tensor can hold (Float for speed, Double for exact checks).
//
// Every kernel in swift-dmd2 is written once, generically, and specialised for both types
// (`@inlinable` keeps that specialisation possible across modules). The few things that differ
// per type — which BLIS routine multiplies matrices, how a tensor is tagged in a safetensors
// file — are the protocol's requirements.
import CBLIS
import RealModule

public protocol TensorScalar: BinaryFloatingPoint, Real, SIMDScalar, Sendable, CustomStringConvertible
where Self.RawSignificand: FixedWidthInteger {
    /// C ← α·op(A)·op(B) + β·C, row-major, through BLIS (`cblas_sgemm` / `cblas_dgemm`).
    static func blasGemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Self, a: UnsafePointer<Self>, lda: Int,
        b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
    /// The safetensors dtype tag of this type ("F32" or "F64").
    static var dtypeTag: String { get }
    /// Machine epsilon, used to scale comparison tolerances.
    static var unitRoundoff: Double { get }
    /// Lossless widening / rounding conversion through Double.
    init(_ double: Double)
}

@inline(__always)
private func cblasTrans(_ t: Bool) -> CBLAS_TRANSPOSE { t ? CblasTrans : CblasNoTrans }

extension Float: TensorScalar {
    @inlinable public static var unitRoundoff: Double { 0x1p-24 }
    public static var dtypeTag: String { "F32" }
    public static func blasGemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(CblasRowMajor, cblasTrans(transA), cblasTrans(transB),
                    f77_int(m), f77_int(n), f77_int(k), alpha, a, f77_int(lda), b, f77_int(ldb),
                    beta, c, f77_int(ldc))
    }
}

extension Double: TensorScalar {
    @inlinable public static var unitRoundoff: Double { 0x1p-53 }
    public static var dtypeTag: String { "F64" }
    public static func blasGemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Double, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        cblas_dgemm(CblasRowMajor, cblasTrans(transA), cblasTrans(transB),
                    f77_int(m), f77_int(n), f77_int(k), alpha, a, f77_int(lda), b, f77_int(ldb),
                    beta, c, f77_int(ldc))
    }
}
