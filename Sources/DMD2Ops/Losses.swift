// The training losses, composed from differentiable ops (their backward passes come from the
// ops they are built of; each still has its own gradient check under its own name).
//
// mseLoss:         L = mean((x − t)²)                            EDM's denoising loss, unweighted
// weightedMSELoss: L = mean(w·(x − t)²), w broadcast to x       EDM: w = λ(σ) per sample, [N,1,1,1]
// softplusLoss:    L = mean(softplus(z)) = mean(ln(1 + e^z))    DMD2's GAN terms:
//   critic: L_D = softplusLoss(D(fake)) + softplusLoss(−D(real)); generator: softplusLoss(−D(fake)).
// softmaxCrossEntropy: L = mean_n(logsumexp_k z[n,k] − z[n,y_n])  classifier training (class
//   consistency, DMD2Metrics); its own forward and backward below: dz = (softmax(z) − onehot(y))/N.
// Every loss is a mean (over all elements, or over the N rows), returned as a scalar (shape []).
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

// MARK: - Softmax cross-entropy
//
// Logits z [N, K] (N rows, K classes), integer labels y_n ∈ 0..<K, p = softmax(z) per row:
//   L = (1/N)·Σ_n (lse_n − z[n, y_n]),   lse_n = log Σ_k e^{z[n,k]}  (= −mean log p[n, y_n])
//   dz[n, k] = (p[n, k] − [k = y_n])/N.
// lse without a row-max primitive: p comes stably from the backend's softmax, and for every k
// with p > 0, z[n,k] − log p[n,k] = lse_n exactly; their p-weighted average Σ_k p·(z − log p)
// is lse_n to rounding (Σ_k p = 1), and an underflowed p (log p = −∞, replaced by 0) has weight 0.
// So a confidently wrong row costs its true large value, not log(0).

/// Mean cross-entropy of class `labels` (one index in 0..<K per row) under logits [N, K]:
/// (1/N)·Σ_n −log softmax(logits)[n, labels[n]], computed stably for large |logits|.
///
/// ∂L/∂logits = (softmax(logits) − onehot(labels))/N.
///
/// Mathematical properties: L ≥ 0; adding a constant to a row of logits changes nothing (each row
/// of the gradient sums to 0); K equal logits give log K.
public func softmaxCrossEntropy<T>(logits: Variable<T>, labels: [Int]) -> Variable<T> {
    precondition(logits.value.rank == 2, "softmaxCrossEntropy: logits must be [N, K], got \(logits.shape)")
    let N = logits.shape[0], K = logits.shape[1]
    precondition(labels.count == N, "softmaxCrossEntropy: \(labels.count) labels for logits \(logits.shape)")
    precondition(K >= 1 && labels.allSatisfy { (0..<K).contains($0) },
                 "softmaxCrossEntropy: labels must lie in 0..<\(K) for logits \(logits.shape), got \(labels)")
    let onehot: Tensor<T> = oneHot(labels, classes: K)                  // [N, K]
    let z = logits.value                                                 // [N, K]
    let p = Tensor<T>(shape: [N, K]) { pp in                             // softmax rows [N, K]
        z.withUnsafeBufferPointer { zp in Compute.backend.softmaxRows(zp, rows: N, cols: K, pp) }
    }
    let logP = replacingNonFinite(p.map(.log), nan: 0, posInf: 0, negInf: 0)
    // Σ_n lse_n − Σ_n z[n, y_n] = Σ [p·(z − log p) − onehot·z]
    let total = (p * (z - logP) - onehot * z).sum()
    let loss = Tensor<T>(scalar: total / T(N))
    return Variable.record("softmaxCrossEntropy", loss, parents: [logits]) { dY, _ in
        [(p - onehot) * (dY.scalar / T(N))]                              // [N, K]
    }
}
