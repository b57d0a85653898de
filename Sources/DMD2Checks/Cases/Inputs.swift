// Deterministic inputs for op cases.
import DMD2Core

/// i.i.d. N(shift, scale²) values from a seeded generator.
public func randn(_ shape: [Int], seed: UInt64, scale: Double = 1, shift: Double = 0) -> Tensor<Double> {
    var rng = RandomGenerator(seed: seed)
    return rng.normal(shape, mean: shift, std: scale)
}
