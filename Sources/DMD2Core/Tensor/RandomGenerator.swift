// A seeded, serialisable random generator for everything stochastic in swift-dmd2.
//
// No math code draws randomness itself (docs/STYLE.md): noise, σ indices and dropout masks are
// arguments, and the trainer owns one `RandomGenerator`. Its whole state is one UInt64
// (`state`), so a checkpoint can store it and a resumed run continues bitwise identically.
// Algorithm: SplitMix64 (Steele, Lea & Flood 2014) for uniform bits; Box–Muller for normals.

public struct RandomGenerator: RandomNumberGenerator, Sendable, Equatable, Codable {
    /// The complete generator state.
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUniform() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// A pair of independent standard normals (Box–Muller).
    public mutating func nextNormalPair() -> (Double, Double) {
        let u1 = 1 - nextUniform()                // (0, 1], so the log is finite
        let u2 = nextUniform()
        let r = (-2 * _log(u1)).squareRoot()
        let a = 2 * Double.pi * u2
        return (r * _cos(a), r * _sin(a))
    }

    /// A tensor of i.i.d. N(mean, std²) values.
    public mutating func normal<T: TensorScalar>(_ shape: [Int], mean: Double = 0, std: Double = 1, as: T.Type = T.self) -> Tensor<T> {
        let n = shape.elementCount
        var values = [T]()
        values.reserveCapacity(n)
        while values.count < n {
            let (a, b) = nextNormalPair()
            values.append(T(mean + std * a))
            if values.count < n { values.append(T(mean + std * b)) }
        }
        return Tensor(shape: shape, scalars: values)
    }

    /// A tensor of i.i.d. U[low, high) values.
    public mutating func uniform<T: TensorScalar>(_ shape: [Int], low: Double = 0, high: Double = 1, as: T.Type = T.self) -> Tensor<T> {
        Tensor(shape: shape, scalars: (0..<shape.elementCount).map { _ in T(low + (high - low) * nextUniform()) })
    }

    /// An integer uniform in `range` (unbiased).
    public mutating func int(in range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }
}

import RealModule
@inline(__always) private func _log(_ x: Double) -> Double { Double.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Double.cos(x) }
@inline(__always) private func _sin(_ x: Double) -> Double { Double.sin(x) }
