// One evaluation of generated images against a real reference set, as a library call that the
// `eval` command, training loops and reproduction scripts share:
//
//   Evaluation.sample(source, count:, …)        → images [N, C, R, R] in [−1, 1], balanced labels
//   EvaluationReference.prepare(dataset, …)     → real Inception features (cached on disk),
//                                                 their statistics, the real diagnostics
//   Evaluation.run(images:, labels:, reference:, inception:, classifier:) → EvaluationReport
//
// The report (Codable; `table()` prints it) holds FID (Fréchet distance of Inception feature
// statistics), KID, precision/recall, class consistency, and the image diagnostics with the
// high-frequency ratio against the reference. Generated images are rounded to 8 bits before the
// Inception network, as EDM does. Without the FID weights (or without a classifier) those
// metrics are nil and `notes` says why; the rest is still computed.
//
// The sampling side is one closure, `ImageSource.generate(labels, &rng) -> images`, so any
// generator plugs in: an EDM teacher with any sampler (the `eval` command builds that one), a
// one- or few-step DMD2 generator, or stored images.
import DMD2Core
import DMD2Data
import Foundation
import SafeTensors

/// Something that produces images: `generate(labels, &rng)` returns [labels.count, C, R, R] in
/// [−1, 1] for class labels (or `count` unconditional images when the source has no classes).
public struct ImageSource {
    /// What produced the images (checkpoint, sampler, steps, …), copied into the report.
    public var description: [String: String]
    /// Classes of a class-conditional source; 0 for an unconditional one.
    public var classCount: Int
    /// Channels C and side R of the images it draws (the reference set is read to match).
    public var channels: Int
    public var resolution: Int
    /// Draws one batch. `labels` has one class per image (all −1 when unconditional).
    public var generate: (_ labels: [Int], _ rng: inout RandomGenerator) -> Tensor<Float>

    public init(description: [String: String], classCount: Int, channels: Int, resolution: Int,
                generate: @escaping (_ labels: [Int], _ rng: inout RandomGenerator) -> Tensor<Float>) {
        self.description = description
        self.classCount = classCount
        self.channels = channels
        self.resolution = resolution
        self.generate = generate
    }
}

/// Real images to compare against: their Inception features (nil without the FID network),
/// the Gaussian statistics of those, and their diagnostics.
public struct EvaluationReference {
    /// The set's name (dataset path) and how many of its images are used.
    public var name: String
    public var count: Int
    public var features: Tensor<Float>?
    public var statistics: FeatureStatistics?
    public var diagnostics: ImageDiagnostics

    public init(name: String, count: Int, features: Tensor<Float>?, statistics: FeatureStatistics?, diagnostics: ImageDiagnostics) {
        self.name = name
        self.count = count
        self.features = features
        self.statistics = statistics
        self.diagnostics = diagnostics
    }

    /// The first `count` images of `dataset` (read with its own channels): diagnostics always;
    /// Inception features when `inception` is given, cached at `cacheURL` (a safetensors file with
    /// the features) so they are computed once.
    ///
    /// The cache is keyed by content, not by the dataset's path: the images are always decoded
    /// (cheap next to the Inception network) to compute the diagnostics and a hash of the pixels,
    /// labels, count and channels, and a cache file whose hash differs — another dataset, or the
    /// same path after its files were replaced — or that cannot be read is recomputed and replaced.
    /// `progress(stage, done, total)` starts with done = 0.
    ///
    /// `shipped` are further files in the cache's format to try when the cache does not hold these
    /// images (`bundledFeatureFiles`: the features shipped with the package); the same content
    /// check decides, so a shipped file for other images is never used.
    public static func prepare(
        dataset: any ImageDataset, count: Int? = nil, inception: InceptionV3FID?, cacheURL: URL?,
        shipped: [URL] = [],
        progress: ((_ stage: String, _ done: Int, _ total: Int) -> Void)? = nil
    ) throws -> EvaluationReference {
        let n = Swift.min(count ?? dataset.count, dataset.count)
        precondition(n >= 2, "EvaluationReference: dataset \(dataset.name) has \(dataset.count) images; need at least 2")
        // Pass 1: diagnostics and the content hash, one batch of images at a time.
        var acc = ImageDiagnostics.Accumulator()
        var hash = ContentHash()
        hash.update("swift-dmd2.reference-features")
        for v in [n, dataset.channels, dataset.resolution] { hash.update(v) }
        let batchSize = 16
        progress?("reference images", 0, n)
        for start in stride(from: 0, to: n, by: batchSize) {
            let items = try (start..<Swift.min(n, start + batchSize)).map { try dataset.item($0) }
            for item in items {
                hash.update(item.image.pixels)
                hash.update(item.label)
            }
            acc.add(Image8.batch(items.map(\.image)))
            progress?("reference images", start + items.count, n)
        }
        let diagnostics = acc.result
        guard let inception else {
            return EvaluationReference(name: dataset.name, count: n, features: nil, statistics: nil, diagnostics: diagnostics)
        }
        let key = ["content": hash.hex, "count": "\(n)", "channels": "\(dataset.channels)",
                   "format": "swift-dmd2.reference-features", "format_version": "2"]
        /// The features a cache file holds, when it is for exactly these images.
        func cached(_ url: URL) -> Tensor<Float>? {
            guard FileManager.default.fileExists(atPath: url.path),
                  let file = try? SafeTensorsFile(contentsOf: url),
                  key.allSatisfy({ file.metadata[$0.key] == $0.value }),
                  let features: Tensor<Float> = try? file.tensor("features"), features.shape == [n, InceptionV3FID.featureCount],
                  features.scalars.allSatisfy(\.isFinite) else { return nil }
            return features
        }
        // The cache, else a file shipped with the package for the same images (copied to the cache).
        for url in [cacheURL].compactMap({ $0 }) + shipped {
            guard let features = cached(url) else { continue }
            if let cacheURL, url != cacheURL {
                try FileManager.default.createDirectory(at: cacheURL.deletingLastPathComponent(), withIntermediateDirectories: true)
                try SafeTensorsFile(contentsOf: url).write(to: cacheURL)
            }
            return EvaluationReference(name: dataset.name, count: n, features: features,
                                       statistics: FeatureStatistics(features: features), diagnostics: diagnostics)
        }
        // Pass 2: the features.
        var features: [Float] = []
        progress?("reference features", 0, n)
        for start in stride(from: 0, to: n, by: batchSize) {
            let images = try (start..<Swift.min(n, start + batchSize)).map { try dataset.item($0).image }
            features += inception.features(images, batchSize: batchSize).scalars
            progress?("reference features", start + images.count, n)
        }
        let f = Tensor<Float>(shape: [n, InceptionV3FID.featureCount], scalars: features)
        if let cacheURL {
            var metadata = key
            metadata["dataset"] = dataset.name
            try FileManager.default.createDirectory(at: cacheURL.deletingLastPathComponent(), withIntermediateDirectories: true)
            try SafeTensorsFile(metadata: metadata, tensors: ["features": f.safeTensor()]).write(to: cacheURL)
        }
        return EvaluationReference(name: dataset.name, count: n, features: f, statistics: FeatureStatistics(features: f),
                                   diagnostics: diagnostics)
    }
}

extension EvaluationReference {
    /// Reference features shipped with the package (`Resources/*-reference-*.safetensors`, in the
    /// cache's format): Inception features of the default dataset's evaluation images, so that a
    /// fresh machine need not compute them (docs/METRICS.md, "What is cached and shipped").
    public static var bundledFeatureFiles: [URL] {
        guard let folder = Bundle.module.resourceURL?.appendingPathComponent("Resources"),
              let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return [] }
        return names.filter { $0.contains("-reference-") && $0.hasSuffix(".safetensors") }.sorted()
            .map { folder.appendingPathComponent($0) }
    }
}

/// KID as stored in a report.
public struct KIDSummary: Codable, Sendable, Equatable {
    public var mean: Double
    public var std: Double
    public var subsets: Int
    public var subsetSize: Int
}

/// Everything one evaluation measured (JSON via Codable).
public struct EvaluationReport: Codable, Sendable {
    /// Generated images measured, and the reference set used.
    public var sampleCount: Int
    public var reference: String
    public var referenceCount: Int
    /// Fréchet Inception distance (N-dependent; compare at equal N).
    public var fid: Double?
    public var kid: KIDSummary?
    public var precision: Double?
    public var recall: Double?
    public var classConsistency: ClassConsistency?
    public var diagnostics: ImageDiagnostics
    public var referenceDiagnostics: ImageDiagnostics
    /// The generated high-frequency ratio over the reference's (< 1: smoother than real).
    public var highFrequencyRatioVsReference: Double?
    /// Which metrics were skipped and why.
    public var notes: [String]
    /// The image source's description (checkpoint, sampler, …) and timings, filled by callers.
    public var source: [String: String]
    public var seconds: [String: Double]

    /// A plain-text table of the numbers.
    public func table() -> String {
        func f(_ v: Double?, _ format: String = "%.4f") -> String { v.map { String(format: format, $0) } ?? "–" }
        var rows: [(String, String)] = [
            ("samples", "\(sampleCount)"),
            ("reference", "\(reference) (\(referenceCount) images)"),
            ("FID", f(fid, "%.2f")),
            ("KID ×10³", kid.map { String(format: "%.2f ± %.2f (%d subsets of %d)", $0.mean * 1e3, $0.std * 1e3, $0.subsets, $0.subsetSize) } ?? "–"),
            ("precision / recall", precision == nil ? "–" : "\(f(precision, "%.3f")) / \(f(recall, "%.3f"))"),
            ("class consistency", classConsistency.map { String(format: "%.3f", $0.accuracy) } ?? "–"),
        ]
        let d = diagnostics, r = referenceDiagnostics
        let channels = d.meanBrightness.map { String(format: "%.3f", $0) }.joined(separator: " ")
        let realChannels = r.meanBrightness.map { String(format: "%.3f", $0) }.joined(separator: " ")
        rows += [
            ("brightness (per channel)", "\(channels)   real \(realChannels)"),
            ("saturation", "\(f(d.saturation, "%.3f"))   real \(f(r.saturation, "%.3f"))"),
            ("clipped fraction", "\(f(d.clippedFraction, "%.4f"))   real \(f(r.clippedFraction, "%.4f"))"),
            ("high-frequency energy", "\(f(d.highFrequencyRatio, "%.4f"))   real \(f(r.highFrequencyRatio, "%.4f"))   ratio \(f(highFrequencyRatioVsReference, "%.3f"))"),
        ]
        if let c = classConsistency {
            rows.insert(("  per class", c.perClass.map { $0.map { String(format: "%.2f", $0) } ?? "–" }.joined(separator: " ")),
                        at: rows.firstIndex { $0.0 == "class consistency" }! + 1)
        }
        let width = rows.map(\.0.count).max()!
        var out = rows.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }
        out += notes.map { "note: " + $0 }
        return out.joined(separator: "\n") + "\n"
    }
}

/// The evaluation procedure.
public enum Evaluation {
    /// Options of the metrics.
    public struct Options: Sendable {
        /// KID: subsets and subset size (capped at the set sizes).
        public var kidSubsets = 100
        public var kidSubsetSize = 1000
        /// Precision/recall neighbourhood size.
        public var k = 3
        public var seed: UInt64 = 0
        /// Inception batch size.
        public var batchSize = 16
        public init() {}
    }

    /// `count` images from `source`, `batchSize` per call, labels balanced over its classes
    /// (image i gets class i mod K); unconditional sources get labels −1 and return nil labels.
    /// Each batch's randomness comes from a generator seeded by (seed, batch index).
    /// `progress(done, total)` is called with 0 first, then after each batch.
    public static func sample(
        _ source: ImageSource, count: Int, batchSize: Int, seed: UInt64,
        progress: ((_ done: Int, _ total: Int) -> Void)? = nil
    ) -> (images: Tensor<Float>, labels: [Int]?) {
        precondition(count >= 1 && batchSize >= 1, "Evaluation.sample: count \(count) and batchSize \(batchSize) must be ≥ 1")
        let K = source.classCount
        let labels = (0..<count).map { K > 0 ? $0 % K : -1 }
        let shape = [source.channels, source.resolution, source.resolution]
        var scalars: [Float] = []
        progress?(0, count)
        for (b, start) in stride(from: 0, to: count, by: batchSize).enumerated() {
            let batchLabels = Array(labels[start..<Swift.min(count, start + batchSize)])
            var mix = RandomGenerator(seed: seed &+ UInt64(b + 1) &* 0x9E37_79B9_7F4A_7C15)
            var rng = RandomGenerator(seed: mix.next() ^ seed)
            let images = source.generate(batchLabels, &rng)
            precondition(images.shape == [batchLabels.count] + shape,
                         "Evaluation.sample: the source returned \(images.shape) for \(batchLabels.count) labels; expected [\(batchLabels.count), \(source.channels), \(source.resolution), \(source.resolution)]")
            scalars += images.scalars
            progress?(start + batchLabels.count, count)
        }
        return (Tensor(shape: [count] + shape, scalars: scalars), K > 0 ? labels : nil)
    }

    /// Measure `images` [N, C, R, R] in [−1, 1] (with their conditioning `labels`, if any) against
    /// `reference`. FID/KID/precision/recall need `inception` and reference features; class
    /// consistency needs `classifier` and labels. `progress(stage, done, total)` reports the slow
    /// part (Inception features), starting with done = 0.
    ///
    /// `features`, when given, are the images' Inception features already computed (the real
    /// images of the floor, whose features are cached): the network is not run on them.
    public static func run(
        images: Tensor<Float>, labels: [Int]?, reference: EvaluationReference,
        inception: InceptionV3FID?, classifier: ImageClassifier<Float>?, options: Options = Options(),
        source: [String: String] = [:], features given: Tensor<Float>? = nil,
        progress: ((_ stage: String, _ done: Int, _ total: Int) -> Void)? = nil
    ) -> EvaluationReport {
        precondition(images.rank == 4 && images.shape[0] >= 1, "Evaluation.run: expected images [N, C, H, W], got \(images.shape)")
        let N = images.shape[0]
        if let labels { precondition(labels.count == N, "Evaluation.run: \(labels.count) labels for \(N) images") }
        var notes: [String] = [], seconds: [String: Double] = [:]
        let clock = { ProcessInfo.processInfo.systemUptime }

        var t = clock()
        let diagnostics = ImageDiagnostics(images: images)
        seconds["diagnostics"] = clock() - t

        var fid: Double?, kid: KIDSummary?, pr: PrecisionRecall?
        if given != nil || inception != nil, let realFeatures = reference.features, let realStats = reference.statistics {
            let features: Tensor<Float>
            if let given {
                precondition(given.shape == [N, InceptionV3FID.featureCount], "Evaluation.run: features \(given.shape) for \(N) images")
                features = given
            } else {
                t = clock()
                progress?("inception features", 0, N)
                features = inception!.features(Image8.images(fromBatch: images), batchSize: options.batchSize) { done, total in
                    progress?("inception features", done, total)
                }
                seconds["inception"] = clock() - t
            }
            if N >= 2 {
                fid = frechetDistance(FeatureStatistics(features: features), realStats)
                let k = kernelInceptionDistance(real: realFeatures, generated: features, subsets: options.kidSubsets,
                                                subsetSize: options.kidSubsetSize, seed: options.seed)
                kid = KIDSummary(mean: k.mean, std: k.std, subsets: k.subsets, subsetSize: k.subsetSize)
            } else {
                notes.append("FID and KID need at least 2 samples")
            }
            if N > options.k && reference.count > options.k {
                pr = precisionRecall(real: realFeatures, generated: features, k: options.k)
            } else {
                notes.append("precision/recall need more than k = \(options.k) samples in each set")
            }
        } else if inception == nil {
            notes.append("FID, KID and precision/recall skipped: no FID Inception weights (fetch them with scripts/fetch-inception.sh)")
        } else {
            notes.append("FID, KID and precision/recall skipped: the reference has no Inception features")
        }

        var consistency: ClassConsistency?
        if let classifier, let labels, labels.allSatisfy({ $0 >= 0 }) {
            if classifier.config.resolution == images.shape[2] && images.shape[2] == images.shape[3]
                && labels.allSatisfy({ $0 < classifier.config.classCount }) {
                t = clock()
                consistency = ClassConsistency(classifier: classifier, images: images, labels: labels)
                seconds["classifier"] = clock() - t
            } else {
                notes.append("class consistency skipped: the classifier takes \(classifier.config.resolution)px images of \(classifier.config.classCount) classes")
            }
        } else if labels == nil || labels!.contains(where: { $0 < 0 }) {
            notes.append("class consistency skipped: unconditional samples")
        } else {
            notes.append("class consistency skipped: no classifier")
        }

        return EvaluationReport(
            sampleCount: N, reference: reference.name, referenceCount: reference.count,
            fid: fid, kid: kid, precision: pr?.precision, recall: pr?.recall, classConsistency: consistency,
            diagnostics: diagnostics, referenceDiagnostics: reference.diagnostics,
            highFrequencyRatioVsReference: diagnostics.highFrequencyRatio(relativeTo: reference.diagnostics),
            notes: notes, source: source, seconds: seconds)
    }
}
