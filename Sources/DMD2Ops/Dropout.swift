// Dropout with an explicit mask (docs/STYLE.md: no hidden randomness in math code).
//
// Training-time inverted dropout, as in PyTorch: each element is kept with probability 1 − p
// and scaled by 1/(1 − p) so the expectation is unchanged; at inference dropout is the identity
// (simply do not call it).
//   y = x·m/(1 − p),  m ∈ {0, 1} of x's shape;   dX = dY·m/(1 − p).
// ADM applies it right before each block's conv1 (p = 0.10 for the teacher, 0 in DMD2).
import DMD2Core

/// x·mask/(1 − p) for a 0/1 `mask` of `x`'s shape (draw one with `dropoutMask`).
/// With p = 1 every element is dropped and the result is 0 (PyTorch's convention).
///
/// Linear in `x`; the mask is a constant and gets no gradient.
public func dropout<T>(_ x: Variable<T>, mask: Tensor<T>, p: Double) -> Variable<T> {
    precondition(mask.shape == x.shape, "dropout: mask shape \(mask.shape) differs from input shape \(x.shape)")
    precondition(p >= 0 && p <= 1, "dropout: p = \(p) is not a probability")
    let keep = p < 1 ? mask * T(1 / (1 - p)) : Tensor<T>.zeros(mask.shape)   // m/(1 − p)
    return Variable.record("dropout", x.value * keep, parents: [x]) { dY, _ in [dY * keep] }
}

/// A dropout mask: each element is 0 with probability `p` and 1 otherwise, independently,
/// drawn from `rng` (one uniform per element, in row-major order).
public func dropoutMask<T: TensorScalar>(shape: [Int], p: Double, rng: inout RandomGenerator) -> Tensor<T> {
    precondition(p >= 0 && p <= 1, "dropoutMask: p = \(p) is not a probability")
    precondition(shape.allSatisfy { $0 >= 0 }, "dropoutMask: negative extent in shape \(shape)")
    var scalars = [T]()
    scalars.reserveCapacity(shape.elementCount)
    for _ in 0..<shape.elementCount { scalars.append(rng.nextUniform() < p ? 0 : 1) }
    return Tensor(shape: shape, scalars: scalars)
}
