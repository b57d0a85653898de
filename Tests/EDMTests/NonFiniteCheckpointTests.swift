// A network file holding NaN or ±∞ does not load (sample, eval, distill --teacher and every
// resume go through this): the error names the tensor.
import DMD2Core
import EDM
import Foundation
import SafeTensors
import XCTest

final class NonFiniteCheckpointTests: XCTestCase {
    func testNonFiniteWeightsDoNotLoad() throws {
        let config = UNetConfig(resolution: 8, inChannels: 1, outChannels: 1, labelDim: 0, modelChannels: 8,
                                channelMult: [1, 2], channelMultEmb: 2, numBlocks: 1, attnResolutions: [], dropout: 0, labelDropout: 0)
        var rng = RandomGenerator(seed: 3)
        let net = UNet<Float>(config: config, rng: &rng)
        var file = try EDMCheckpoint.file(net)
        XCTAssertNoThrow(try EDMCheckpoint.load(file, as: Float.self))
        var bad = net.parameters["model.out_conv.weight"].value
        bad.scalars[1] = .nan
        bad.scalars[2] = -.infinity
        file["model.out_conv.weight"] = bad.safeTensor()
        XCTAssertThrowsError(try EDMCheckpoint.load(file, as: Float.self)) { error in
            guard let e = error as? CheckpointError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.kind, .nonFinite)
            XCTAssertEqual(e.key, "model.out_conv.weight")
            XCTAssertTrue(e.message.contains("1 NaN and 1 ±∞"), e.message)
        }
    }
}
