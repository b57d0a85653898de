// The checkpoint interface: our generated state-dict table against EDM's published listings,
// parameter counts and costs of the presets, the initialisation, config validation.
import DMD2Core
import EDM
import Foundation
import DMD2TestSupport
import XCTest

final class ParameterTableTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    /// Every key, in order, with its shape — parameters and resample_filter buffers.
    func assertTableMatches(_ config: UNetConfig, listing name: String, keys: Int, buffers: Int, parameters: Int) throws {
        let listing = try stateDictListing(name)
        let ours = config.layout.stateEntries
        XCTAssertEqual(listing.count, keys, "\(name).tsv")
        XCTAssertEqual(ours.count, listing.count, "\(name): \(ours.count) generated keys, listing has \(listing.count)")
        for (i, (e, l)) in zip(ours, listing).enumerated() {
            XCTAssertEqual(e.name, l.name, "\(name) key \(i)")
            XCTAssertEqual(e.shape, l.shape, "\(name) shape of \(l.name)")
            XCTAssertEqual(e.kind == .resampleFilter, l.name.hasSuffix(".resample_filter"), "\(name) kind of \(l.name)")
            if e.name != l.name { break }                       // one misalignment would fail every later key
        }
        XCTAssertEqual(ours.filter { !$0.isParameter }.count, buffers)
        XCTAssertEqual(config.parameterCount, parameters)
        let listed = listing.filter { !$0.name.hasSuffix("resample_filter") }.map(\.shape.elementCount).reduce(0, +)
        XCTAssertEqual(listed, parameters)
    }

    func testImageNet64TableMatchesEDM() throws {
        try assertTableMatches(.imagenet64, listing: "imagenet64", keys: 553, buffers: 12, parameters: 295_899_267)
    }

    func testSmall16TableMatchesEDM() throws {
        try assertTableMatches(.small16, listing: "small16", keys: 149, buffers: 4, parameters: 3_295_939)
    }

    /// The figures quoted in the presets' doc comments.
    func testPresetSizesAndCosts() {
        let expected: [(UNetConfig, Int, Double)] = [
            (.imagenet64, 295_899_267, 219.3), (.small16, 3_295_939, 0.602),
            (.cpu64Tiny, 1_297_265, 0.924), (.cpu64Small, 4_473_921, 3.27),
        ]
        for (config, params, gflop) in expected {
            XCTAssertEqual(config.parameterCount, params)
            let digits = gflop < 1 ? 1000.0 : gflop < 10 ? 100.0 : 10.0
            XCTAssertEqual((config.forwardCost().total / 1e9 * digits).rounded() / digits, gflop, "\(config)")
            XCTAssertNoThrow(try config.validate())
        }
        let c = UNetConfig.imagenet64.forwardCost()
        XCTAssertEqual((c.convolution / 1e8).rounded() / 10, 206.8)
        XCTAssertEqual((c.attention / 1e8).rounded() / 10, 12.4)
        XCTAssertEqual(c.convolution / c.total, 0.943, accuracy: 0.001)       // "94% of it convolutions"
        XCTAssertEqual(UNetConfig.imagenet64.forwardCost(batch: 8).total, 8 * c.total, accuracy: 1)
        XCTAssertEqual(UNetConfig.cpu64Tiny.withImageChannels(3).inChannels, 3)
    }

    /// ImageNet-64's structure: 16 skips, the bottleneck block, heads per level.
    func testImageNet64Layout() {
        let layout = UNetConfig.imagenet64.layout
        XCTAssertEqual(layout.skipChannels.count, 16)
        XCTAssertEqual(layout.encoder.last?.name, "enc.8x8_block2")
        XCTAssertEqual(layout.encoder.last?.outChannels, 768)
        XCTAssertEqual(layout.decoder.count, 2 + 3 + 4 * 4)
        XCTAssertEqual(layout.decoder.filter(\.popsSkip).count, 16)
        let heads = Dictionary(layout.allBlocks.filter(\.attention).map { ($0.resolution, $0.heads) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(heads, [32: 6, 16: 9, 8: 12])
        // Concat widths entering the 64×64 decoder blocks: 384+192, 192+192, 192+192, 192+192.
        XCTAssertEqual(layout.decoder.suffix(4).map(\.block.inChannels), [576, 384, 384, 384])
        XCTAssertEqual(UNetConfig.small16.layout.allBlocks.filter(\.attention).map(\.heads), [2, 2, 2, 2])
    }

    /// Training initialisation (docs/ARCHITECTURE-ADM.md): U(±1/√fan_in), zeros for conv1, proj and
    /// out_conv, N(0, 1) for map_label, γ = 1, β = 0; reproducible from the seed.
    func testInitialisation() {
        var rng = RandomGenerator(seed: 7)
        let net = UNet<Float>(config: .small16, rng: &rng)
        var rng2 = RandomGenerator(seed: 7)
        let again = UNet<Float>(config: .small16, rng: &rng2)
        XCTAssertEqual(net.parameters.names.count, 145)
        for (name, v) in zip(net.parameters.names, net.parameters.variables) {
            let x = v.value.scalars.map(Double.init)
            XCTAssertTrue(v.requiresGrad, name)
            XCTAssertEqual(v.value, again.parameters[name].value, "\(name) not reproducible")
            if name.hasSuffix("conv1.weight") || name.hasSuffix("conv1.bias") || name.contains(".proj.")
                || name.hasPrefix("model.out_conv.") || (name.contains("norm") && name.hasSuffix(".bias")) {
                XCTAssertTrue(x.allSatisfy { $0 == 0 }, "\(name) should be zero")
            } else if name.contains("norm") {
                XCTAssertTrue(x.allSatisfy { $0 == 1 }, "\(name) should be one")
            } else if name == "model.map_label.weight" {
                let m = x.reduce(0, +) / Double(x.count), s = (x.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(x.count)).squareRoot()
                XCTAssertEqual(s, 1, accuracy: 0.05, name)
            } else {
                let fanIn = name.hasSuffix(".bias") ? net.parameters[name.replacingOccurrences(of: ".bias", with: ".weight")].value.shape[1...].reduce(1, *)
                                                    : v.value.shape[1...].reduce(1, *)
                let bound = 1 / Double(fanIn).squareRoot()
                XCTAssertTrue(x.allSatisfy { abs($0) <= bound }, "\(name) exceeds ±1/√\(fanIn)")
                if x.count >= 4096 {
                    let rms = (x.map { $0 * $0 }.reduce(0, +) / Double(x.count)).squareRoot()
                    XCTAssertEqual(rms, bound / 3.0.squareRoot(), accuracy: 0.03 * bound, name)
                }
            }
        }
    }

    func testConfigValidationAndCoding() throws {
        var bad = UNetConfig.small16
        bad.resolution = 12; bad.channelMult = [1, 2, 2]               // 12 → 6 → 3: fine; 3 levels need 4 | 12
        XCTAssertNoThrow(try bad.validate())
        bad.resolution = 10                                             // 10/4 is not an integer
        XCTAssertThrowsError(try bad.validate()) { XCTAssertTrue("\($0)".contains("halve"), "\($0)") }
        var narrow = UNetConfig.small16
        narrow.modelChannels = 130                                      // 130 % min(32, 32) ≠ 0
        XCTAssertThrowsError(try narrow.validate()) { XCTAssertTrue("\($0)".contains("GroupNorm"), "\($0)") }
        let json = try EDMCheckpoint.configJSON(.imagenet64)
        XCTAssertEqual(try JSONDecoder().decode(UNetConfig.self, from: Data(json.utf8)), .imagenet64)
        XCTAssertEqual(UNetConfig.presets["cpu64Small"], .cpu64Small)
    }
}
