// Group normalisation (Wu & He, ECCV 2018), as ADM uses it (docs/ARCHITECTURE-ADM.md "Layers").
//
// x is [N, C, …] viewed as [N, C, L] (L = product of the trailing dims, H·W for images); the C
// channels split into G contiguous groups of C/G. Per (n, g), over the M = C/G·L values:
//   μ = mean x,  σ² = mean (x − μ)² (biased),  rstd = 1/√(σ² + eps),  x̂ = (x − μ)·rstd,
//   y[n, c, l] = x̂[n, c, l]·γ_c + β_c.
// Backward, with ĝ = γ·dy (per group):
//   dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)),  dγ_c = Σ_{n,l} dy·x̂,  dβ_c = Σ_{n,l} dy.
// The forward keeps μ and rstd ([N·G]) for the backward instead of recomputing them. The scalar
// formulas are `Formula.groupNorm…` at the end of this file.
import DMD2Core

/// The number of GroupNorm groups ADM uses for `channels` channels: min(32, C/4).
///
/// 192 → 32, 384 → 32, 768 → 32; small test widths get C/4 groups of 4 channels.
public func admGroupCount(channels: Int) -> Int {
    precondition(channels >= 4, "admGroupCount: ADM needs at least 4 channels, got \(channels)")
    return Swift.min(32, channels / 4)
}

/// GroupNorm of `x` [N, C, …] with `groups` contiguous channel groups and an optional
/// per-channel affine `weight` γ [C] and `bias` β [C] (nil means γ = 1, β = 0).
///
/// y = (x − μ_{n,g}) / √(σ²_{n,g} + eps) · γ_c + β_c, with μ, σ² the mean and biased variance
/// over the C/G channels of group g and all trailing positions — PyTorch's `F.group_norm`.
///
/// Mathematical properties: for fixed x, y is linear in γ and affine in β. Without the affine,
/// each (n, g) slice of y has mean 0 and variance σ²/(σ² + eps) ≈ 1, and y does not change when
/// a constant is added to one group of x (so dx sums to 0 over every group).
///
/// `x` may be [N, C] (L = 1), [N, C, L] or [N, C, H, W]; ADM uses `admGroupCount(channels:)`
/// groups and eps 1e-5. The backward pass reuses the forward's μ and rstd.
public func groupNorm<T>(
    _ x: Variable<T>, groups: Int, weight: Variable<T>?, bias: Variable<T>?, eps: T = 1e-5
) -> Variable<T> {
    let shape = x.shape
    precondition(shape.count >= 2, "groupNorm: input must be [N, C, …], got \(shape)")
    let N = shape[0], C = shape[1], L = shape[2...].reduce(1, *)
    precondition(groups >= 1 && C % groups == 0, "groupNorm: \(C) channels of \(shape) do not split into \(groups) groups")
    if let weight { precondition(weight.shape == [C], "groupNorm: weight \(weight.shape) for input \(shape), expected [\(C)]") }
    if let bias { precondition(bias.shape == [C], "groupNorm: bias \(bias.shape) for input \(shape), expected [\(C)]") }
    let G = groups

    // Forward: y [N, C, L] and the statistics μ, rstd [N·G].
    let forward = Tensor<T>.withBuffers(reading: [x.value, weight?.value, bias?.value], writing: [shape, [N * G], [N * G]]) { i, o in
        Compute.backend.groupNorm(i[0]!, N: N, C: C, L: L, groups: G, eps: eps, gamma: i[1], beta: i[2], o[0], mean: o[1], rstd: o[2])
    }
    let (y, mean, rstd) = (forward[0], forward[1], forward[2])

    let (savedMean, savedRstd) = (mean, rstd)                          // [N·G] each
    let parents = [x] + (weight.map { [$0] } ?? []) + (bias.map { [$0] } ?? [])
    return Variable.record("groupNorm", y, parents: parents) { dY, needed in
        // Parent slots: 0 = x, then weight (if any), then bias (if any).
        let weightSlot = weight == nil ? nil : 1
        let biasSlot = bias == nil ? nil : (weight == nil ? 1 : 2)
        let wantWeight = weightSlot.map { needed[$0] } ?? false
        let wantBias = biasSlot.map { needed[$0] } ?? false
        // The backend computes dx in every call (it is the bulk of the work anyway).
        let backward = Tensor<T>.withBuffers(reading: [x.value, dY, weight?.value, savedMean, savedRstd],
                                             writing: [shape, [C], [C]]) { i, o in
            Compute.backend.groupNormBackward(i[0]!, i[1]!, N: N, C: C, L: L, groups: G, gamma: i[2], mean: i[3]!, rstd: i[4]!, o[0],
                                              dGamma: wantWeight ? o[1] : nil, dBeta: wantBias ? o[2] : nil)
        }
        let (dX, dGamma, dBeta) = (backward[0], backward[1], backward[2])   // dγ, dβ written only when wanted
        var grads: [Tensor<T>?] = [needed[0] ? dX : nil]          // dx [N, C, …]
        if weight != nil { grads.append(wantWeight ? dGamma : nil) }   // dγ [C]
        if bias != nil { grads.append(wantBias ? dBeta : nil) }        // dβ [C]
        return grads
    }
}

/// SiLU(GroupNorm(x)·scale + shift) with a scale and shift per sample and channel, in one fused
/// primitive (`groupNormSiLU`; its backward `groupNormSiLUBackward`).
///
/// Equals `silu(groupNorm(x, groups:, weight: nil, bias: nil) * scale[N, C, 1…] + shift[N, C, 1…])`
/// up to rounding — that composition is what the fused kernels are checked against. `x` is
/// [N, C, …]; `scale` and `shift` are [N, C]. Differentiable in x, scale and shift.
public func groupNormSiLU<T>(
    _ x: Variable<T>, groups: Int, scale: Variable<T>, shift: Variable<T>, eps: T = 1e-5
) -> Variable<T> {
    let shape = x.shape
    precondition(shape.count >= 2, "groupNormSiLU: input must be [N, C, …], got \(shape)")
    let N = shape[0], C = shape[1], L = shape[2...].reduce(1, *)
    precondition(groups >= 1 && C % groups == 0, "groupNormSiLU: \(C) channels of \(shape) do not split into \(groups) groups")
    precondition(scale.shape == [N, C] && shift.shape == [N, C],
                 "groupNormSiLU: scale \(scale.shape) and shift \(shift.shape) for input \(shape), expected [\(N), \(C)] each")
    let G = groups
    let forward = Tensor<T>.withBuffers(reading: [x.value, scale.value, shift.value], writing: [shape, [N * G], [N * G]]) { i, o in
        Compute.backend.groupNormSiLU(i[0]!, N: N, C: C, L: L, groups: G, eps: eps, scale: i[1]!, shift: i[2]!,
                                      o[0], mean: o[1], rstd: o[2])
    }
    let (mean, rstd) = (forward[1], forward[2])
    return Variable.record("groupNormSiLU", forward[0], parents: [x, scale, shift]) { dY, needed in
        let backward = Tensor<T>.withBuffers(reading: [x.value, dY, scale.value, shift.value, mean, rstd],
                                             writing: [shape, [N, C], [N, C]]) { i, o in
            Compute.backend.groupNormSiLUBackward(i[0]!, i[1]!, N: N, C: C, L: L, groups: G, scale: i[2]!, shift: i[3]!,
                                                  mean: i[4]!, rstd: i[5]!, o[0], dScale: o[1], dShift: o[2])
        }
        return [needed[0] ? backward[0] : nil, needed[1] ? backward[1] : nil, needed[2] ? backward[2] : nil]
    }
}

/// SiLU(GroupNorm(x) with γ, β), fused: `silu(groupNorm(x, groups:, weight:, bias:))` up to
/// rounding. The per-channel γ [C] and β [C] (nil: 1 and 0) become the fused primitive's
/// per-sample scale and shift [N, C]; their gradients are summed back over the samples.
public func groupNormSiLU<T>(
    _ x: Variable<T>, groups: Int, weight: Variable<T>?, bias: Variable<T>?, eps: T = 1e-5
) -> Variable<T> {
    precondition(x.value.rank >= 2, "groupNormSiLU: input must be [N, C, …], got \(x.shape)")
    let N = x.shape[0], C = x.shape[1]
    if let weight { precondition(weight.shape == [C], "groupNormSiLU: weight \(weight.shape) for input \(x.shape), expected [\(C)]") }
    if let bias { precondition(bias.shape == [C], "groupNormSiLU: bias \(bias.shape) for input \(x.shape), expected [\(C)]") }
    let ones = Variable(Tensor<T>.ones([N, 1]))
    let scale = weight.map { reshape($0, [1, C]) * ones } ?? Variable(Tensor<T>.ones([N, C]))
    let shift = bias.map { reshape($0, [1, C]) * ones } ?? Variable(Tensor<T>.zeros([N, C]))
    return groupNormSiLU(x, groups: groups, scale: scale, shift: shift, eps: eps)
}

// MARK: Scalar formulas (the `groupNorm` and `groupNormBackward` primitives)

extension Formula {
    /// One group's statistics over its M = (C/G)·L values: μ = Σx/M, then the biased variance
    /// σ² = Σ(x − μ)²/M in a second pass, and rstd = 1/√(σ² + eps).
    @inlinable public static func groupNormStatistics<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, eps: T) -> (mean: T, rstd: T) {
        var mu: T = 0
        for v in x { mu += v }
        mu /= T(x.count)
        var variance: T = 0
        for v in x { variance += (v - mu) * (v - mu) }
        variance /= T(x.count)
        return (mu, 1 / (variance + eps).squareRoot())
    }

    /// y = x̂·γ + β with x̂ = (x − μ)·rstd (γ = 1, β = 0 without the affine).
    @inlinable public static func groupNormOutput<T: TensorScalar>(_ x: T, mean: T, rstd: T, gamma: T, beta: T) -> T {
        (x - mean) * rstd * gamma + beta
    }

    /// dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) for one element, with ĝ = γ·dy and x̂ = (x − μ)·rstd,
    /// given the group's mean(ĝ) and mean(ĝ·x̂). (dγ_c = Σ_{n,l} dy·x̂ and dβ_c = Σ_{n,l} dy.)
    @inlinable public static func groupNormInputGradient<T: TensorScalar>(gHat: T, xHat: T, meanG: T, meanGX: T, rstd: T) -> T {
        rstd * (gHat - meanG - xHat * meanGX)
    }
}
