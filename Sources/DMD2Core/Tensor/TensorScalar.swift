// TensorScalar: the element types a Tensor can hold (Float for speed, Double for exact checks).
//
// Every kernel in swift-dmd2 is written once, generically, and specialised for both types
// (`@inlinable` keeps that specialisation possible across modules). The few things that differ
// per type — how a tensor is tagged in a safetensors file, its unit roundoff — are the
// protocol's requirements. (Which BLIS routine multiplies matrices is the CPU backend's
// business: `CPUBackend.blasGemm` switches on the type.)
import RealModule

public protocol TensorScalar: BinaryFloatingPoint, Real, SIMDScalar, Sendable, CustomStringConvertible
where Self.RawSignificand: FixedWidthInteger {
    /// The safetensors dtype tag of this type ("F32" or "F64").
    static var dtypeTag: String { get }
    /// Machine epsilon, used to scale comparison tolerances.
    static var unitRoundoff: Double { get }
    /// Lossless widening / rounding conversion through Double.
    init(_ double: Double)
}

extension Float: TensorScalar {
    @inlinable public static var unitRoundoff: Double { 0x1p-24 }
    public static var dtypeTag: String { "F32" }
}

extension Double: TensorScalar {
    @inlinable public static var unitRoundoff: Double { 0x1p-53 }
    public static var dtypeTag: String { "F64" }
}
