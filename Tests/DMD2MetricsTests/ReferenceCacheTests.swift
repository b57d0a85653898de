// The reference-feature cache of `eval` is keyed by the images' content, not by the dataset's
// path (issue 16, part 2: a replaced dataset must not be served stale features).
import DMD2Core
import DMD2Data
import DMD2Metrics
import SafeTensors
import Foundation
import XCTest

/// Another dataset's images under a fixed name, as a folder whose files were replaced would be.
private final class Renamed: ImageDataset {
    let base: any ImageDataset
    let name: String
    init(_ base: any ImageDataset, name: String) { self.base = base; self.name = name }
    var count: Int { base.count }
    var classCount: Int { base.classCount }
    var resolution: Int { base.resolution }
    var channels: Int { base.channels }
    func label(_ index: Int) -> Int { base.label(index) }
    func item(_ index: Int) throws -> (image: Image8, label: Int) { try base.item(index) }
}

final class ReferenceCacheTests: XCTestCase {
    override func setUp() { Threads.count = 2 }

    func testReferenceCacheIsKeyedByContent() throws {
        let weights = InceptionV3FID.defaultWeightsURL
        guard FileManager.default.fileExists(atPath: weights.path) else {
            throw XCTSkip("FID Inception weights not fetched (looked for \(weights.path)): run scripts/fetch-inception.sh")
        }
        let inception = try InceptionV3FID(weightsURL: weights)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dmd2-refcache-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cache = folder.appendingPathComponent("test-reference-2-c3.safetensors")
        let a = Renamed(ShapesDataset(count: 2, classCount: 2, resolution: 16, channels: 3, seed: 1), name: "data/x/test")
        let b = Renamed(ShapesDataset(count: 2, classCount: 2, resolution: 16, channels: 3, seed: 2), name: "data/x/test")

        let first = try EvaluationReference.prepare(dataset: a, count: 2, inception: inception, cacheURL: cache)
        let written = try FileManager.default.attributesOfItem(atPath: cache.path)[.modificationDate] as? Date
        let hit = try EvaluationReference.prepare(dataset: a, count: 2, inception: inception, cacheURL: cache)
        XCTAssertEqual(hit.features, first.features)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: cache.path)[.modificationDate] as? Date, written,
                       "unchanged content is served from the cache")

        // Same name and count, other images: the cache must not be served.
        let replaced = try EvaluationReference.prepare(dataset: b, count: 2, inception: inception, cacheURL: cache)
        let fresh = try EvaluationReference.prepare(dataset: b, count: 2, inception: inception, cacheURL: nil)
        XCTAssertEqual(replaced.features, fresh.features)
        XCTAssertNotEqual(replaced.features, first.features)

        // A damaged cache file is recomputed, not served and not fatal.
        var bytes = try Data(contentsOf: cache)
        for i in (bytes.count - 64)..<bytes.count { bytes[i] = 0xFF }      // NaN features
        try bytes.write(to: cache)
        let repaired = try EvaluationReference.prepare(dataset: b, count: 2, inception: inception, cacheURL: cache)
        XCTAssertEqual(repaired.features, fresh.features)
    }

    /// A shipped feature file (what `EvaluationReference.bundledFeatureFiles` lists) is used when
    /// the cache is cold and the images are the same — copied into the cache — and never for other
    /// images. Features whose network run would differ are planted to prove which file served them.
    func testShippedFeaturesServeTheSameImagesOnly() throws {
        let weights = InceptionV3FID.defaultWeightsURL
        guard FileManager.default.fileExists(atPath: weights.path) else {
            throw XCTSkip("FID Inception weights not fetched (looked for \(weights.path)): run scripts/fetch-inception.sh")
        }
        let inception = try InceptionV3FID(weightsURL: weights)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dmd2-shipped-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let a = Renamed(ShapesDataset(count: 2, classCount: 2, resolution: 16, channels: 3, seed: 1), name: "data/x/test")
        let b = Renamed(ShapesDataset(count: 2, classCount: 2, resolution: 16, channels: 3, seed: 2), name: "data/x/test")
        let shipped = folder.appendingPathComponent("shipped/test-reference-2-c3.safetensors")
        _ = try EvaluationReference.prepare(dataset: a, count: 2, inception: inception, cacheURL: shipped)
        // Plant recognisable features in the shipped file, keeping its content key.
        let file = try SafeTensorsFile(contentsOf: shipped)
        let planted = Tensor<Float>(shape: [2, InceptionV3FID.featureCount], scalars: (0..<(2 * InceptionV3FID.featureCount)).map { Float($0 % 7) })
        try SafeTensorsFile(metadata: file.metadata, tensors: ["features": planted.safeTensor()]).write(to: shipped)

        let cache = folder.appendingPathComponent("cache/test-reference-2-c3.safetensors")
        let served = try EvaluationReference.prepare(dataset: a, count: 2, inception: inception, cacheURL: cache, shipped: [shipped])
        XCTAssertEqual(served.features, planted, "the shipped file serves the same images")
        XCTAssertEqual(try EvaluationReference.prepare(dataset: a, count: 2, inception: inception, cacheURL: cache).features, planted,
                       "and was copied into the cache")
        let other = try EvaluationReference.prepare(dataset: b, count: 2, inception: inception, cacheURL: nil, shipped: [shipped])
        XCTAssertNotEqual(other.features, planted, "a shipped file for other images is not used")
        XCTAssertEqual(other.features, try EvaluationReference.prepare(dataset: b, count: 2, inception: inception, cacheURL: nil).features)
    }
}
