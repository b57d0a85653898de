// The training losses, composed from differentiable ops (their backward passes come from the
// ops they are built of; each still has its own gradient check under its own name).
//
// mseLoss:         L = mean((x − t)²)                            EDM's denoising loss, unweighted
// weightedMSELoss: L = mean(w·(x − t)²), w broadcast to x       EDM: w = λ(σ) per sample, [N,1,1,1]
// softplusLoss:    L = mean(softplus(z)) = mean(ln(1 + e^z))    DMD2's GAN terms:
//   critic: L_D = softplusLoss(D(fake)) + softplusLoss(−D(real)); generator: softplusLoss(−D(fake)).
// Every loss is a mean over all elements, returned as a scalar (shape []).
import DMD2Core

/// Mean squared error mean((x − target)²) over all elements; `x` and `target` have the same shape.
///
/// ∂L/∂x = 2(x − target)/n, ∂L/∂target = −2(x − target)/n.
public func mseLoss<T>(_ x: Variable<T>, _ target: Variable<T>) -> Variable<T> {
    precondition(x.shape == target.shape, "mseLoss: input shape \(x.shape) differs from target shape \(target.shape)")
    return mean(square(x - target))
}

/// Weighted mean squared error mean(weight·(x − target)²) over all elements of `x`; `weight`
/// broadcasts to `x`'s shape (e.g. [N, 1, 1, 1] for a per-sample weight).
///
/// ∂L/∂x = 2·w·(x − target)/n; ∂L/∂w = (x − target)²/n summed over the broadcast axes.
public func weightedMSELoss<T>(_ x: Variable<T>, _ target: Variable<T>, weight: Variable<T>) -> Variable<T> {
    precondition(x.shape == target.shape, "weightedMSELoss: input shape \(x.shape) differs from target shape \(target.shape)")
    precondition(broadcastShape(weight.shape, x.shape) == x.shape,
                 "weightedMSELoss: weight shape \(weight.shape) does not broadcast to input shape \(x.shape)")
    return mean(weight * square(x - target))
}

/// mean(softplus(logits)) = mean(ln(1 + e^logits)), computed stably for large |logits|.
/// The non-saturating GAN loss of logits that should be *negative*; pass −logits for logits
/// that should be positive.
///
/// ∂L/∂z = σ(z)/n.
public func softplusLoss<T>(_ logits: Variable<T>) -> Variable<T> {
    mean(softplus(logits))
}
