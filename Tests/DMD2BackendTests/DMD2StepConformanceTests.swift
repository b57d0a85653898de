// One DMD2 iteration (generator phase + critic phase, the debug state's network and inputs) on
// every registered backend, through StepConformance: each primitive shadowed against the
// reference, and every output compared with the Double truth on the CPU backend.
//
// Outputs: x_g, the DM intermediates (x_t, μ_real, μ_fake, normaliser, g), the GAN logits, the
// four losses, x_g's gradient and every parameter gradient of G, μ_fake and the head before
// clipping. The updated weights are left out on purpose: AdamW's first step is ≈ lr·sign(g),
// so a gradient that is 0 in exact arithmetic (the key part of attention's qkv bias) moves a
// weight by ±lr in Float depending on its rounding noise — DebugState replays updates from the
// file's own gradients for the same reason (docs/DEBUG-STATE.md).
import DMD2
import DMD2Core
import DMD2Ops
import DMD2Train
import EDM
import DMD2TestSupport
import XCTest

final class DMD2StepConformanceTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    /// The debug state's inputs as T: weights, draws and real images (all Float values, exact in Double).
    static func step<T: TensorScalar>(_: T.Type, inputs: DebugState.Inputs) -> StepConformance.Outputs {
        let c = inputs.config, s = inputs.settings
        func store(_ p: ParameterStore<Float>, requiresGrad: Bool = true) -> ParameterStore<T> {
            ParameterStore(p.namedTensors.map { ($0.name, Variable($0.value.converted(to: T.self), requiresGrad: requiresGrad, name: $0.name)) })
        }
        func draw(_ d: NoiseDraw<Float>) -> NoiseDraw<T> { NoiseDraw(t: d.t, noise: d.noise.converted(to: T.self)) }
        let networks = DMD2Networks<T>(generator: UNet(config: c, parameters: store(inputs.generator)),
                                       real: UNet(config: c, parameters: store(inputs.real, requiresGrad: false)),
                                       fake: UNet(config: c, parameters: store(inputs.fake)),
                                       head: GANHead(channels: c.bottleneckChannels, parameters: store(inputs.head)))
        let optimizer = AdamWConfig(learningRate: s.learningRate, beta1: s.beta1, beta2: s.beta2, eps: s.eps,
                                    weightDecay: s.weightDecay, warmUpSteps: s.warmUpSteps)
        let optimizers = DMD2Optimizers(networks: networks, generator: optimizer, critic: optimizer, maxGradNorm: s.maxGradNorm)
        let d = inputs.draws
        let draws = IterationDraws<T>(latents: d.latents.converted(to: T.self), labels: d.labels, dm: draw(d.dm),
                                      generatorGAN: draw(d.generatorGAN), fake: draw(d.fake),
                                      discriminatorFake: draw(d.discriminatorFake), discriminatorReal: draw(d.discriminatorReal))
        let real = RealBatch<T>(images: inputs.realImages.converted(to: T.self), labels: oneHot(inputs.realLabels, classes: c.labelDim))
        let objective = DMD2Objective(ganWeightGenerator: s.ganWeightGenerator, ganWeightCritic: s.ganWeightCritic)
        var gradients: StepConformance.Outputs = []
        let outcome = try! objective.iterate(networks: networks, optimizers: optimizers, draws: draws, real: real, regression: nil,
                                             updateGenerator: true, step: 1) { _ in
            for (prefix, p) in [("generator", networks.generator.parameters), ("fake", networks.fake.parameters),
                                ("head", networks.head.parameters)] {
                for (name, v) in zip(p.names, p.variables) {
                    gradients.append(("grad.\(prefix).\(name)", (v.grad ?? .zeros(v.shape)).converted(to: Double.self)))
                }
            }
        }
        let g = outcome.generator!, dm = g.dm!, k = outcome.critic, disc = k.discriminator!
        let wide = { (t: Tensor<T>) in t.converted(to: Double.self) }
        let scalar = { (x: T) in Tensor<Double>(scalar: Double(x)) }
        let values: StepConformance.Outputs = [
            ("x_g", wide(outcome.images)), ("dm.x_t", wide(dm.noisy)), ("dm.pred_real", wide(dm.predReal)),
            ("dm.pred_fake", wide(dm.predFake)), ("dm.normalizer", wide(dm.normalizer)), ("dm.grad", wide(dm.grad)),
            ("gen_gan.logits", wide(g.gan!.logits)), ("disc.logits_fake", wide(disc.logitsFake)), ("disc.logits_real", wide(disc.logitsReal)),
            ("loss.dm", scalar(dm.loss.value.scalar)), ("loss.gen_gan", scalar(g.gan!.loss.value.scalar)),
            ("loss.fake", scalar(k.fake.loss.value.scalar)), ("loss.disc", scalar(disc.loss.value.scalar)),
            ("grad_x_g", wide(g.imageGradient)),
        ]
        return values + gradients
    }

    func testDMD2StepOnEveryRegisteredBackend() {
        let inputs = DebugState.randomInputs(seed: 0)
        // The longest sum behind any output: the weight-gradient sums over N·H·W = 2·16·16 = 512
        // at 16×16, longer than the widest conv's C·k·k (the 8×8 decoder block reads 16 + 16
        // channels: 288; the head's first conv 16·4·4 = 256).
        let K = inputs.settings.batch * inputs.config.resolution * inputs.config.resolution
        let lines = StepConformance.check("DMD2 step (debug-state network, batch 2)", reductionLength: K) { double in
            double ? Self.step(Double.self, inputs: inputs) : Self.step(Float.self, inputs: inputs)
        }
        XCTAssertTrue(lines.contains { $0.contains(" on cpu ") }, "the CPU backend ran: \(lines)")
    }
}
