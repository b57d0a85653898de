// DMD2's four losses (docs/METHOD.md §2), each a function of the networks, the images and the
// caller's draws (Draws.swift), returning the loss as a Variable and the intermediates.
//
// Letters: N batch, C channels, H×W image, x_g = G(σ_max·z; σ_max, y) the generator's images,
// K the σ grid (SigmaGrid.swift), σ_d = 0.5, sg(·) stop-gradient.
//
//   distribution matching  L_DM   = ½·mean((x_g − sg(x_g − g))²),   g = (μ_fake − μ_real)/w
//   fake critic            L_fake = mean((1/σ² + 1/σ_d²)·(μ_fake(x + σε; σ, y) − x)²),  x = sg(x_g)
//   discriminator          L_D    = mean softplus(D(x_fake,σ)) + mean softplus(−D(x_real,σ))
//   generator GAN          L_G    = mean softplus(−D(x_g + σ'ε'))
// with D(x, σ) = head(μ_fake.encoder(x + σε; σ, y)) the GAN head's logit.
// Gradient paths: L_DM reaches x_g only through its identity term (the predictions are computed
// without recording); L_fake and L_D train μ_fake and the head on detached images; L_G flows
// through frozen copies of μ_fake's encoder and the head into x_g, so they get no gradient.
import DMD2Core
import DMD2Ops
import EDM

// MARK: Distribution matching

/// The distribution matching loss's value and what it was computed from.
public struct DistributionMatchingResult<T: TensorScalar> {
    /// L_DM, a scalar differentiable in x_g (its gradient w.r.t. x_g is g/(N·C·H·W)).
    public var loss: Variable<T>
    /// σ = K[t] per image.
    public var sigma: [Double]
    /// x_t = x_g + σ·ε.
    public var noisy: Tensor<T>
    /// a = μ_real(x_t; σ, y) (guided when a guidance scale was given).
    public var predReal: Tensor<T>
    /// b = μ_fake(x_t; σ, y).
    public var predFake: Tensor<T>
    /// w = mean over (C, H, W) of |x_g − a|, [N].
    public var normalizer: Tensor<T>
    /// g = (b − a)/w with NaN → 0 and ±∞ → ±largest finite, [N, C, H, W].
    public var grad: Tensor<T>
}

/// DMD2's distribution matching loss for generated images x_g [N, C, H, W] with labels y
/// (one-hot [N, K] or nil) and the draw (t per image, ε):
///
///     σ = K[t],  x_t = x_g + σ·ε
///     a = μ_real(x_t; σ, y),  b = μ_fake(x_t; σ, y)        (no gradient through either)
///     w = mean_{C,H,W} |x_g − a|                            (per image)
///     g = nan_to_num((b − a)/w)                             (NaN → 0, ±∞ → ±largest finite)
///     L_DM = ½·mean((x_g − sg(x_g − g))²)
///
/// L_DM's value is ½·mean(g²) and its gradient w.r.t. x_g is g/(N·C·H·W): descending it moves
/// x_g along (a − b)/w, i.e. along the score difference s_real − s_fake = (a − b)/σ² rescaled
/// by the per-image normaliser, which makes the step independent of how far x_g is from the
/// teacher's prediction. With `realGuidance` w_r (for a teacher trained with label dropout),
/// a = D_∅ + w_r·(D_y − D_∅) (classifier-free guidance on the real score).
public func distributionMatchingLoss<T>(
    _ xg: Variable<T>, labels: Tensor<T>?, real: Denoiser<T>, fake: Denoiser<T>, draw: NoiseDraw<T>,
    grid: SigmaGrid = .dmd2, realGuidance: Double? = nil
) -> DistributionMatchingResult<T> {
    let x = xg.value
    precondition(x.rank == 4 && draw.noise.shape == x.shape,
                 "distributionMatchingLoss: images \(x.shape) and noise \(draw.noise.shape) must be the same [N, C, H, W]")
    precondition(realGuidance == nil || labels != nil, "distributionMatchingLoss: guidance on the real score needs class labels")
    let N = x.shape[0], CHW = x.count / Swift.max(N, 1)
    let σ = draw.sigmas(grid)
    let noisy = x + draw.noise * perImage(σ).broadcast(to: x.shape)
    let (a, b) = NoGrad.run {
        let input = Variable(noisy)
        var a = real(input, sigma: σ, classLabels: labels).value
        if let w = realGuidance {
            let unconditional = real(input, sigma: σ, classLabels: nil).value
            a = unconditional + (a - unconditional) * T(w)
        }
        return (a, fake(input, sigma: σ, classLabels: labels).value)
    }
    let w = ((x - a).map(.abs).reshaped([N, CHW]).sum(axis: 1)) * T(1 / Double(CHW))          // [N]
    let g = nanToNum(Variable((b - a) / w.reshaped([N, 1, 1, 1]).broadcast(to: x.shape))).value
    let loss = mseLoss(xg, Variable(x - g)) * T(0.5)                                           // ½·mean((x_g − sg(x_g − g))²)
    return DistributionMatchingResult(loss: loss, sigma: σ, noisy: noisy, predReal: a, predFake: b, normalizer: w, grad: g)
}

// MARK: Fake critic

/// The fake critic's denoising loss and its intermediates.
public struct FakeCriticResult<T: TensorScalar> {
    /// L_fake, differentiable in μ_fake's parameters.
    public var loss: Variable<T>
    public var sigma: [Double]
    /// x + σ·ε.
    public var noisy: Tensor<T>
    /// μ_fake(x + σ·ε; σ, y).
    public var prediction: Tensor<T>
}

/// The fake critic's loss: denoising score matching on the generator's current images
/// x = sg(x_g) [N, C, H, W], with σ = K[t] drawn uniformly over the whole grid (not EDM's
/// log-normal):
///
///     L_fake = mean over N·C·H·W of (1/σ² + 1/σ_d²)·(μ_fake(x + σ·ε; σ, y) − x)²
///
/// The weight 1/σ² + 1/σ_d² equals EDM's λ(σ) = (σ² + σ_d²)/(σ·σ_d)²; it is computed in Double
/// per image and rounded once to T.
public func fakeCriticLoss<T>(
    _ x: Tensor<T>, labels: Tensor<T>?, fake: Denoiser<T>, draw: NoiseDraw<T>, grid: SigmaGrid = .dmd2
) -> FakeCriticResult<T> {
    precondition(x.rank == 4 && draw.noise.shape == x.shape,
                 "fakeCriticLoss: images \(x.shape) and noise \(draw.noise.shape) must be the same [N, C, H, W]")
    let σ = draw.sigmas(grid), σd = fake.sigmaData
    let noisy = x + draw.noise * perImage(σ).broadcast(to: x.shape)
    let prediction = fake(Variable(noisy), sigma: σ, classLabels: labels)
    let weight = Variable<T>(perImage(σ.map { 1 / ($0 * $0) + 1 / (σd * σd) }))
    let loss = weightedMSELoss(prediction, Variable(x), weight: weight)
    return FakeCriticResult(loss: loss, sigma: σ, noisy: noisy, prediction: prediction.value)
}

// MARK: GAN

/// D(x) = head(μ_fake.encoderFeatures(x + σ·ε; σ, y)): one logit per image [N] for images
/// x [N, C, H, W] noised at σ (per image) with ε. Differentiable in x, the critic and the head
/// as far as they require grad.
public func discriminatorLogits<T>(
    _ x: Variable<T>, labels: Tensor<T>?, sigma: [Double], noise: Tensor<T>, critic: Denoiser<T>, head: GANHead<T>
) -> Variable<T> {
    precondition(noise.shape == x.shape, "discriminatorLogits: noise \(noise.shape) for images \(x.shape)")
    let noisy = x + Variable(noise * perImage(sigma).broadcast(to: noise.shape))               // x + σ·ε
    return head(critic.encoderFeatures(noisy, sigma: sigma, classLabels: labels))
}

/// The discriminator loss and its logits.
public struct DiscriminatorResult<T: TensorScalar> {
    /// L_D, differentiable in μ_fake's encoder and the head.
    public var loss: Variable<T>
    /// D on the generated images, [N].
    public var logitsFake: Tensor<T>
    /// D on the real images, [N].
    public var logitsReal: Tensor<T>
    public var sigmaFake: [Double]
    public var sigmaReal: [Double]
}

/// The discriminator's loss (the critic's GAN term), non-saturating with softplus:
///
///     L_D = mean softplus(D(x_fake + σ_f·ε_f)) + mean softplus(−D(x_real + σ_r·ε_r))
///
/// for detached generated images x_fake = sg(x_g) with the generator's labels and real images
/// x_real from the data with theirs, each noised with its own σ = K[t] (t uniform over the
/// grid). softplus(z) = ln(1 + eᶻ): the head learns logits < 0 for fakes and > 0 for reals.
public func discriminatorLoss<T>(
    fake xFake: Tensor<T>, fakeLabels: Tensor<T>?, real xReal: Tensor<T>, realLabels: Tensor<T>?,
    critic: Denoiser<T>, head: GANHead<T>, fakeDraw: NoiseDraw<T>, realDraw: NoiseDraw<T>, grid: SigmaGrid = .dmd2
) -> DiscriminatorResult<T> {
    precondition(xFake.rank == 4 && xReal.rank == 4 && Array(xFake.shape.dropFirst()) == Array(xReal.shape.dropFirst()),
                 "discriminatorLoss: fake images \(xFake.shape) and real images \(xReal.shape) must both be [N, C, H, W] of one size")
    let σf = fakeDraw.sigmas(grid), σr = realDraw.sigmas(grid)
    let fakeLogits = discriminatorLogits(Variable(xFake), labels: fakeLabels, sigma: σf, noise: fakeDraw.noise, critic: critic, head: head)
    let realLogits = discriminatorLogits(Variable(xReal), labels: realLabels, sigma: σr, noise: realDraw.noise, critic: critic, head: head)
    let loss = softplusLoss(fakeLogits) + softplusLoss(-realLogits)
    return DiscriminatorResult(loss: loss, logitsFake: fakeLogits.value, logitsReal: realLogits.value, sigmaFake: σf, sigmaReal: σr)
}

/// The generator's GAN loss and its logits.
public struct GeneratorGANResult<T: TensorScalar> {
    /// L_G, differentiable in x_g only.
    public var loss: Variable<T>
    /// D(x_g + σ'·ε'), [N].
    public var logits: Tensor<T>
    public var sigma: [Double]
}

/// The generator's GAN loss for x_g [N, C, H, W] with its labels, at a fresh σ' = K[t']:
///
///     L_G = mean softplus(−D(x_g + σ'·ε'))
///
/// The gradient flows through μ_fake's encoder and the head into x_g (and so into G); μ_fake
/// and the head are used through frozen copies (`frozen()`: the same values in leaves that do
/// not require grad), so no backward pass of L_G — whatever its targets — gives them a gradient.
public func generatorGANLoss<T>(
    _ xg: Variable<T>, labels: Tensor<T>?, critic: Denoiser<T>, head: GANHead<T>, draw: NoiseDraw<T>, grid: SigmaGrid = .dmd2
) -> GeneratorGANResult<T> {
    let σ = draw.sigmas(grid)
    let logits = discriminatorLogits(xg, labels: labels, sigma: σ, noise: draw.noise, critic: critic.frozen(), head: head.frozen())
    return GeneratorGANResult(loss: softplusLoss(-logits), logits: logits.value, sigma: σ)
}

// MARK: Regression (original DMD)

/// The original DMD's regression loss with the L2 distance, on pairs (z, y_ref) where y_ref is
/// the teacher's ODE sample from the same z:
///
///     L_reg = mean((G(σ_max·z; σ_max, y) − y_ref)²)
public func regressionLoss<T>(_ xg: Variable<T>, targets: Tensor<T>) -> Variable<T> {
    precondition(xg.shape == targets.shape, "regressionLoss: generated images \(xg.shape) and targets \(targets.shape) differ")
    return mseLoss(xg, Variable(targets))
}
