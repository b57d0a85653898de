// Gradient clipping by global norm (PyTorch's torch.nn.utils.clip_grad_norm_), used on each
// DMD2 optimiser's parameters with maxNorm 10 (docs/METHOD.md).
//
//   norm = √(Σ_p ‖grad_p‖²)            over every parameter that has a gradient, in Double
//   coef = maxNorm/(norm + 1e-6);  if coef < 1: grad_p ← coef·grad_p for every p
// Not an op on the tape: it rescales the accumulated `.grad`s between backward and the step.
import DMD2Core

/// Rescale the parameters' accumulated gradients so their global L2 norm is at most `maxNorm`,
/// and return the norm *before* clipping.
///
/// Follows PyTorch: every gradient is multiplied by `maxNorm/(norm + 1e-6)` when that factor is
/// below 1 (i.e. when the norm exceeds `maxNorm`, up to the 1e-6). Parameters whose `.grad` is
/// nil are skipped. The norm is accumulated in Double whatever `T` is. A non-finite norm (a NaN
/// or ±∞ somewhere in the gradients) is returned as is and nothing is scaled, so the caller can
/// detect it and skip the step.
@discardableResult
public func clipGradNorm<T>(_ parameters: [Variable<T>], maxNorm: Double) -> Double {
    precondition(maxNorm >= 0 && maxNorm.isFinite, "clipGradNorm: maxNorm must be finite and ≥ 0, got \(maxNorm)")
    let norm = globalGradNorm(parameters)
    guard norm.isFinite else { return norm }
    let coef = maxNorm / (norm + 1e-6)
    if coef < 1 {
        for p in parameters {
            if let g = p.grad { p.grad = g * T(coef) }
        }
    }
    return norm
}

/// The global L2 norm √(Σ_p ‖grad_p‖²) of the parameters' accumulated gradients, the norm
/// `clipGradNorm` measures (and returns) before clipping: parameters whose `.grad` is nil are
/// skipped, each gradient is converted to Double and the sum is accumulated in Double, parameter
/// by parameter in the given order. Use it to log the norm when nothing is clipped.
public func globalGradNorm<T>(_ parameters: [Variable<T>]) -> Double {
    var sumOfSquares = 0.0
    for p in parameters {
        guard let g = p.grad else { continue }
        let g64 = (g as? Tensor<Double>) ?? g.converted(to: Double.self)
        sumOfSquares += g64.dot(g64)
    }
    return sumOfSquares.squareRoot()
}
