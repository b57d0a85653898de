// The evaluation procedure without the Inception network (its own tests need the weights):
// sampling through an ImageSource, the reference's diagnostics, class consistency, the report.
import DMD2Core
import DMD2Data
import DMD2Metrics
import Foundation
import XCTest

final class EvaluationTests: XCTestCase {
    override func setUp() { Threads.count = 2 }

    /// A source drawing ShapesDataset-like noise images whose mean encodes the label.
    func source(classes: Int) -> ImageSource {
        ImageSource(description: ["kind": "test"], classCount: classes, channels: 3, resolution: 8) { labels, rng in
            let z: Tensor<Float> = rng.normal([labels.count, 3, 8, 8], std: 0.1)
            return Tensor(shape: z.shape, scalars: z.scalars.enumerated().map { i, v in
                v + Float(labels[i / 192] + 1) * 0.1
            })
        }
    }

    func testSampleBalancesLabelsAndIsSeeded() {
        let (images, labels) = Evaluation.sample(source(classes: 3), count: 7, batchSize: 3, seed: 4)
        XCTAssertEqual(images.shape, [7, 3, 8, 8])
        XCTAssertEqual(labels, [0, 1, 2, 0, 1, 2, 0])
        XCTAssertEqual(Evaluation.sample(source(classes: 3), count: 7, batchSize: 3, seed: 4).images, images)
        XCTAssertNotEqual(Evaluation.sample(source(classes: 3), count: 7, batchSize: 3, seed: 5).images, images)
        // Unconditional: no labels; the source sees −1.
        let uncond = ImageSource(description: [:], classCount: 0, channels: 1, resolution: 4) { labels, _ in
            XCTAssert(labels.allSatisfy { $0 == -1 })
            return .zeros([labels.count, 1, 4, 4])
        }
        XCTAssertNil(Evaluation.sample(uncond, count: 5, batchSize: 2, seed: 0).labels)
    }

    func testRunWithoutInceptionComputesTheRest() throws {
        // Reference: a procedural set; classifier: untrained but deterministic (4 classes, 16 px).
        let real = ShapesDataset(count: 12, classCount: 4, resolution: 16, channels: 3, seed: 1)
        let reference = try EvaluationReference.prepare(dataset: real, count: 8, inception: nil, cacheURL: nil)
        XCTAssertEqual(reference.count, 8)
        XCTAssertNil(reference.features)
        XCTAssertEqual(reference.diagnostics.count, 8)
        var rng = RandomGenerator(seed: 9)
        let classifier = try ImageClassifier<Float>(config: ClassifierConfig(resolution: 16, classCount: 4, widths: [4], groups: 2), rng: &rng)
        let images: Tensor<Float> = rng.normal([6, 3, 16, 16], std: 0.5)
        let labels = [0, 1, 2, 3, 0, 1]
        let report = Evaluation.run(images: images, labels: labels, reference: reference, inception: nil,
                                    classifier: classifier, source: ["kind": "test"])
        XCTAssertNil(report.fid)
        XCTAssertNil(report.kid)
        XCTAssertNil(report.precision)
        XCTAssert(report.notes.contains { $0.contains("no FID Inception weights") }, "\(report.notes)")
        let expected = ClassConsistency(classifier: classifier, images: images, labels: labels)
        XCTAssertEqual(report.classConsistency, expected)
        XCTAssertEqual(report.diagnostics, ImageDiagnostics(images: images))
        XCTAssertEqual(report.highFrequencyRatioVsReference!,
                       report.diagnostics.highFrequencyRatio / reference.diagnostics.highFrequencyRatio, accuracy: 1e-15)
        XCTAssertEqual(report.source, ["kind": "test"])
        // The table names every metric; JSON round-trips the numbers.
        let table = report.table()
        for row in ["FID", "KID", "precision / recall", "class consistency", "saturation", "high-frequency energy", "note:"] {
            XCTAssert(table.contains(row), "table lacks \(row):\n\(table)")
        }
        let decoded = try JSONDecoder().decode(EvaluationReport.self, from: JSONEncoder().encode(report))
        XCTAssertEqual(decoded.classConsistency, report.classConsistency)
        XCTAssertEqual(decoded.diagnostics, report.diagnostics)
        // Unconditional images: class consistency is skipped with a note.
        let uncond = Evaluation.run(images: images, labels: nil, reference: reference, inception: nil, classifier: classifier)
        XCTAssertNil(uncond.classConsistency)
        XCTAssert(uncond.notes.contains { $0.contains("unconditional") })
    }
}
