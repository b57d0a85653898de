// Gradient checks of EDM's network: ADM's UNet blocks ("layer") and the whole UNet, its encoder
// features and the EDM loss ("unet"), all in Double in the space of inputs and every parameter.
// Parameters are random and non-zero (`randomParameters`), unlike a fresh initialisation whose
// zero conv1/proj/out_conv would hide everything before them.
import DMD2Core
import DMD2Ops
import EDM

/// Network-building helpers shared by the network checks and the EDM tests.
public enum NetworkCases {
    /// A tiny config shaped like `small16` (two levels, attention at the lower one, labels) that
    /// runs in milliseconds: 8×8, 2 channels, 3 classes, 8 × [1, 2] channels, embedding 16.
    public static let tinyConfig = UNetConfig(
        resolution: 8, inChannels: 2, outChannels: 2, labelDim: 3, modelChannels: 8,
        channelMult: [1, 2], channelMultEmb: 2, numBlocks: 1, attnResolutions: [4],
        dropout: 0, labelDropout: 0)

    /// Random parameter values for gradient checks: no layer is zero, and GroupNorm's γ, β vary.
    /// Weights ~ N(0, 1/fanIn); γ ~ 1 + 0.2·N(0, 1); β and zero-initialised biases ~ 0.2·N(0, 1).
    public static func randomParameters(_ entries: [StateEntry], seed: UInt64) -> [Tensor<Double>] {
        var rng = RandomGenerator(seed: seed)
        return entries.filter(\.isParameter).map { e in
            let isNormScale = e.name.hasSuffix(".weight") && e.shape.count == 1
            switch e.kind {
            case .parameter(.ones) where isNormScale: return rng.normal(e.shape, mean: 1, std: 0.2)
            case .parameter(.uniform(let fanIn)): return rng.normal(e.shape, std: 1 / Double(fanIn).squareRoot())
            case .parameter(.standardNormal): return rng.normal(e.shape)
            default:
                // zeros: conv1/proj/out_conv weights and biases, GroupNorm β.
                if e.shape.count == 4 { return rng.normal(e.shape, std: 1 / Double(e.shape[1...].reduce(1, *)).squareRoot()) }
                return rng.normal(e.shape, std: 0.2)
            }
        }
    }

    /// A store of `variables` under the parameter names of `entries`.
    public static func store<T>(_ entries: [StateEntry], _ variables: some Collection<Variable<T>>) -> ParameterStore<T> {
        let names = entries.filter(\.isParameter).map(\.name)
        precondition(names.count == variables.count, "store: \(names.count) names for \(variables.count) variables")
        return ParameterStore(Array(zip(names, variables)).map { (name: $0.0, variable: $0.1) })
    }

    /// One-hot labels [N, K] (nil entries: no label, a zero row).
    public static func labels<T: TensorScalar>(_ classes: [Int?], count K: Int) -> Tensor<T> {
        var y = Tensor<T>.zeros([classes.count, K])
        for (n, c) in classes.enumerated() { if let c { y[n, c] = 1 } }
        return y
    }

    /// Network inputs: x ~ N(0, 1), c_noise ~ N(0, 1), and every other image labelled.
    public static func inputs(_ config: UNetConfig, batch N: Int, seed: UInt64) -> (x: Tensor<Double>, cNoise: Tensor<Double>, y: Tensor<Double>) {
        var rng = RandomGenerator(seed: seed)
        let x: Tensor<Double> = rng.normal([N, config.inChannels, config.resolution, config.resolution])
        let cNoise: Tensor<Double> = rng.normal([N])
        let y: Tensor<Double> = labels((0..<N).map { $0 % 2 == 0 ? $0 % config.labelDim : nil }, count: config.labelDim)
        return (x, cNoise, y)
    }

    // MARK: Blocks

    static let blockBatch = 2, blockEmbedding = 12

    /// The block types ADM uses, at widths of 8–16 channels on 4×4 or 8×8 maps (input side).
    public static let blocks: [(label: String, spec: UNetBlockSpec, inputSide: Int)] = {
        let E = blockEmbedding
        return [
            ("plain", UNetBlockSpec(name: "enc.4x4_block0", inChannels: 8, outChannels: 8, embChannels: E, resolution: 4), 4),
            ("down", UNetBlockSpec(name: "enc.4x4_down", inChannels: 8, outChannels: 8, embChannels: E, resolution: 4, resample: .down), 8),
            ("up", UNetBlockSpec(name: "dec.8x8_up", inChannels: 8, outChannels: 8, embChannels: E, resolution: 8, resample: .up), 4),
            ("attention", UNetBlockSpec(name: "dec.4x4_in0", inChannels: 16, outChannels: 16, embChannels: E, resolution: 4,
                                        attention: true, heads: 2), 4),
            ("1×1 skip", UNetBlockSpec(name: "dec.4x4_block0", inChannels: 16, outChannels: 8, embChannels: E, resolution: 4), 4),
            ("1×1 skip + attention", UNetBlockSpec(name: "enc.4x4_block1", inChannels: 8, outChannels: 16, embChannels: E, resolution: 4,
                                                   attention: true, heads: 1), 4),
        ]
    }()

    /// A gradient-check case for a block: inputs x, emb, then every parameter; optional dropout.
    public static func blockCase(_ spec: UNetBlockSpec, inputSide: Int, label: String, dropoutP: Double = 0, seed: UInt64) -> OpCase {
        let N = blockBatch, E = blockEmbedding
        var rng = RandomGenerator(seed: seed)
        let x: Tensor<Double> = rng.normal([N, spec.inChannels, inputSide, inputSide])
        let emb: Tensor<Double> = rng.normal([N, E])
        let entries = spec.stateEntries
        let params = randomParameters(entries, seed: seed &+ 1)
        let outSide = spec.resolution
        let mask: Tensor<Double> = dropoutMask(shape: [N, spec.outChannels, outSide, outSide], p: dropoutP, rng: &rng)
        func run<T>(_ v: [Variable<T>]) -> Variable<T> {
            let dropout = dropoutP > 0 ? DropoutMasks<T>(p: dropoutP, masks: [spec.name: mask.converted()]) : nil
            return spec(v[0], emb: v[1], parameters: store(entries, v[2...]), dropout: dropout)
        }
        return OpCase("UNetBlock.\(label)", "\(spec.name) \(spec.inChannels)→\(spec.outChannels)",
                      inputs: [x, emb] + params, reductionLength: spec.inChannels * 9,
                      double: { run($0) }, float: { run($0) })
    }
}

public enum LayerChecks {
    public static var all: [Check] {
        var checks: [Check] = NetworkCases.blocks.enumerated().map { i, b in
            Check(family: "layer", op: "UNetBlock.\(b.label)", name: "UNetBlock.\(b.label) (\(b.spec.name) \(b.spec.inChannels)→\(b.spec.outChannels)\(i == 0 ? ", dropout 0.3" : ""))") {
                let c = NetworkCases.blockCase(b.spec, inputSide: b.inputSide, label: b.label, dropoutP: i == 0 ? 0.3 : 0, seed: UInt64(20 + i))
                var stats = try GradCheck.randomDirection(c, seed: 3)
                stats.merge(try GradCheck.randomDirection(c, seed: 4))
                try GradCheck.floatVsDouble(c)
                stats.checks.append("float")
                return stats
            }
        }
        checks.append(Check(family: "layer", op: "UNetBlock.down", name: "UNetBlock.down full Jacobian (enc.2x2_down 4→4, input and embedding)") {
            try GradCheck.jacobian(smallBlockJacobianCase())
        })
        return checks
    }

    /// The smallest block (down, 4 channels, 2×2 out) with respect to its input and embedding.
    public static func smallBlockJacobianCase() -> OpCase {
        let spec = UNetBlockSpec(name: "enc.2x2_down", inChannels: 4, outChannels: 4, embChannels: 3, resolution: 2, resample: .down)
        var rng = RandomGenerator(seed: 5)
        let x: Tensor<Double> = rng.normal([1, 4, 4, 4]), emb: Tensor<Double> = rng.normal([1, 3])
        let entries = spec.stateEntries
        let params = NetworkCases.randomParameters(entries, seed: 6)
        func run<T>(_ v: [Variable<T>]) -> Variable<T> {
            spec(v[0], emb: v[1], parameters: NetworkCases.store(entries, params.map { Variable($0.converted(to: T.self)) }))
        }
        return OpCase("UNetBlock.down", "Jacobian", inputs: [x, emb], reductionLength: 4 * 9, double: { run($0) }, float: { run($0) })
    }
}

public enum UNetChecks {
    public static var all: [Check] {
        [
            Check(family: "unet", op: "UNet.forward", name: "UNet.forward tiny 8×8 (labels, dropout 0.2), input and every parameter") {
                let c = tinyForwardCase()
                var stats = try GradCheck.randomDirection(c, seed: 1)
                stats.merge(try GradCheck.randomDirection(c, seed: 2))
                return stats
            },
            Check(family: "unet", op: "UNet.forward", name: "UNet.forward small16 (16×16, 3.3 M parameters), batch 1") {
                try GradCheck.randomDirection(small16ForwardCase(), seed: 1)
            },
            Check(family: "unet", op: "Denoiser.encoderFeatures", name: "Denoiser.encoderFeatures tiny (the GAN head's input)") {
                try GradCheck.randomDirection(encoderFeaturesCase(), seed: 1)
            },
            Check(family: "unet", op: "EDMLoss", name: "EDMLoss tiny, fixed draws (σ, noise, a dropped label)") {
                let c = edmLossCase()
                var stats = try GradCheck.randomDirection(c, seed: 1)
                stats.merge(try GradCheck.randomDirection(c, seed: 2))
                return stats
            },
        ]
    }

    /// Rounding growth through a whole network: the widest conv's C·k·k.
    static func reduction(_ config: UNetConfig) -> Int {
        config.modelChannels * (config.channelMult.max() ?? 1) * 9 * 2
    }

    /// F of the tiny config, with labels and dropout, in the space of its input and every parameter.
    public static func tinyForwardCase() -> OpCase {
        let config = NetworkCases.tinyConfig
        let entries = config.layout.stateEntries
        let values = NetworkCases.randomParameters(entries, seed: 10)
        let (x, cNoise, y) = NetworkCases.inputs(config, batch: 2, seed: 11)
        // Draw the masks once (in Double) and replay them in both precisions.
        let drawn = DropoutMasks<Double>(p: 0.2, rng: RandomGenerator(seed: 12))
        let net = UNet(config: config, parameters: NetworkCases.store(entries, values.map { Variable($0) }))
        _ = NoGrad.run { net(Variable(x), noiseLabels: cNoise, classLabels: y, dropout: drawn) }
        func run<T>(_ v: [Variable<T>]) -> Variable<T> {
            let net = UNet(config: config, parameters: NetworkCases.store(entries, v[1...]))
            let masks = DropoutMasks<T>(p: 0.2, masks: drawn.masks.mapValues { $0.converted() })
            return net(v[0], noiseLabels: cNoise.converted(), classLabels: y.converted(), dropout: masks)
        }
        return OpCase("UNet.forward", "tiny 8×8, 8×[1,2]", inputs: [x] + values, reductionLength: reduction(config),
                      double: { run($0) }, float: { run($0) })
    }

    /// F of the `small16` config, batch 1, in input-and-parameter space.
    public static func small16ForwardCase() -> OpCase {
        let config = UNetConfig.small16
        let entries = config.layout.stateEntries
        let values = NetworkCases.randomParameters(entries, seed: 13)
        let (x, cNoise, y) = NetworkCases.inputs(config, batch: 1, seed: 14)
        func run<T>(_ v: [Variable<T>]) -> Variable<T> {
            UNet(config: config, parameters: NetworkCases.store(entries, v[1...]))(v[0], noiseLabels: cNoise.converted(), classLabels: y.converted())
        }
        return OpCase("UNet.forward", "small16", inputs: [x] + values, reductionLength: reduction(config),
                      double: { run($0) }, float: { run($0) })
    }

    /// The encoder features (the GAN head's input) w.r.t. input and parameters.
    public static func encoderFeaturesCase() -> OpCase {
        let config = NetworkCases.tinyConfig
        let entries = config.layout.stateEntries
        let values = NetworkCases.randomParameters(entries, seed: 15)
        let (x, _, y) = NetworkCases.inputs(config, batch: 2, seed: 16)
        func run<T>(_ v: [Variable<T>]) -> Variable<T> {
            let denoiser = Denoiser(net: UNet(config: config, parameters: NetworkCases.store(entries, v[1...])))
            return denoiser.encoderFeatures(v[0], sigma: [0.3, 7], classLabels: y.converted())
        }
        return OpCase("Denoiser.encoderFeatures", "tiny", inputs: [x] + values, reductionLength: reduction(config),
                      double: { run($0) }, float: { run($0) })
    }

    /// The EDM loss with fixed draws (σ, noise, a dropped label), w.r.t. images and parameters.
    public static func edmLossCase() -> OpCase {
        let config = NetworkCases.tinyConfig
        let entries = config.layout.stateEntries
        let values = NetworkCases.randomParameters(entries, seed: 17)
        let (x, _, y) = NetworkCases.inputs(config, batch: 2, seed: 18)
        var rng = RandomGenerator(seed: 19)
        let loss = EDMLoss(labelDropout: 0.5)
        var draws: EDMLoss.Draws<Double> = loss.draw(shape: x.shape, rng: &rng)
        draws.dropLabel = [true, false]
        let fixed = draws
        func run<T>(_ v: [Variable<T>]) -> Variable<T> {
            let denoiser = Denoiser(net: UNet(config: config, parameters: NetworkCases.store(entries, v[1...])))
            let d = EDMLoss.Draws<T>(sigma: fixed.sigma, noise: fixed.noise.converted(), dropLabel: fixed.dropLabel)
            return loss(denoiser, images: v[0], classLabels: y.converted(), draws: d)
        }
        return OpCase("EDMLoss", "tiny, fixed draws", inputs: [x] + values, reductionLength: max(reduction(config), x.count),
                      double: { run($0) }, float: { run($0) })
    }
}
