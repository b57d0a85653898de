// The ADM UNet's configuration ("DhariwalUNet" in EDM) and its presets.
//
// docs/ARCHITECTURE-ADM.md "Config": a UNet over `levels = channelMult.count`
// resolutions r_ℓ = resolution/2^ℓ with widths c_ℓ = modelChannels·channelMult[ℓ], `numBlocks`
// residual blocks per encoder level (numBlocks + 1 per decoder level), self-attention at the
// resolutions in `attnResolutions`, and an embedding of width modelChannels·channelMultEmb
// shared by every block. The block-by-block structure lives in Layout.swift; the numbers
// quoted for each preset (parameters, forward GFLOP at batch 1) are checked by EDMTests
// against `parameterCount` and `forwardCost()`.

/// The hyper-parameters of an ADM UNet (EDM's `DhariwalUNet`). Codable: a checkpoint stores
/// it as JSON in its metadata.
public struct UNetConfig: Codable, Equatable, Sendable {
    /// Image height = width (a multiple of 2^(levels − 1)).
    public var resolution: Int
    /// Image channels in (3 for RGB, 1 for greyscale).
    public var inChannels: Int
    /// Channels of F's output (= inChannels for a denoiser).
    public var outChannels: Int
    /// Number of classes (one-hot labels of this length); 0 for an unconditional model.
    public var labelDim: Int
    /// Base width: level ℓ has modelChannels·channelMult[ℓ] channels.
    public var modelChannels: Int
    /// Width multiplier per level, highest resolution first.
    public var channelMult: [Int]
    /// Embedding width = modelChannels·channelMultEmb.
    public var channelMultEmb: Int
    /// Residual blocks per encoder level (the decoder has one more per level).
    public var numBlocks: Int
    /// Resolutions whose encoder and decoder blocks have self-attention.
    public var attnResolutions: [Int]
    /// Dropout probability before each block's conv1 when training.
    public var dropout: Double
    /// Probability of dropping a training label (for classifier-free guidance); used by `EDMLoss`.
    public var labelDropout: Double

    public init(
        resolution: Int, inChannels: Int, outChannels: Int, labelDim: Int, modelChannels: Int,
        channelMult: [Int], channelMultEmb: Int, numBlocks: Int, attnResolutions: [Int],
        dropout: Double, labelDropout: Double
    ) {
        self.resolution = resolution
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.labelDim = labelDim
        self.modelChannels = modelChannels
        self.channelMult = channelMult
        self.channelMultEmb = channelMultEmb
        self.numBlocks = numBlocks
        self.attnResolutions = attnResolutions
        self.dropout = dropout
        self.labelDropout = labelDropout
    }

    /// Width of the shared embedding vector.
    public var embChannels: Int { modelChannels * channelMultEmb }

    /// ADM's attention uses heads of 64 channels.
    public static let channelsPerHead = 64

    /// Heads of a `channels`-wide attention layer: ⌊channels/64⌋ as in ADM (ImageNet-64: 6, 9
    /// and 12 heads of 64 at 32×32, 16×16 and 8×8). EDM's formula gives 0 heads below 64
    /// channels, which ADM never builds; narrower layers here get one head holding all channels.
    /// (`small16`: 128 channels at 8×8 → 2 heads of 64; its listing cannot show heads, since
    /// they change no shape.)
    public static func attentionHeads(channels: Int) -> Int {
        Swift.max(1, channels / channelsPerHead)
    }
}

// MARK: - Presets

extension UNetConfig {
    /// EDM's class-conditional ImageNet-64 model (the `edm-imagenet-64x64-cond-adm` checkpoint):
    /// 192 channels × [1, 2, 3, 4], 3 blocks per level, attention at 32, 16 and 8, 1000 classes.
    /// 295,899,267 parameters; forward at batch 1 ≈ 219.3 GFLOP (2 per multiply-add), of which
    /// 206.8 convolutions, 12.4 attention products, 0.06 linear layers.
    public static let imagenet64 = UNetConfig(
        resolution: 64, inChannels: 3, outChannels: 3, labelDim: 1000, modelChannels: 192,
        channelMult: [1, 2, 3, 4], channelMultEmb: 4, numBlocks: 3, attnResolutions: [32, 16, 8],
        dropout: 0.10, labelDropout: 0)

    /// The small test configuration of `small16.tsv` (reference fixtures): 16×16 RGB,
    /// 10 classes, 64 channels × [1, 2], 1 block, attention at 8 (128 channels → 2 heads).
    /// 3,295,939 parameters; forward at batch 1 ≈ 0.602 GFLOP.
    public static let small16 = UNetConfig(
        resolution: 16, inChannels: 3, outChannels: 3, labelDim: 10, modelChannels: 64,
        channelMult: [1, 2], channelMultEmb: 4, numBlocks: 1, attnResolutions: [8],
        dropout: 0, labelDropout: 0)

    /// The smallest CPU teacher at 64×64 (greyscale, 10 classes — Fashion-MNIST resized to 64):
    /// 16 channels × [1, 2, 4, 4], 1 block, attention at 8×8 (64 channels, 1 head), dropout 0.1,
    /// label dropout 0.1 (for guidance). 1,297,265 parameters; forward at batch 1 ≈ 0.924 GFLOP,
    /// so a training step (forward + backward ≈ 3×) costs ≈ 2.8 GFLOP per image.
    /// For RGB data use `cpu64Tiny.withImageChannels(3)`.
    public static let cpu64Tiny = UNetConfig(
        resolution: 64, inChannels: 1, outChannels: 1, labelDim: 10, modelChannels: 16,
        channelMult: [1, 2, 4, 4], channelMultEmb: 4, numBlocks: 1, attnResolutions: [8],
        dropout: 0.10, labelDropout: 0.10)

    /// A larger CPU teacher at 64×64: ImageNet-64's shape at 1/6 width with 1 block per level —
    /// 32 channels × [1, 2, 3, 4], attention at 16 (96 channels, 1 head) and 8 (128, 2 heads),
    /// greyscale, 10 classes, dropout 0.1, label dropout 0.1. 4,473,921 parameters; forward at
    /// batch 1 ≈ 3.27 GFLOP (≈ 9.8 GFLOP per image per training step).
    public static let cpu64Small = UNetConfig(
        resolution: 64, inChannels: 1, outChannels: 1, labelDim: 10, modelChannels: 32,
        channelMult: [1, 2, 3, 4], channelMultEmb: 4, numBlocks: 1, attnResolutions: [16, 8],
        dropout: 0.10, labelDropout: 0.10)

    /// The teacher shipped for Fashion-MNIST at 64×64 (docs/TEACHER.md): cpu64Tiny's cheap first two
    /// levels (16 and 32 channels at 64×64 and 32×32, where most of the cost per channel lies) with
    /// the width doubled at 8×8 — 16 channels × [1, 2, 4, 8] — and attention at 16×16 (64 channels,
    /// 1 head) and 8×8 (128 channels, 2 heads), where the class-level shape is decided. Dropout 0:
    /// the CPU budget buys about one epoch, too little to over-fit; label dropout 0.1 (for guidance).
    public static let cpu64Fashion = UNetConfig(
        resolution: 64, inChannels: 1, outChannels: 1, labelDim: 10, modelChannels: 16,
        channelMult: [1, 2, 4, 8], channelMultEmb: 4, numBlocks: 1, attnResolutions: [16, 8],
        dropout: 0, labelDropout: 0.10)

    /// The presets by name (for command lines).
    public static let presets: [String: UNetConfig] = [
        "imagenet64": .imagenet64, "small16": .small16, "cpu64Tiny": .cpu64Tiny, "cpu64Small": .cpu64Small,
        "cpu64Fashion": .cpu64Fashion,
    ]

    /// The same network for images with `channels` channels in and out.
    public func withImageChannels(_ channels: Int) -> UNetConfig {
        var c = self
        c.inChannels = channels
        c.outChannels = channels
        return c
    }
}

// MARK: - Validation

/// A configuration the network cannot be built from.
public struct UNetConfigError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension UNetConfig {
    /// Throws if the configuration cannot be built: a resolution that does not halve cleanly
    /// through every level, a GroupNorm width that does not split into ADM's groups, an
    /// attention width that does not split into heads, or a non-positive size.
    public func validate() throws {
        func fail(_ m: String) -> UNetConfigError { UNetConfigError("UNetConfig: \(m)") }
        guard !channelMult.isEmpty else { throw fail("channelMult is empty") }
        guard resolution > 0, inChannels > 0, outChannels > 0, modelChannels > 0, channelMultEmb > 0,
              labelDim >= 0, numBlocks >= 0, channelMult.allSatisfy({ $0 > 0 }) else {
            throw fail("sizes must be positive (labelDim, numBlocks ≥ 0): \(self)")
        }
        guard resolution % (1 << (channelMult.count - 1)) == 0 else {
            throw fail("resolution \(resolution) does not halve \(channelMult.count - 1) times")
        }
        guard (0...1).contains(dropout), (0...1).contains(labelDropout) else {
            throw fail("dropout \(dropout) and labelDropout \(labelDropout) must lie in [0, 1]")
        }
        let layout = UNetLayout(self)
        for block in layout.allBlocks {
            for (what, c) in [("input", block.inChannels), ("output", block.outChannels)] {
                guard c >= 4, c % admGroupCountUnchecked(c) == 0 else {
                    throw fail("block \(block.name): \(what) width \(c) does not split into GroupNorm's min(32, C/4) groups")
                }
            }
            if block.attention {
                guard block.outChannels % block.heads == 0 else {
                    throw fail("block \(block.name): \(block.outChannels) channels do not split into \(block.heads) heads")
                }
            }
        }
        let last = layout.outputChannels
        guard last >= 4, last % admGroupCountUnchecked(last) == 0 else {
            throw fail("out_norm width \(last) does not split into GroupNorm groups")
        }
    }
}

/// min(32, C/4) without DMD2Ops' precondition (validation reports the error instead).
func admGroupCountUnchecked(_ c: Int) -> Int { Swift.max(1, Swift.min(32, c / 4)) }
