// Evaluation over seeds beside the real-vs-real floor (issue 15): which real images the floor
// draws, metrics from features computed beforehand, and the mean ± sd aggregation.
import DMD2Core
import DMD2Data
@testable import DMD2Metrics
import Foundation
import XCTest

final class EvaluationSummaryTests: XCTestCase {
    override func setUp() { Threads.count = 2 }

    func testMeanAndSampleStandardDeviation() throws {
        let m = try XCTUnwrap(MeanSD([1, nil, 2, 6]))
        XCTAssertEqual(m.values, [1, 2, 6])
        XCTAssertEqual(m.mean, 3)
        XCTAssertEqual(m.sd, (((4 + 1 + 9) as Double) / 2).squareRoot(), accuracy: 1e-15)   // n − 1
        XCTAssertEqual(MeanSD([5])?.sd, 0)
        XCTAssertNil(MeanSD([nil, nil]))
        XCTAssertEqual(m.formatted(digits: 1), "3.0 ± 2.6")
        XCTAssertEqual(MeanSD([0.0012])!.formatted(digits: 2, scale: 1000), "1.20")
    }

    /// The floor's images: class i mod K for image i, no image twice, fixed by the seed, other
    /// images for another seed; a class with too few images is an error naming the count.
    func testDrawRealIsBalancedSeededAndWithoutRepeats() throws {
        let set = ShapesDataset(count: 60, classCount: 3, resolution: 8, channels: 1, seed: 0)   // item i has class i mod 3
        let a = try Evaluation.drawReal(from: set, count: 30, classCount: 3, seed: 0)
        XCTAssertEqual(a.count, 30)
        XCTAssertEqual(Set(a).count, 30)
        XCTAssertEqual(a.enumerated().map { set.label($0.element) }, (0..<30).map { $0 % 3 })
        XCTAssertEqual(try Evaluation.drawReal(from: set, count: 30, classCount: 3, seed: 0), a)
        let b = try Evaluation.drawReal(from: set, count: 30, classCount: 3, seed: 1)
        XCTAssertNotEqual(Set(a), Set(b))
        // Unconditional: any images, still without repeats.
        let u = try Evaluation.drawReal(from: set, count: 60, classCount: 0, seed: 2)
        XCTAssertEqual(u.sorted(), Array(0..<60))
        XCTAssertNotEqual(u, Array(0..<60))
        XCTAssertThrowsError(try Evaluation.drawReal(from: set, count: 61, classCount: 3, seed: 0)) { error in
            XCTAssert("\(error)".contains("the floor needs 21 real images of class 0, the set has 20"), "\(error)")
        }
    }

    /// Metrics from features given beforehand (the floor's cached features): the same FID, KID and
    /// precision/recall as the library functions on those features, with no Inception network.
    /// Real features drawn from the reference's distribution sit far below a shifted set: the floor.
    func testRunWithGivenFeaturesAndTheFloorBelowAShiftedSet() throws {
        let D = InceptionV3FID.featureCount
        var rng = RandomGenerator(seed: 5)
        let referenceFeatures: Tensor<Float> = rng.normal([40, D])
        let realImages = ShapesDataset(count: 40, classCount: 4, resolution: 8, channels: 1, seed: 1)
        let diagnostics = try EvaluationReference.prepare(dataset: realImages, inception: nil, cacheURL: nil).diagnostics
        let reference = EvaluationReference(name: "reference", count: 40, features: referenceFeatures,
                                            statistics: FeatureStatistics(features: referenceFeatures), diagnostics: diagnostics)
        let images: Tensor<Float> = rng.normal([30, 1, 8, 8], std: 0.3)
        let sameDistribution: Tensor<Float> = rng.normal([30, D])
        let shifted: Tensor<Float> = rng.normal([30, D], mean: 0.5)
        var options = Evaluation.Options()
        options.kidSubsets = 5
        options.kidSubsetSize = 20
        let floor = Evaluation.run(images: images, labels: nil, reference: reference, inception: nil, classifier: nil,
                                   options: options, features: sameDistribution)
        let far = Evaluation.run(images: images, labels: nil, reference: reference, inception: nil, classifier: nil,
                                 options: options, features: shifted)
        XCTAssertEqual(floor.fid!, frechetDistance(FeatureStatistics(features: sameDistribution), reference.statistics!), accuracy: 1e-9)
        let kid = kernelInceptionDistance(real: referenceFeatures, generated: sameDistribution, subsets: 5, subsetSize: 20, seed: 0)
        XCTAssertEqual(floor.kid, KIDSummary(mean: kid.mean, std: kid.std, subsets: kid.subsets, subsetSize: kid.subsetSize))
        XCTAssertNotNil(floor.precision)
        XCTAssertNil(floor.seconds["inception"], "no network ran")
        XCTAssertFalse(floor.notes.contains { $0.contains("Inception") }, "\(floor.notes)")
        // A 0.5σ shift in every one of 2048 dimensions adds ‖Δμ‖² ≈ 512 to the FID.
        XCTAssertGreaterThan(far.fid! - floor.fid!, 400)
        XCTAssertGreaterThan(far.kid!.mean, floor.kid!.mean)
    }

    /// Mean ± sd over seeds for the generated images and the floor, per-seed values, the ratio to
    /// the floor, the Markdown table and a JSON round trip.
    func testSummaryAggregatesEverySeed() throws {
        let real = ShapesDataset(count: 12, classCount: 4, resolution: 8, channels: 1, seed: 1)
        let reference = try EvaluationReference.prepare(dataset: real, inception: nil, cacheURL: nil)
        var rng = RandomGenerator(seed: 3)
        let labels = [0, 1, 2, 3]
        var classifierRNG = RandomGenerator(seed: 9)
        let classifier = try ImageClassifier<Float>(config: ClassifierConfig(resolution: 8, classCount: 4, widths: [4], groups: 2), rng: &classifierRNG)
        func report(fid: Double, kid: Double) -> EvaluationReport {
            var r = Evaluation.run(images: rng.normal([4, 1, 8, 8], std: 0.5), labels: labels, reference: reference,
                                   inception: nil, classifier: classifier)
            r.fid = fid
            r.kid = KIDSummary(mean: kid, std: 0, subsets: 1, subsetSize: 4)
            r.notes = []
            return r
        }
        let runs = [report(fid: 100, kid: 0.10), report(fid: 110, kid: 0.12), report(fid: 120, kid: 0.14)]
        let floor = [report(fid: 10, kid: 0.001), report(fid: 11, kid: 0.002), report(fid: 12, kid: 0.003)]
        let summary = EvaluationSummary(seeds: [0, 1, 2], split: "test", runs: runs, floor: floor, source: ["kind": "test"])
        XCTAssertEqual(summary.generated.fid, MeanSD([100, 110, 120]))
        XCTAssertEqual(summary.generated.fid!.sd, 10, accuracy: 1e-12)
        XCTAssertEqual(summary.real!.fid!.mean, 11, accuracy: 1e-12)
        XCTAssertEqual(summary.real!.kid!.sd, 0.001, accuracy: 1e-12)
        XCTAssertEqual(summary.fidOverFloor!, 10, accuracy: 1e-12)
        XCTAssertEqual(summary.generated.classConsistency!.values, runs.map { $0.classConsistency!.accuracy })
        XCTAssertEqual(summary.generated.brightness!.values, runs.map { $0.diagnostics.brightness })
        let md = summary.markdown()
        for expected in ["| FID ↓ | 110.00 ± 10.00 | 11.00 ± 1.00 | 100.00, 110.00, 120.00 |",
                         "| KID×10³ ↓ | 120.00 ± 20.00 | 2.00 ± 1.00 |", "FID / floor FID: 10.00", "seeds 0, 1, 2",
                         "real training images", "| class consistency |"] {
            XCTAssert(md.contains(expected), "metrics.md lacks \(expected):\n\(md)")
        }
        let decoded = try JSONDecoder().decode(EvaluationSummary.self, from: JSONEncoder().encode(summary))
        XCTAssertEqual(decoded.generated, summary.generated)
        XCTAssertEqual(decoded.real, summary.real)
        XCTAssertEqual(decoded.runs.map(\.fid), [100, 110, 120])
        // Without the floor: no floor column values, no ratio.
        let alone = EvaluationSummary(seeds: [0, 1, 2], split: "validation", runs: runs, floor: nil, source: [:])
        XCTAssertNil(alone.real)
        XCTAssertNil(alone.fidOverFloor)
        XCTAssert(alone.markdown().contains("| FID ↓ | 110.00 ± 10.00 | – |"), alone.markdown())
    }
}
