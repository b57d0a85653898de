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
/// nil are skipped. The norm is accumulated in Double whatever `T` is (per fixed chunk, combined
/// in chunk order: the same for every thread count), and gradients are scaled in place. A non-finite norm (a NaN
/// or ±∞ somewhere in the gradients) is returned as is and nothing is scaled, so the caller can
/// detect it and skip the step.
@discardableResult
public func clipGradNorm<T>(_ parameters: [Variable<T>], maxNorm: Double) -> Double {
    precondition(maxNorm >= 0 && maxNorm.isFinite, "clipGradNorm: maxNorm must be finite and ≥ 0, got \(maxNorm)")
    let norm = globalGradNorm(parameters)
    guard norm.isFinite else { return norm }
    let coef = maxNorm / (norm + 1e-6)
    if coef < 1 {
        for p in parameters where p.grad != nil {
            p.grad!.withUnsafeMutableBufferPointer { scaleInPlace($0, by: coef) }
        }
    }
    return norm
}

/// The global L2 norm √(Σ_p ‖grad_p‖²) of the parameters' accumulated gradients, the norm
/// `clipGradNorm` measures (and returns) before clipping: parameters whose `.grad` is nil are
/// skipped, each gradient's squares are summed in Double (fixed chunks, below), parameter
/// by parameter in the given order. Use it to log the norm when nothing is clipped.
public func globalGradNorm<T>(_ parameters: [Variable<T>]) -> Double {
    var sumOfSquares = 0.0
    for p in parameters {
        guard let g = p.grad else { continue }
        sumOfSquares += g.withUnsafeBufferPointer { squaredNormInDouble($0) }
    }
    return sumOfSquares.squareRoot()
}

// Both passes read or write each gradient once, in place, with no Double copy of it. They are
// bitwise what the composition `g.converted(to: Double).dot(itself)` and `g * T(coef)` computed
// on the CPU backend: the same fixed chunks (`parallelChunkCount(n, minChunk:
// CPUBackend.elementwiseGrain)`), SIMD8 products added with `addProduct` per chunk, a scalar
// tail, partials added in chunk order; and the scale as the backend's affine x·c + 0.

/// Σ g², widened to Double, in fixed chunks combined in chunk order.
func squaredNormInDouble<T: TensorScalar>(_ g: UnsafeBufferPointer<T>) -> Double {
    if T.self == Float.self { return squaredNormKernel(UnsafeRawBufferPointer(g).assumingMemoryBound(to: Float.self)) }
    if T.self == Double.self { return squaredNormKernel(UnsafeRawBufferPointer(g).assumingMemoryBound(to: Double.self)) }
    return squaredNormKernel(g)
}

private func squaredNormKernel<S: TensorScalar>(_ g: UnsafeBufferPointer<S>) -> Double {
    guard let base = g.baseAddress else { return 0 }
    let pointer = UnsafeSendablePointer(base)
    let chunks = parallelChunkCount(g.count, minChunk: CPUBackend.elementwiseGrain)
    var partial = [Double](repeating: 0, count: chunks)
    partial.withUnsafeMutableBufferPointer { out in
        let results = UnsafeSendablePointer(out.baseAddress!)
        parallelFor(chunks) { c in
            let range = chunkRange(c, of: chunks, total: g.count), x = pointer.value
            var acc = SIMD8<Double>(repeating: 0)
            var i = range.lowerBound
            while i + 8 <= range.upperBound {
                let v = SIMD8<Double>(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<S>.self))
                acc.addProduct(v, v)
                i += 8
            }
            var sum = acc.sum()
            while i < range.upperBound { let v = Double(x[i]); sum += v * v; i += 1 }
            results.value[c] = sum
        }
    }
    return partial.reduce(0, +)
}

/// g ← g·T(coef) + 0 in place.
func scaleInPlace<T: TensorScalar>(_ g: UnsafeMutableBufferPointer<T>, by coef: Double) {
    if T.self == Float.self {
        scaleKernel(UnsafeMutableRawBufferPointer(g).assumingMemoryBound(to: Float.self), Float(coef))
    } else if T.self == Double.self {
        scaleKernel(UnsafeMutableRawBufferPointer(g).assumingMemoryBound(to: Double.self), coef)
    } else {
        scaleKernel(g, T(coef))
    }
}

private func scaleKernel<S: TensorScalar>(_ g: UnsafeMutableBufferPointer<S>, _ c: S) {
    guard let base = g.baseAddress else { return }
    let pointer = UnsafeSendablePointer(base)
    parallelChunks(g.count, minChunk: CPUBackend.elementwiseGrain) { range in
        let x = pointer.value, vc = SIMD8<S>(repeating: c), zero = SIMD8<S>(repeating: 0)
        var i = range.lowerBound
        while i + 8 <= range.upperBound {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<S>.self)
            UnsafeMutableRawPointer(x + i).storeBytes(of: v * vc + zero, as: SIMD8<S>.self)
            i += 8
        }
        while i < range.upperBound { x[i] = x[i] * c + 0; i += 1 }
    }
}

/// A pointer carried into a parallel loop whose chunks touch disjoint elements.
private struct UnsafeSendablePointer<P>: @unchecked Sendable {
    let value: P
    init(_ value: P) { self.value = value }
}
