// Class consistency: how often a class-conditional generator draws the class it was asked for,
// measured by a small classifier trained on the real training split —
//   class consistency = (1/N)·Σ_n [argmax_k f(x_n)_k = y_n]
// for generated images x_n with conditioning labels y_n. A generator that ignores its label
// scores ≈ 1/K; one that draws the right classes scores about the classifier's own test accuracy.
//
// The classifier (built from DMD2Ops, trained by `dmd2 train-classifier` with softmax
// cross-entropy), for images x [N, C, R, R] in [−1, 1]:
//   grey   = mean over the C channels                               [N, 1, R, R]
//   x₀     = avgPool2x2(grey)                                       [N, 1, R/2, R/2]   (64 → 32)
//   stage i (widths w_i, default 16, 32, 64):
//     x_{i+1} = avgPool2x2(silu(groupNorm(conv3×3(x_i), G = 4)))    [N, w_i, R/2^(i+2), …]
//   logits = linear(flatten(x_last))                                [N, K]
// Fashion-MNIST is grey, so the classifier sees one channel: an RGB generator's colour does not
// change its verdict (the diagnostics' saturation reports colour). Parameter names are the
// checkpoint keys: stage{i}.conv.weight/.bias, stage{i}.norm.weight/.bias, head.weight/.bias.
import DMD2Core
import DMD2Data
import DMD2Ops
import Foundation
import SafeTensors

/// The classifier's shape.
public struct ClassifierConfig: Codable, Equatable, Sendable {
    /// Input side R (a multiple of 2^(stages + 1)).
    public var resolution: Int
    /// Classes K.
    public var classCount: Int
    /// Channels of each stage.
    public var widths: [Int]
    /// GroupNorm groups in every stage.
    public var groups: Int

    public init(resolution: Int = 64, classCount: Int = 10, widths: [Int] = [16, 32, 64], groups: Int = 4) {
        self.resolution = resolution
        self.classCount = classCount
        self.widths = widths
        self.groups = groups
    }

    /// Spatial side after the input pool and every stage's pool.
    public var finalSide: Int { resolution >> (widths.count + 1) }

    /// Refuses shapes that do not fit together.
    public func validate() throws {
        let fits = resolution > 0 && classCount >= 2 && !widths.isEmpty && groups >= 1
            && widths.allSatisfy { $0 % groups == 0 } && resolution % (1 << (widths.count + 1)) == 0
        guard fits else {
            throw DataError(file: "classifier config", "resolution \(resolution), \(classCount) classes, widths \(widths), groups \(groups) do not fit: need ≥ 2 classes, widths divisible by groups, resolution divisible by 2^\(widths.count + 1)")
        }
    }
}

/// The class-consistency classifier: parameters and forward pass (generic for gradient checks).
public struct ImageClassifier<T: TensorScalar> {
    public let config: ClassifierConfig
    /// Named parameters in a fixed order (the checkpoint keys).
    public let parameters: [(name: String, variable: Variable<T>)]
    private let index: [String: Int]

    public static var format: String { "swift-dmd2.classifier" }
    public static var formatVersion: String { "1" }

    /// Fresh weights: He-normal convs (std √(2/fan_in)), head std √(1/fan_in), zero biases,
    /// GroupNorm γ = 1, β = 0.
    public init(config: ClassifierConfig, rng: inout RandomGenerator) throws {
        try config.validate()
        var entries: [(String, Tensor<T>)] = []
        var cin = 1
        for (i, w) in config.widths.enumerated() {
            entries.append(("stage\(i).conv.weight", rng.normal([w, cin, 3, 3], std: (2 / Double(cin * 9)).squareRoot())))
            entries.append(("stage\(i).conv.bias", .zeros([w])))
            entries.append(("stage\(i).norm.weight", .ones([w])))
            entries.append(("stage\(i).norm.bias", .zeros([w])))
            cin = w
        }
        let features = cin * config.finalSide * config.finalSide
        entries.append(("head.weight", rng.normal([config.classCount, features], std: (1 / Double(features)).squareRoot())))
        entries.append(("head.bias", .zeros([config.classCount])))
        self.init(config: config, entries: entries)
    }

    init(config: ClassifierConfig, entries: [(String, Tensor<T>)]) {
        self.config = config
        parameters = entries.map { ($0.0, Variable($0.1, requiresGrad: true, name: $0.0)) }
        index = Dictionary(uniqueKeysWithValues: parameters.enumerated().map { ($0.element.name, $0.offset) })
    }

    /// The parameter called `name` (a checkpoint key).
    public subscript(name: String) -> Variable<T> {
        guard let i = index[name] else { preconditionFailure("ImageClassifier: no parameter '\(name)'") }
        return parameters[i].variable
    }

    /// Parameter count.
    public var scalarCount: Int { parameters.map(\.variable.value.count).reduce(0, +) }

    /// The grey, half-size network input [N, 1, R/2, R/2] of images [N, C, R, R] in [−1, 1].
    public func input(_ images: Tensor<T>) -> Tensor<T> {
        precondition(images.rank == 4 && images.shape[2] == config.resolution && images.shape[3] == config.resolution,
                     "ImageClassifier: expected [N, C, \(config.resolution), \(config.resolution)], got \(images.shape)")
        let C = images.shape[1]
        let grey = C == 1 ? images : images.sum(axis: 1, keepingDims: true) * (1 / T(C))
        return NoGrad.run { avgPool2x2(Variable(grey)).value }
    }

    /// Logits [N, K] of the network input (`input(_:)`).
    public func logits(_ x: Variable<T>) -> Variable<T> {
        var h = x                                                          // [N, 1, R/2, R/2]
        for i in config.widths.indices {
            h = conv2d(h, weight: self["stage\(i).conv.weight"], bias: self["stage\(i).conv.bias"], padding: 1)
            h = groupNorm(h, groups: config.groups, weight: self["stage\(i).norm.weight"], bias: self["stage\(i).norm.bias"])
            h = avgPool2x2(silu(h))                                        // [N, w_i, side/2, side/2]
        }
        let N = h.shape[0]
        return linear(reshape(h, [N, h.value.count / Swift.max(1, N)]), weight: self["head.weight"], bias: self["head.bias"])
    }

    /// Predicted classes of images [N, C, R, R] in [−1, 1], `batchSize` at a time.
    public func predict(_ images: Tensor<T>, batchSize: Int = 250) -> [Int] {
        precondition(images.rank == 4, "ImageClassifier.predict: expected [N, C, H, W], got \(images.shape)")
        let N = images.shape[0], size = images.count / Swift.max(1, N)
        var out: [Int] = []
        out.reserveCapacity(N)
        for start in stride(from: 0, to: N, by: batchSize) {
            let end = Swift.min(N, start + batchSize)
            let batch = Tensor(shape: [end - start] + images.shape.dropFirst(),
                               scalars: Array(images.scalars[(start * size)..<(end * size)]))
            let z = NoGrad.run { logits(Variable(input(batch))).value }     // [n, K]
            let K = config.classCount
            for n in 0..<(end - start) {
                let row = z.scalars[(n * K)..<((n + 1) * K)]
                out.append(row.indices.max { row[$0] < row[$1] }! - n * K)
            }
        }
        return out
    }

    // MARK: Checkpoints

    /// A safetensors file: every parameter (F32/F64 as T) plus metadata `format`, `format_version`,
    /// `config` (JSON) and the caller's entries (accuracy, data, training settings).
    public func file(metadata: [String: String] = [:]) throws -> SafeTensorsFile {
        var meta = metadata
        meta["format"] = Self.format
        meta["format_version"] = Self.formatVersion
        meta["config"] = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
        var tensors: [String: SafeTensor] = [:]
        for (name, v) in parameters { tensors[name] = v.value.safeTensor() }
        return SafeTensorsFile(metadata: meta, tensors: tensors)
    }

    /// Load a checkpoint written by `file(metadata:)`: checks the format, the config and every
    /// parameter's shape; returns the classifier and the file's metadata.
    public static func load(from url: URL) throws -> (classifier: ImageClassifier<T>, metadata: [String: String]) {
        let file = try SafeTensorsFile(contentsOf: url)
        guard file.metadata["format"] == format, file.metadata["format_version"] == formatVersion,
              let json = file.metadata["config"] else {
            throw DataError(file: url, "not a version-\(formatVersion) \(format) checkpoint (metadata format \(file.metadata["format"] ?? "none"))")
        }
        let config: ClassifierConfig
        do { config = try JSONDecoder().decode(ClassifierConfig.self, from: Data(json.utf8)) } catch {
            throw DataError(file: url, entry: "config", "unreadable classifier config: \(error)")
        }
        var rng = RandomGenerator(seed: 0)
        let shapes = try ImageClassifier<T>(config: config, rng: &rng).parameters
        let expected = Set(shapes.map(\.name))
        if let extra = Set(file.tensors.keys).subtracting(expected).sorted().first {
            throw DataError(file: url, entry: extra, "unexpected tensor for classifier widths \(config.widths)")
        }
        let entries: [(String, Tensor<T>)] = try shapes.map { name, v in
            guard file.tensors[name] != nil else { throw DataError(file: url, entry: name, "missing tensor") }
            let t: Tensor<T> = try file.tensor(name)
            guard t.shape == v.value.shape else {
                throw DataError(file: url, entry: name, "shape \(t.shape), expected \(v.value.shape)")
            }
            return (name, t)
        }
        return (ImageClassifier(config: config, entries: entries), file.metadata)
    }
}

// MARK: - The metric

/// Class consistency of a set of generated images.
public struct ClassConsistency: Codable, Sendable, Equatable {
    /// Fraction of images classified as their conditioning label.
    public var accuracy: Double
    /// Accuracy per conditioning class (nil for a class with no images).
    public var perClass: [Double?]
    /// Images measured.
    public var count: Int

    /// Accuracy of predictions against labels (both length N; labels in 0..<classCount).
    public init(predictions: [Int], labels: [Int], classCount: Int) {
        precondition(predictions.count == labels.count && !labels.isEmpty,
                     "ClassConsistency: \(predictions.count) predictions for \(labels.count) labels")
        precondition(labels.allSatisfy { (0..<classCount).contains($0) },
                     "ClassConsistency: labels must lie in 0..<\(classCount)")
        var right = [Int](repeating: 0, count: classCount), total = [Int](repeating: 0, count: classCount)
        for (p, y) in zip(predictions, labels) {
            total[y] += 1
            if p == y { right[y] += 1 }
        }
        accuracy = Double(right.reduce(0, +)) / Double(labels.count)
        perClass = zip(right, total).map { $1 > 0 ? Double($0) / Double($1) : nil }
        count = labels.count
    }

    /// The classifier's accuracy on `images` [N, C, R, R] in [−1, 1] with conditioning `labels`.
    public init<T>(classifier: ImageClassifier<T>, images: Tensor<T>, labels: [Int]) {
        precondition(images.rank == 4 && images.shape[0] == labels.count,
                     "ClassConsistency: \(labels.count) labels for images \(images.shape)")
        self.init(predictions: classifier.predict(images), labels: labels, classCount: classifier.config.classCount)
    }

    /// The classifier's accuracy on the first `count` items of a labelled dataset (all by
    /// default), read `batchSize` at a time; `progress(done, total)` after each batch.
    public init<T>(classifier: ImageClassifier<T>, dataset: any ImageDataset, count: Int? = nil, batchSize: Int = 500,
                   progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws {
        let n = Swift.min(count ?? dataset.count, dataset.count)
        precondition(n > 0 && dataset.classCount > 0, "ClassConsistency: dataset \(dataset.name) is empty or unlabelled")
        var predictions: [Int] = [], labels: [Int] = []
        for start in stride(from: 0, to: n, by: batchSize) {
            let items = try (start..<Swift.min(n, start + batchSize)).map { try dataset.item($0) }
            predictions += classifier.predict(Image8.batch(items.map(\.image)).converted(to: T.self))
            labels += items.map(\.label)
            progress?(start + items.count, n)
        }
        self.init(predictions: predictions, labels: labels, classCount: classifier.config.classCount)
    }

    /// The classifier shipped with the package: trained on the default dataset (Fashion-MNIST at
    /// 64×64) by `dmd2 train-classifier`; see docs/METRICS.md for its accuracy.
    public static var bundledClassifierURL: URL? {
        Bundle.module.url(forResource: "fashion64-classifier", withExtension: "safetensors", subdirectory: "Resources")
    }
}
