// The ADM UNet F(x, c_noise, y) — EDM's "DhariwalUNet" (docs/ARCHITECTURE-ADM.md "Embedding",
// "The network"). The raw network; the EDM preconditioning around it is in Precond.swift.
//
// Letters: N batch, C image channels, R resolution, E embedding width, K classes, M = modelChannels.
//   embedding: e = sinusoidal(c_noise, M)           [N, M]   cos first, frequencies (1/10⁴)^(j/(M/2))
//              e = map_layer1(SiLU(map_layer0(e)))   [N, E]
//              e = e + map_label(y)                  [N, E]   Linear K → E without bias; y = 0: no label
//              emb = SiLU(e)
//   encoder:   h = enc.{R}x{R}_conv(x), then every encoder block; each output pushed on `skips`
//   decoder:   blocks in order; `_block{i}` blocks take concat([h, skips.pop()]) (h first)
//   output:    F = out_conv(SiLU(out_norm(h)))       [N, C, R, R]
import DMD2Core
import DMD2Ops

/// An ADM UNet: a layout and its parameters.
public struct UNet<T: TensorScalar> {
    public let config: UNetConfig
    public let layout: UNetLayout
    public var parameters: ParameterStore<T>

    /// A freshly initialised network (docs/ARCHITECTURE-ADM.md "Initialisation"), reproducible from
    /// `rng`. Traps with the reason if the config is invalid (see `UNetConfig.validate()`).
    public init(config: UNetConfig, rng: inout RandomGenerator) {
        do { try config.validate() } catch { preconditionFailure("\(error)") }
        self.config = config
        self.layout = UNetLayout(config)
        self.parameters = ParameterStore(entries: layout.stateEntries, rng: &rng)
    }

    /// A network with the given parameters, which must be exactly the layout's (names and shapes).
    public init(config: UNetConfig, parameters: ParameterStore<T>) {
        do { try config.validate() } catch { preconditionFailure("\(error)") }
        let layout = UNetLayout(config)
        let expected = layout.parameterEntries
        precondition(parameters.names == expected.map(\.name),
                     "UNet: parameter names do not follow the layout of \(config) (first difference: \(firstDifference(parameters.names, expected.map(\.name))))")
        for (entry, v) in zip(expected, parameters.variables) {
            precondition(v.shape == entry.shape, "UNet: parameter '\(entry.name)' has shape \(v.shape), expected \(entry.shape)")
        }
        self.config = config
        self.layout = layout
        self.parameters = parameters
    }

    /// Fresh dropout masks for one training forward pass at the config's rate, seeded from
    /// `rng` (one draw); nil when the config has no dropout.
    public func trainingDropout(rng: inout RandomGenerator) -> DropoutMasks<T>? {
        config.dropout > 0 ? DropoutMasks(p: config.dropout, rng: RandomGenerator(seed: rng.next())) : nil
    }

    // MARK: Forward

    /// F(x, c_noise, y): x [N, inChannels, R, R], `noiseLabels` c_noise [N], `classLabels`
    /// [N, labelDim] (one-hot; nil or zero rows mean "no label"), `dropout` masks when
    /// training (nil: no dropout). Returns [N, outChannels, R, R].
    public func callAsFunction(
        _ x: Variable<T>, noiseLabels: Tensor<T>, classLabels: Tensor<T>?, dropout: DropoutMasks<T>? = nil
    ) -> Variable<T> {
        let emb = embedding(noiseLabels: noiseLabels, classLabels: classLabels, batch: x.shape.first ?? 0)
        var skips = encoder(x, emb: emb, dropout: dropout)
        var h = skips.last!
        for step in layout.decoder {
            if step.popsSkip { h = concat([h, skips.removeLast()], axis: 1) }
            h = step.block(h, emb: emb, parameters: parameters, dropout: dropout)
        }
        let p = { (name: String) in parameters["model.\(name)"] }
        h = groupNormSiLU(h, groups: admGroupCount(channels: layout.outputChannels),
                          weight: p("out_norm.weight"), bias: p("out_norm.bias"))
        return conv2d(h, weight: p("out_conv.weight"), bias: p("out_conv.bias"), padding: 1)
    }

    /// The encoder's last output — after the lowest resolution's last encoder block
    /// (`enc.8x8_block2` at ImageNet-64: [N, 768, 8, 8]), before the middle blocks. DMD2's GAN
    /// head reads this; the embedding is applied as in the full forward.
    public func encoderFeatures(
        _ x: Variable<T>, noiseLabels: Tensor<T>, classLabels: Tensor<T>?, dropout: DropoutMasks<T>? = nil
    ) -> Variable<T> {
        let emb = embedding(noiseLabels: noiseLabels, classLabels: classLabels, batch: x.shape.first ?? 0)
        return encoder(x, emb: emb, dropout: dropout).last!
    }

    /// The shared embedding vector emb [N, E] from c_noise [N] and the labels.
    public func embedding(noiseLabels: Tensor<T>, classLabels: Tensor<T>?, batch N: Int) -> Variable<T> {
        precondition(noiseLabels.shape == [N], "UNet: noiseLabels \(noiseLabels.shape), expected [\(N)] (one per image)")
        let p = { (name: String) in parameters["model.\(name)"] }
        var e = sinusoidalEmbedding(Variable(noiseLabels), channels: config.modelChannels)
        e = silu(linear(e, weight: p("map_layer0.weight"), bias: p("map_layer0.bias")))
        e = linear(e, weight: p("map_layer1.weight"), bias: p("map_layer1.bias"))
        if let y = classLabels {
            precondition(config.labelDim > 0, "UNet: class labels given to an unconditional network")
            precondition(y.shape == [N, config.labelDim], "UNet: classLabels \(y.shape), expected [\(N), \(config.labelDim)]")
            e = e + linear(Variable(y), weight: p("map_label.weight"), bias: nil)
        }
        return silu(e)
    }

    /// The input conv and every encoder block; returns all their outputs (the skip stack,
    /// bottom first).
    func encoder(_ x: Variable<T>, emb: Variable<T>, dropout: DropoutMasks<T>?) -> [Variable<T>] {
        let c = config
        precondition(x.value.rank == 4 && Array(x.shape[1...]) == [c.inChannels, c.resolution, c.resolution],
                     "UNet: input \(x.shape), expected [N, \(c.inChannels), \(c.resolution), \(c.resolution)]")
        let conv = layout.inputConvName
        var h = conv2d(x, weight: parameters["model.\(conv).weight"], bias: parameters["model.\(conv).bias"], padding: 1)
        var skips = [h]
        for block in layout.encoder {
            h = block(h, emb: emb, parameters: parameters, dropout: dropout)
            skips.append(h)
        }
        return skips
    }
}

/// "index i: 'a' vs 'b'" for the first position where two name lists differ.
func firstDifference(_ a: [String], _ b: [String]) -> String {
    for i in 0..<max(a.count, b.count) {
        let x = i < a.count ? "'\(a[i])'" : "(none)", y = i < b.count ? "'\(b[i])'" : "(none)"
        if x != y { return "index \(i): \(x) vs expected \(y)" }
    }
    return "none"
}
