// The class-consistency classifier: shapes, training wiring, checkpoints, the metric, and the
// bundled weights.
import DMD2Core
import DMD2Data
import DMD2Metrics
import DMD2Ops
import Foundation
import XCTest

final class ClassConsistencyTests: XCTestCase {
    override func setUp() { Threads.count = 2 }

    func testMetricCountsMatchesPerClass() {
        let c = ClassConsistency(predictions: [0, 1, 1, 2, 0, 2], labels: [0, 1, 2, 2, 0, 0], classCount: 4)
        XCTAssertEqual(c.accuracy, 4.0 / 6, accuracy: 1e-15)
        XCTAssertEqual(c.count, 6)
        XCTAssertEqual(c.perClass[0]!, 2.0 / 3, accuracy: 1e-15)      // class 0: 0, 0 right, 2 wrong
        XCTAssertEqual(c.perClass[1], 1)
        XCTAssertEqual(c.perClass[2], 0.5)
        XCTAssertNil(c.perClass[3])
    }

    func testShapesAndConfigChecks() throws {
        var rng = RandomGenerator(seed: 1)
        let config = ClassifierConfig(resolution: 16, classCount: 4, widths: [4, 8], groups: 2)
        XCTAssertEqual(config.finalSide, 2)                                  // 16 → 8 → 4 → 2
        let model = try ImageClassifier<Float>(config: config, rng: &rng)
        // 1·4·9 + 4 + 4 + 4 + 4·8·9 + 8 + 8 + 8 + (8·2·2)·4 + 4
        XCTAssertEqual(model.scalarCount, 36 + 12 + 288 + 24 + 128 + 4)
        let x: Tensor<Float> = rng.normal([3, 3, 16, 16])
        let input = model.input(x)
        XCTAssertEqual(input.shape, [3, 1, 8, 8])
        // Grey = channel mean, then 2×2 average.
        var expected: Float = 0
        for c in 0..<3 { for (h, w) in [(0, 0), (0, 1), (1, 0), (1, 1)] { expected += x[0, c, h, w] } }
        XCTAssertEqual(input[0, 0, 0, 0], expected / 12, accuracy: 1e-6)
        XCTAssertEqual(model.logits(Variable(input)).shape, [3, 4])
        XCTAssertEqual(model.predict(x, batchSize: 2).count, 3)
        XCTAssertThrowsError(try ClassifierConfig(resolution: 20, classCount: 4, widths: [4, 8], groups: 2).validate())
        XCTAssertThrowsError(try ClassifierConfig(resolution: 16, classCount: 4, widths: [6], groups: 4).validate())
    }

    func testTrainingStepsLearnASimpleTask() throws {
        // Plain gradient descent on 16 noisy images whose class is the bright half (top, bottom,
        // left, right): the loss must fall and the batch be fitted — forward, loss and backward
        // wired end to end.
        var rng = RandomGenerator(seed: 2)
        let labels = (0..<16).map { $0 % 4 }
        let noise: Tensor<Float> = rng.normal([16, 1, 16, 16], std: 0.3)
        var images = noise
        for n in 0..<16 {
            for h in 0..<16 {
                for w in 0..<16 {
                    let bright = [h < 8, h >= 8, w < 8, w >= 8][labels[n]]
                    images[n, 0, h, w] += bright ? 0.5 : -0.5
                }
            }
        }
        let model = try ImageClassifier<Float>(config: ClassifierConfig(resolution: 16, classCount: 4, widths: [8, 8], groups: 4), rng: &rng)
        let x = Variable(model.input(images))
        var losses: [Float] = []
        for _ in 0..<25 {
            let loss = softmaxCrossEntropy(logits: model.logits(x), labels: labels)
            losses.append(loss.value.scalar)
            for (_, p) in model.parameters { p.zeroGrad() }
            loss.backward()
            for (_, p) in model.parameters { p.value = p.value - p.grad! * 0.2 }
        }
        XCTAssertLessThan(losses.last!, 0.3 * losses.first!, "losses \(losses)")
        XCTAssertEqual(ClassConsistency(classifier: model, images: images, labels: labels).accuracy, 1)
    }

    func testCheckpointRoundTrip() throws {
        var rng = RandomGenerator(seed: 3)
        let config = ClassifierConfig(resolution: 16, classCount: 3, widths: [4], groups: 2)
        let model = try ImageClassifier<Float>(config: config, rng: &rng)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dmd2-classifier-\(ProcessInfo.processInfo.processIdentifier).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try model.file(metadata: ["test_accuracy": "0.5"]).write(to: url)
        let (loaded, metadata) = try ImageClassifier<Float>.load(from: url)
        XCTAssertEqual(loaded.config, config)
        XCTAssertEqual(metadata["test_accuracy"], "0.5")
        let x: Tensor<Float> = rng.normal([2, 1, 16, 16])
        XCTAssertEqual(NoGrad.run { loaded.logits(Variable(loaded.input(x))).value },
                       NoGrad.run { model.logits(Variable(model.input(x))).value })
        // A file with a wrong shape is refused, naming the tensor.
        var file = try model.file()
        file.tensors["head.bias"] = Tensor<Float>.zeros([5]).safeTensor()
        try file.write(to: url)
        XCTAssertThrowsError(try ImageClassifier<Float>.load(from: url)) { error in
            XCTAssert("\(error)".contains("head.bias"), "\(error)")
        }
    }

    func testBundledClassifierLoads() throws {
        let url = try XCTUnwrap(ClassConsistency.bundledClassifierURL, "fashion64-classifier.safetensors missing from the DMD2Metrics bundle")
        let (model, metadata) = try ImageClassifier<Float>.load(from: url)
        XCTAssertEqual(model.config.resolution, 64)
        XCTAssertEqual(model.config.classCount, 10)
        let accuracy = try XCTUnwrap(metadata["test_accuracy"].flatMap(Double.init))
        XCTAssertGreaterThan(accuracy, 0.85, "the bundled classifier's recorded test accuracy")
        XCTAssertLessThan(try FileManager.default.attributesOfItem(atPath: url.path)[.size] as! Int, 2_000_000)
    }
}
