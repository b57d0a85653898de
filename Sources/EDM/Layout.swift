// The ADM UNet's structure, derived from a UNetConfig: which blocks exist, their widths, and
// where skip connections leave and re-enter (docs/ARCHITECTURE-ADM.md "The network").
//
// Encoder, level ℓ = 0…levels−1 at r = resolution/2^ℓ, c_ℓ = modelChannels·mult[ℓ]:
//   ℓ = 0: enc.{r}x{r}_conv        3×3 conv inChannels → c_0
//   ℓ > 0: enc.{r}x{r}_down        block c_{ℓ−1} → c_{ℓ−1}, down-sampling, no attention
//   then   enc.{r}x{r}_block{i}    i < numBlocks, block → c_ℓ, attention iff r ∈ attnResolutions
//   Every encoder output (the conv and every block) is pushed on the skip stack.
// Decoder, levels from the lowest resolution up:
//   lowest: dec.{r}x{r}_in0 (attention always) and dec.{r}x{r}_in1 (no attention), c → c
//   others: dec.{r}x{r}_up          block c → c, up-sampling, no attention
//   then   dec.{r}x{r}_block{i}    i ≤ numBlocks: x = concat([x, skips.pop()]) first,
//                                  block (c + c_skip) → c_ℓ, attention iff r ∈ attnResolutions
// Output: out_norm (GroupNorm), SiLU, out_conv (3×3 conv c_0 → outChannels).
// The same walk gives the parameter table (names, shapes, initialisers) and the cost count.

/// Resampling inside a block: applied before conv0 and on the skip path.
public enum Resample: String, Codable, Sendable {
    case none
    /// 2×2 average pooling (EDM's resample_filter [1, 1], stride 2).
    case down
    /// Nearest-neighbour ×2 (EDM's transposed resample filter).
    case up
}

/// One residual block of the UNet (EDM's `UNetBlock`): its checkpoint name and shape.
public struct UNetBlockSpec: Sendable, Equatable {
    /// Module path without the `model.` prefix, e.g. `enc.32x32_down` or `dec.8x8_in0`.
    public var name: String
    public var inChannels: Int
    public var outChannels: Int
    /// Width of the embedding that drives the block's scale and shift.
    public var embChannels: Int
    public var resample: Resample
    public var attention: Bool
    /// Attention heads (meaningful only with attention).
    public var heads: Int
    /// Height = width of the block's output (after its resampling).
    public var resolution: Int

    public init(name: String, inChannels: Int, outChannels: Int, embChannels: Int, resolution: Int,
                resample: Resample = .none, attention: Bool = false, heads: Int? = nil) {
        self.name = name
        self.resolution = resolution
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.embChannels = embChannels
        self.resample = resample
        self.attention = attention
        self.heads = heads ?? UNetConfig.attentionHeads(channels: outChannels)
    }

    /// Whether the skip path has a 1×1 conv (`skip.weight`, `skip.bias`): when the width changes.
    public var hasSkipConv: Bool { inChannels != outChannels }

    /// The checkpoint key of one of this block's tensors, e.g. `model.enc.8x8_block0.qkv.weight`.
    public func key(_ suffix: String) -> String { "model.\(name).\(suffix)" }
}

/// A decoder step: a block, and whether a skip is concatenated onto its input first.
public struct DecoderStep: Sendable, Equatable {
    public var block: UNetBlockSpec
    public var popsSkip: Bool
}

/// The whole network's structure for one config.
public struct UNetLayout: Sendable, Equatable {
    public var config: UNetConfig
    /// `enc.{r}x{r}_conv`: input conv name (without `model.`) and its output width.
    public var inputConvName: String
    public var inputConvChannels: Int
    /// Encoder blocks after the input conv, in order.
    public var encoder: [UNetBlockSpec]
    /// Decoder steps, in order.
    public var decoder: [DecoderStep]
    /// Widths of the skip stack, bottom first (input conv, then each encoder block).
    public var skipChannels: [Int]
    /// Width entering out_norm (the last decoder block's output).
    public var outputChannels: Int

    public init(_ config: UNetConfig) {
        self.config = config
        let emb = config.embChannels
        let res = config.resolution
        // Blocks are named after the resolution they output: `{r}x{r}_{kind}`.
        func block(_ side: String, _ r: Int, _ kind: String, _ cin: Int, _ cout: Int, _ resample: Resample = .none,
                   attention: Bool = false) -> UNetBlockSpec {
            UNetBlockSpec(name: "\(side).\(r)x\(r)_\(kind)", inChannels: cin, outChannels: cout,
                          embChannels: emb, resolution: r, resample: resample, attention: attention)
        }

        // Encoder.
        var encoder: [UNetBlockSpec] = []
        var skips: [Int] = []
        var cout = config.modelChannels * config.channelMult[0]
        inputConvName = "enc.\(res)x\(res)_conv"
        inputConvChannels = cout
        skips.append(cout)
        for (level, mult) in config.channelMult.enumerated() {
            let r = res >> level
            if level > 0 {
                encoder.append(block("enc", r, "down", cout, cout, .down))
                skips.append(cout)
            }
            for i in 0..<config.numBlocks {
                let cin = cout
                cout = config.modelChannels * mult
                encoder.append(block("enc", r, "block\(i)", cin, cout, attention: config.attnResolutions.contains(r)))
                skips.append(cout)
            }
        }
        skipChannels = skips
        self.encoder = encoder

        // Decoder.
        var decoder: [DecoderStep] = []
        for (level, mult) in config.channelMult.enumerated().reversed() {
            let r = res >> level
            if level == config.channelMult.count - 1 {
                decoder.append(DecoderStep(block: block("dec", r, "in0", cout, cout, attention: true), popsSkip: false))
                decoder.append(DecoderStep(block: block("dec", r, "in1", cout, cout), popsSkip: false))
            } else {
                decoder.append(DecoderStep(block: block("dec", r, "up", cout, cout, .up), popsSkip: false))
            }
            for i in 0...config.numBlocks {
                let cin = cout + skips.removeLast()
                cout = config.modelChannels * mult
                decoder.append(DecoderStep(block: block("dec", r, "block\(i)", cin, cout,
                                                        attention: config.attnResolutions.contains(r)),
                                           popsSkip: true))
            }
        }
        precondition(skips.isEmpty, "UNetLayout: \(skips.count) skips left unused")
        self.decoder = decoder
        outputChannels = cout
    }

    /// Every block, encoder then decoder.
    public var allBlocks: [UNetBlockSpec] { encoder + decoder.map(\.block) }
}

// MARK: - The parameter table (the checkpoint interface)

/// How a tensor of the state dict is initialised for training from scratch
/// (docs/ARCHITECTURE-ADM.md "Initialisation").
public enum ParameterInit: Sendable, Equatable {
    /// U(−1/√fanIn, 1/√fanIn) (EDM's kaiming_uniform with weight √(1/3)); fanIn = in·k².
    case uniform(fanIn: Int)
    /// Exactly zero (conv1, proj, out_conv: each residual branch starts as the identity).
    case zeros
    /// Exactly one (GroupNorm γ).
    case ones
    /// N(0, 1) (map_label).
    case standardNormal
}

/// One entry of EDM's `state_dict`: a trained parameter, or the fixed `resample_filter` buffer
/// ([1, 1, 2, 2], 0.25 everywhere) that EDM stores for every resampling conv.
public struct StateEntry: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case parameter(ParameterInit)
        case resampleFilter
    }
    public var name: String
    public var shape: [Int]
    public var kind: Kind

    public var isParameter: Bool { if case .parameter = kind { true } else { false } }
}

extension UNetBlockSpec {
    /// The block's state-dict entries in EDM's order (module registration order:
    /// norm0, conv0, affine, norm1, conv1, skip, norm2, qkv, proj; a module's parameters
    /// before its buffers).
    public var stateEntries: [StateEntry] {
        let cin = inChannels, cout = outChannels
        var e: [StateEntry] = []
        func p(_ suffix: String, _ shape: [Int], _ initialiser: ParameterInit) {
            e.append(StateEntry(name: key(suffix), shape: shape, kind: .parameter(initialiser)))
        }
        func filter(_ module: String) {
            e.append(StateEntry(name: key("\(module).resample_filter"), shape: [1, 1, 2, 2], kind: .resampleFilter))
        }
        p("norm0.weight", [cin], .ones); p("norm0.bias", [cin], .zeros)
        p("conv0.weight", [cout, cin, 3, 3], .uniform(fanIn: cin * 9)); p("conv0.bias", [cout], .uniform(fanIn: cin * 9))
        if resample != .none { filter("conv0") }
        p("affine.weight", [2 * cout, embChannels], .uniform(fanIn: embChannels))
        p("affine.bias", [2 * cout], .uniform(fanIn: embChannels))
        p("norm1.weight", [cout], .ones); p("norm1.bias", [cout], .zeros)
        p("conv1.weight", [cout, cout, 3, 3], .zeros); p("conv1.bias", [cout], .zeros)
        if hasSkipConv {
            p("skip.weight", [cout, cin, 1, 1], .uniform(fanIn: cin)); p("skip.bias", [cout], .uniform(fanIn: cin))
        }
        if resample != .none { filter("skip") }
        if attention {
            p("norm2.weight", [cout], .ones); p("norm2.bias", [cout], .zeros)
            p("qkv.weight", [3 * cout, cout, 1, 1], .uniform(fanIn: cout)); p("qkv.bias", [3 * cout], .uniform(fanIn: cout))
            p("proj.weight", [cout, cout, 1, 1], .zeros); p("proj.bias", [cout], .zeros)
        }
        return e
    }
}

extension UNetLayout {
    /// EDM's full `state_dict` table for this network, in EDM's order: parameters and the
    /// `resample_filter` buffers. Compare with `imagenet64.tsv` / `small16.tsv`.
    public var stateEntries: [StateEntry] {
        let c = config, emb = c.embChannels, mc = c.modelChannels
        var e: [StateEntry] = []
        func p(_ name: String, _ shape: [Int], _ initialiser: ParameterInit) {
            e.append(StateEntry(name: "model.\(name)", shape: shape, kind: .parameter(initialiser)))
        }
        p("map_layer0.weight", [emb, mc], .uniform(fanIn: mc)); p("map_layer0.bias", [emb], .uniform(fanIn: mc))
        p("map_layer1.weight", [emb, emb], .uniform(fanIn: emb)); p("map_layer1.bias", [emb], .uniform(fanIn: emb))
        if c.labelDim > 0 { p("map_label.weight", [emb, c.labelDim], .standardNormal) }
        let cin = c.inChannels, c0 = inputConvChannels
        p("\(inputConvName).weight", [c0, cin, 3, 3], .uniform(fanIn: cin * 9))
        p("\(inputConvName).bias", [c0], .uniform(fanIn: cin * 9))
        for block in allBlocks { e += block.stateEntries }
        p("out_norm.weight", [outputChannels], .ones); p("out_norm.bias", [outputChannels], .zeros)
        p("out_conv.weight", [c.outChannels, outputChannels, 3, 3], .zeros)
        p("out_conv.bias", [c.outChannels], .zeros)
        return e
    }

    /// The trained parameters only (no buffers), in EDM's order.
    public var parameterEntries: [StateEntry] { stateEntries.filter(\.isParameter) }
}

extension UNetConfig {
    /// The network's structure.
    public var layout: UNetLayout { UNetLayout(self) }

    /// Number of trained scalars (ImageNet-64: 295,899,267).
    public var parameterCount: Int { layout.parameterEntries.map(\.shape.elementCount).reduce(0, +) }
}

// MARK: - Cost

/// Floating-point operations of one forward pass, counting 2 per multiply-add of the linear
/// algebra (convolutions, linear layers, the two attention products qᵀk and v·Wᵀ). Norms,
/// activations, softmax and additions (O(elements), < 1% here) are not counted.
public struct ForwardCost: Sendable, Equatable {
    public var convolution: Double
    public var linear: Double
    public var attention: Double
    public var total: Double { convolution + linear + attention }
}

extension UNetConfig {
    /// The FLOP count of a forward pass at `batch` (ImageNet-64 at batch 1: 219.3 GFLOP,
    /// 94% convolutions — docs/ARCHITECTURE-ADM.md).
    public func forwardCost(batch: Int = 1) -> ForwardCost {
        let layout = self.layout
        var conv = 0.0, lin = 0.0, att = 0.0
        func convFLOPs(_ cin: Int, _ cout: Int, _ k: Int, _ r: Int) -> Double { 2.0 * Double(cin * cout * k * k * r * r) }
        let emb = embChannels
        lin += 2.0 * Double(modelChannels * emb + emb * emb + labelDim * emb)
        conv += convFLOPs(inChannels, layout.inputConvChannels, 3, resolution)
        for block in layout.allBlocks {
            let rOut = block.resolution
            conv += convFLOPs(block.inChannels, block.outChannels, 3, rOut)       // conv0 (after resampling)
            conv += convFLOPs(block.outChannels, block.outChannels, 3, rOut)      // conv1
            if block.hasSkipConv { conv += convFLOPs(block.inChannels, block.outChannels, 1, rOut) }
            lin += 2.0 * Double(emb * 2 * block.outChannels)                      // affine
            if block.attention {
                conv += convFLOPs(block.outChannels, 4 * block.outChannels, 1, rOut)  // qkv (3C) + proj (C)
                let L = Double(rOut * rOut)
                att += 4 * L * L * Double(block.outChannels)                      // qᵀk and v·Wᵀ over all heads
            }
        }
        conv += convFLOPs(layout.outputChannels, outChannels, 3, resolution)
        let n = Double(batch)
        return ForwardCost(convolution: conv * n, linear: lin * n, attention: att * n)
    }
}
