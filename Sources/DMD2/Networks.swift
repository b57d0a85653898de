// The four networks of DMD2 (docs/METHOD.md §2 "Networks") and the generator's input.
//
//   G       generator, an EDM denoiser initialised as a copy of the teacher, trained
//   μ_real  the teacher, frozen (its parameters never require grad)
//   μ_fake  the fake diffusion critic, a copy of the teacher, trained
//   D       the GAN head (GANHead.swift) on μ_fake's encoder bottleneck, fresh, trained
// Every DMD2 network runs without dropout (the teacher's config is copied with dropout 0).
//
// One generator step (one-step generation): x_g = G(σ_max·z; σ_max, y) with σ_max = 80 and
// z ~ N(0, I): the EDM denoiser at the top of the σ range applied to pure noise of that level.
// No clamp in training. The input (image and σ per sample) is a `GeneratorInput`, made by one
// function (`oneStepInput`), so the few-step generator (docs/METHOD.md §3) can build its inputs —
// x̂_{j−1} + σ_j·ε at σ_j — and call the same `generate`.
import DMD2Core
import DMD2Ops
import EDM

/// What the generator is applied to: images and one σ per image.
public struct GeneratorInput<T: TensorScalar> {
    /// x [N, C, R, R].
    public var x: Tensor<T>
    /// σ per image.
    public var sigma: [Double]

    public init(x: Tensor<T>, sigma: [Double]) {
        precondition(x.rank == 4 && x.shape[0] == sigma.count,
                     "GeneratorInput: images \(x.shape) with \(sigma.count) σ values (want [N, C, R, R] and N values)")
        self.x = x
        self.sigma = sigma
    }
}

/// G, μ_real, μ_fake and the head D.
public struct DMD2Networks<T: TensorScalar> {
    /// G (trained).
    public var generator: Denoiser<T>
    /// μ_real, the teacher (frozen).
    public let real: Denoiser<T>
    /// μ_fake (trained).
    public var fake: Denoiser<T>
    /// D on μ_fake's bottleneck (trained).
    public var head: GANHead<T>

    /// σ_max of the one-step generator (80).
    public static var sigmaMax: Double { 80 }

    /// The config every DMD2 network uses: the teacher's with dropout 0.
    public static func studentConfig(teacher: UNetConfig) -> UNetConfig {
        var c = teacher
        c.dropout = 0
        return c
    }

    /// Cb, the width of the encoder bottleneck the head reads; traps unless the encoder ends at
    /// 8×8 (the head's k4s2p1 → k4s4p0 convolutions need an 8×8 map).
    public static func bottleneckChannels(_ config: UNetConfig) -> Int {
        let r = config.bottleneckResolution
        precondition(r == GANHead<T>.inputResolution,
                     "DMD2Networks: the encoder of \(config.resolution)×\(config.resolution) × \(config.channelMult) ends at \(r)×\(r); the GAN head needs an 8×8 bottleneck (resolution / 2^(levels − 1) must be 8)")
        return config.bottleneckChannels
    }

    /// G and μ_fake as copies of `teacher`, μ_real the teacher itself (frozen), and a fresh head
    /// drawn from `headRNG`.
    public init(teacher: UNet<T>, headRNG: inout RandomGenerator) {
        let config = Self.studentConfig(teacher: teacher.config)
        let head = GANHead<T>(channels: Self.bottleneckChannels(config), rng: &headRNG)
        self.init(generator: UNet(config: config, parameters: teacher.parameters.copy(requiresGrad: true)),
                  real: UNet(config: config, parameters: teacher.parameters.copy(requiresGrad: false)),
                  fake: UNet(config: config, parameters: teacher.parameters.copy(requiresGrad: true)),
                  head: head)
    }

    /// Networks with the given weights (a resumed run, a debug state). μ_real is frozen here.
    public init(generator: UNet<T>, real: UNet<T>, fake: UNet<T>, head: GANHead<T>) {
        precondition(generator.config == real.config && fake.config == real.config,
                     "DMD2Networks: G, μ_real and μ_fake must share one config")
        precondition(head.channels == Self.bottleneckChannels(real.config),
                     "DMD2Networks: head of width \(head.channels) for a bottleneck of \(Self.bottleneckChannels(real.config)) channels")
        real.parameters.setRequiresGrad(false)
        self.generator = Denoiser(net: generator)
        self.real = Denoiser(net: real)
        self.fake = Denoiser(net: fake)
        self.head = head
    }

    public var config: UNetConfig { real.config }

    /// μ_fake's and the head's parameters, in the critic optimiser's order (μ_fake first).
    public var criticParameters: [(name: String, variable: Variable<T>)] {
        zip(fake.parameters.names, fake.parameters.variables).map { ($0, $1) }
            + zip(head.parameters.names, head.parameters.variables).map { ($0, $1) }
    }

    /// G's parameters, in order.
    public var generatorParameters: [(name: String, variable: Variable<T>)] {
        zip(generator.parameters.names, generator.parameters.variables).map { ($0, $1) }
    }

    // MARK: The generator

    /// The one-step generator's input for latents z [N, C, R, R]: x = σ_max·z at σ = σ_max.
    public static func oneStepInput(latents z: Tensor<T>, sigmaMax: Double = sigmaMax) -> GeneratorInput<T> {
        GeneratorInput(x: z * T(sigmaMax), sigma: [Double](repeating: sigmaMax, count: z.shape.first ?? 0))
    }

    /// x_g = G(x; σ, y): differentiable in G's parameters (run it under `NoGrad.run` when G is
    /// not being updated).
    public func generate(_ input: GeneratorInput<T>, labels: Tensor<T>?) -> Variable<T> {
        generator(Variable(input.x), sigma: input.sigma, classLabels: labels)
    }
}

extension UNetConfig {
    /// Height = width of the encoder's last output (the GAN head's input): resolution/2^(levels − 1).
    public var bottleneckResolution: Int { layout.encoder.last?.resolution ?? resolution }
    /// Channels of the encoder's last output (ImageNet-64: 768).
    public var bottleneckChannels: Int { layout.skipChannels.last! }
}

extension Denoiser {
    /// The same network with leaves that do not require grad (the values are shared, not copied).
    public func frozen() -> Denoiser<T> {
        Denoiser(net: UNet(config: config, parameters: parameters.copy(requiresGrad: false)), sigmaData: sigmaData)
    }
}

/// One value per image as [N, 1, 1, 1], rounded once to T (σ, loss weights).
func perImage<T: TensorScalar>(_ values: [Double]) -> Tensor<T> {
    Tensor(shape: [values.count, 1, 1, 1], scalars: values.map { T($0) })
}
