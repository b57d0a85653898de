// Evaluation over several seeds, beside a real-vs-real floor (docs/METRICS.md, "Spread and floor"):
//
//   Evaluation.drawReal(from: trainingImages, count:, classCount:, seed:)  → which real images
//       stand in for the generated ones (image i of class i mod K, as `Evaluation.sample` labels)
//   EvaluationSummary(seeds:, runs:, floor:, …)                          → mean ± sd of every number
//
// One evaluation's FID moves with the noise that drew its samples; a number is only evidence
// against another when the difference is large next to that spread. And FID at N samples is
// biased upwards by an amount that depends on N, so "how far from real" needs the distance of
// real images themselves at the same counts: N real *training* images (never the reference's
// own images) measured against the same reference, drawn afresh for each seed. Its FID is the
// floor a perfect generator would reach at these counts, and its spread the spread the reference
// alone allows.
import DMD2Core
import DMD2Data
import Foundation

/// Mean and sample standard deviation (divisor n − 1; 0 for one value) of one number over seeds.
public struct MeanSD: Codable, Sendable, Equatable {
    public var mean: Double
    public var sd: Double
    public var values: [Double]

    /// nil when no value is present (the metric was skipped); values that are nil are left out.
    public init?(_ values: [Double?]) {
        let xs = values.compactMap { $0 }
        guard !xs.isEmpty else { return nil }
        let m = xs.reduce(0, +) / Double(xs.count)
        self.mean = m
        self.sd = xs.count < 2 ? 0 : (xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count - 1)).squareRoot()
        self.values = xs
    }

    /// "m ± sd" with `digits` decimals, values multiplied by `scale`.
    public func formatted(digits: Int, scale: Double = 1) -> String {
        let f = "%.\(digits)f"
        return values.count < 2 ? String(format: f, mean * scale) : String(format: "\(f) ± \(f)", mean * scale, sd * scale)
    }
}

/// Mean ± sd over seeds of each number an `EvaluationReport` holds.
public struct MetricSpread: Codable, Sendable, Equatable {
    public var fid: MeanSD?
    /// KID's mean per seed (not ×10³).
    public var kid: MeanSD?
    public var precision: MeanSD?
    public var recall: MeanSD?
    public var classConsistency: MeanSD?
    public var brightness: MeanSD?
    public var clippedFraction: MeanSD?
    public var highFrequencyRatioVsReference: MeanSD?

    public init(_ reports: [EvaluationReport]) {
        fid = MeanSD(reports.map(\.fid))
        kid = MeanSD(reports.map { $0.kid?.mean })
        precision = MeanSD(reports.map(\.precision))
        recall = MeanSD(reports.map(\.recall))
        classConsistency = MeanSD(reports.map { $0.classConsistency?.accuracy })
        brightness = MeanSD(reports.map { $0.diagnostics.brightness })
        clippedFraction = MeanSD(reports.map { $0.diagnostics.clippedFraction })
        highFrequencyRatioVsReference = MeanSD(reports.map(\.highFrequencyRatioVsReference))
    }
}

/// An evaluation at several seeds, with the real-vs-real floor at the same counts: what
/// `dmd2 eval` writes as metrics.json (and metrics.md).
public struct EvaluationSummary: Codable, Sendable {
    /// The evaluation seeds, one report per seed in `runs` (and in `floor`).
    public var seeds: [UInt64]
    /// The reference split ("test" for reported numbers, "validation" for choosing checkpoints).
    public var split: String
    /// Generated images, one report per seed.
    public var runs: [EvaluationReport]
    /// Real training images at the same count against the same reference, one report per seed
    /// (nil when the floor was not measured).
    public var floor: [EvaluationReport]?
    public var generated: MetricSpread
    public var real: MetricSpread?
    /// What produced the images, and the timings of the whole command.
    public var source: [String: String]
    public var seconds: [String: Double]

    public init(seeds: [UInt64], split: String, runs: [EvaluationReport], floor: [EvaluationReport]?,
                source: [String: String], seconds: [String: Double] = [:]) {
        precondition(!runs.isEmpty && runs.count == seeds.count, "EvaluationSummary: \(runs.count) reports for \(seeds.count) seeds")
        if let floor { precondition(floor.count == seeds.count, "EvaluationSummary: \(floor.count) floor reports for \(seeds.count) seeds") }
        self.seeds = seeds
        self.split = split
        self.runs = runs
        self.floor = floor
        self.generated = MetricSpread(runs)
        self.real = floor.map { MetricSpread($0) }
        self.source = source
        self.seconds = seconds
    }

    /// The generated FID over the floor's (means), when both exist.
    public var fidOverFloor: Double? {
        guard let g = generated.fid?.mean, let r = real?.fid?.mean, r > 0 else { return nil }
        return g / r
    }

    /// A Markdown table: each number's mean ± sd over the seeds for the generated images and for
    /// the floor, and the per-seed values.
    public func markdown() -> String {
        let first = runs[0]
        let measured = source["kind"]?.hasPrefix("real") == true ? "real training images" : "generated images"
        var out = "\(first.sampleCount) \(measured) per seed against \(first.referenceCount) \(split) images (\(first.reference)); "
        out += "seeds \(seeds.map(String.init).joined(separator: ", ")); mean ± sd over the seeds (sd with n − 1).\n"
        if let floor {
            out += "Floor: \(floor[0].sampleCount) real training images per seed (drawn afresh for each seed, balanced like the generated labels) against the same reference.\n"
        }
        out += "\n| number | generated | real-vs-real floor | per seed (generated) |\n|---|---|---|---|\n"
        func row(_ name: String, _ g: MeanSD?, _ r: MeanSD?, digits: Int, scale: Double = 1) {
            guard g != nil || r != nil else { return }
            let perSeed = g.map { $0.values.map { String(format: "%.\(digits)f", $0 * scale) }.joined(separator: ", ") } ?? "–"
            out += "| \(name) | \(g?.formatted(digits: digits, scale: scale) ?? "–") | \(r?.formatted(digits: digits, scale: scale) ?? "–") | \(perSeed) |\n"
        }
        row("FID ↓", generated.fid, real?.fid, digits: 2)
        row("KID×10³ ↓", generated.kid, real?.kid, digits: 2, scale: 1000)
        row("precision", generated.precision, real?.precision, digits: 3)
        row("recall", generated.recall, real?.recall, digits: 3)
        row("class consistency", generated.classConsistency, real?.classConsistency, digits: 3)
        row("brightness", generated.brightness, real?.brightness, digits: 3)
        row("clipped fraction", generated.clippedFraction, real?.clippedFraction, digits: 4)
        row("HF energy vs reference", generated.highFrequencyRatioVsReference, real?.highFrequencyRatioVsReference, digits: 3)
        if let ratio = fidOverFloor { out += String(format: "\nFID / floor FID: %.2f\n", ratio) }
        let notes = Set(runs.flatMap(\.notes) + (floor ?? []).flatMap(\.notes)).sorted()
        for note in notes { out += "\nnote: \(note)" }
        return out + (notes.isEmpty ? "" : "\n")
    }
}

extension Evaluation {
    /// Indices of `count` real images of `dataset` to measure in place of generated ones: image i
    /// has class i mod `classCount` (what `sample` gives the generator), each drawn without
    /// replacement from a seeded permutation of that class's images; an unconditional evaluation
    /// (`classCount` 0) draws from all images. The same (dataset labels, count, seed) give the same
    /// images; another seed gives others. Throws when a class has too few images.
    public static func drawReal(from dataset: any ImageDataset, count: Int, classCount: Int, seed: UInt64) throws -> [Int] {
        precondition(count >= 1, "Evaluation.drawReal: count \(count) must be ≥ 1")
        var pools: [[Int]]
        if classCount > 0 {
            pools = Array(repeating: [], count: classCount)
            for i in 0..<dataset.count {
                let label = dataset.label(i)
                if label >= 0 && label < classCount { pools[label].append(i) }
            }
        } else {
            pools = [Array(0..<dataset.count)]
        }
        let groups = pools.count
        var need = [Int](repeating: 0, count: groups)
        for i in 0..<count { need[i % groups] += 1 }
        var generator = RandomGenerator(seed: seed ^ 0x666C_6F6F_72)                 // "floor"
        var drawn: [[Int]] = []
        for (c, var pool) in pools.enumerated() {
            guard pool.count >= need[c] else {
                throw DataError(file: dataset.name, "the floor needs \(need[c]) real images of class \(c), the set has \(pool.count): lower --count")
            }
            for i in 0..<need[c] {
                pool.swapAt(i, i + DataLoader.bounded(pool.count - i, using: &generator))
            }
            drawn.append(Array(pool.prefix(need[c])))
        }
        var cursor = [Int](repeating: 0, count: groups)
        return (0..<count).map { i in
            let c = i % groups
            defer { cursor[c] += 1 }
            return drawn[c][cursor[c]]
        }
    }
}
