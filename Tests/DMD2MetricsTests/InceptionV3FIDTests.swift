// The Swift FID network against reference/inception_numpy.py (an independent float64 numpy
// implementation) and the TorchScript model itself, on the fixture's three 64×64 images
// (a colour gradient, a checkerboard, seeded noise). Needs the real weights: run
// scripts/fetch-inception.sh first, or the test is skipped.
import DMD2Core
import DMD2Data
import DMD2Metrics
import Foundation
import XCTest

final class InceptionV3FIDTests: XCTestCase {
    override func setUp() { Threads.count = 2 }

    static let fixtureURL = Bundle.module.url(forResource: "Resources/inception_fixture", withExtension: "npz")!

    /// The fixture: images uint8 [3, 64, 64, 3] (HWC), numpy features float64 [3, 2048],
    /// TorchScript features float32 [3, 2048].
    static func fixture() throws -> (images: [Image8], numpy: Tensor<Double>, torchscript: Tensor<Double>) {
        let npz = try NPZArchive(url: fixtureURL)
        let (shape, bytes) = try npz.integers("images")
        XCTAssertEqual(shape, [3, 64, 64, 3])
        let size = 64 * 64 * 3
        let images = (0..<shape[0]).map { n in
            Image8(width: 64, height: 64, channels: 3, pixels: bytes[(n * size)..<((n + 1) * size)].map { UInt8($0) })
        }
        let numpy = try npz.doubles("features"), torch = try npz.doubles("features_torchscript")
        return (images, Tensor(shape: numpy.shape, scalars: numpy.values), Tensor(shape: torch.shape, scalars: torch.values))
    }

    func loadNetwork() throws -> InceptionV3FID {
        let url = InceptionV3FID.defaultWeightsURL
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw XCTSkip("FID Inception weights not fetched (looked for \(url.path)): run scripts/fetch-inception.sh, or set DMD2_INCEPTION_WEIGHTS")
        }
        return try InceptionV3FID(weightsURL: url)
    }

    /// max |a − b| / max |b| over all features.
    static func relativeError(_ a: Tensor<Float>, _ b: Tensor<Double>) -> (relative: Double, absolute: Double) {
        var maxDiff = 0.0, maxRef = 0.0
        for (x, y) in zip(a.scalars, b.scalars) {
            maxDiff = max(maxDiff, abs(Double(x) - y))
            maxRef = max(maxRef, abs(y))
        }
        return (maxDiff / maxRef, maxDiff)
    }

    func testFeaturesMatchNumpyAndTorchScript() throws {
        let net = try loadNetwork()
        let (images, numpy, torchscript) = try Self.fixture()
        let start = Date()
        var calls: [(Int, Int)] = []
        let features = net.features(images, batchSize: 2) { calls.append(($0, $1)) }
        let seconds = Date().timeIntervalSince(start)
        XCTAssertEqual(features.shape, [3, 2048])
        XCTAssertEqual(calls.map(\.0), [2, 3])
        XCTAssertEqual(calls.map(\.1), [3, 3])
        let vsNumpy = Self.relativeError(features, numpy), vsTorch = Self.relativeError(features, torchscript)
        print("InceptionV3FID: 3 images in \(String(format: "%.2f", seconds)) s; max |Δ| vs numpy \(vsNumpy.absolute) (relative \(vsNumpy.relative)), vs TorchScript \(vsTorch.absolute) (relative \(vsTorch.relative))")
        XCTAssertLessThanOrEqual(vsNumpy.relative, 1e-4, "Swift vs reference/inception_numpy.py")
        XCTAssertLessThanOrEqual(vsTorch.relative, 1e-4, "Swift vs the TorchScript model")

        // The dataset path reads items in order and gives the same numbers.
        let dataset = ShapesDataset(count: 1, classCount: 1, resolution: 16, channels: 3, seed: 1)
        let fromDataset = try net.features(of: dataset)
        XCTAssertEqual(fromDataset, net.features([try dataset.item(0).image]))
    }

    func testNetworkInput() throws {
        // Pixels p become (p − 128)/128 at 299×299; a 299×299 image is not resampled.
        let flat = Image8(width: 299, height: 299, channels: 3, filledWith: 0)
        var corner = flat
        corner[0, 0, 1] = 255
        let x = InceptionV3FID.networkInput([flat, corner])
        XCTAssertEqual(x.shape, [2, 3, 299, 299])
        XCTAssertEqual(x[0, 0, 0, 0], -1)
        XCTAssertEqual(x[1, 1, 0, 0], 127 / 128)
        XCTAssertEqual(x[1, 1, 0, 1], -1)

        // Grey is repeated to RGB; images and a pixel tensor of the same bytes agree.
        let images = try Self.fixture().images
        let grey = images.map { $0.converted(toChannels: 1) }
        XCTAssertEqual(InceptionV3FID.networkInput(grey), InceptionV3FID.networkInput(grey.map { $0.converted(toChannels: 3) }))
        var pixels = Tensor<Float>.zeros([images.count, 3, 64, 64])
        for (n, image) in images.enumerated() {
            for y in 0..<64 { for x in 0..<64 { for c in 0..<3 { pixels[n, c, y, x] = Float(image[y, x, c]) } } }
        }
        XCTAssertEqual(InceptionV3FID.networkInput(pixels: pixels), InceptionV3FID.networkInput(images))
    }
}
