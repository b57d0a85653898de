// The whole UNet F: against the naive reference, its zero initial output, labels, the encoder
// features, Double gradient checks of the network and of the EDM loss, and (heavy) the full
// ImageNet-64 forward.
import DMD2Core
import DMD2Ops
import EDM
import Foundation
import DMD2Checks
import DMD2TestSupport
import XCTest

final class UNetTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    func inputs(_ config: UNetConfig, batch N: Int, seed: UInt64) -> (x: Tensor<Double>, cNoise: Tensor<Double>, y: Tensor<Double>) {
        var rng = RandomGenerator(seed: seed)
        let x: Tensor<Double> = rng.normal([N, config.inChannels, config.resolution, config.resolution])
        let cNoise: Tensor<Double> = rng.normal([N])
        let y: Tensor<Double> = oneHot((0..<N).map { $0 % 2 == 0 ? $0 % config.labelDim : nil }, count: config.labelDim)
        return (x, cNoise, y)
    }

    func testForwardMatchesNaiveReference() {
        let values = randomParameterValues(tinyConfig.layout.stateEntries, seed: 1)
        let net: UNet<Double> = unet(tinyConfig, values: values)
        let (x, cNoise, y) = inputs(tinyConfig, batch: 2, seed: 2)
        let ours = NoGrad.run { net(Variable(x), noiseLabels: cNoise, classLabels: y) }.value
        let byName = Dictionary(uniqueKeysWithValues: zip(net.parameters.names, values))
        let reference = Naive.unet(net.layout, x, cNoise: cNoise.scalars, labels: y) { byName[$0]! }
        XCTAssertEqual(ours.shape, [2, 2, 8, 8])
        XCTAssertLessThan(relativeError(ours, reference), 1e-12)
    }

    func testEmbeddingMatchesNaiveReference() {
        let values = randomParameterValues(UNetConfig.small16.layout.stateEntries, seed: 3)
        let net: UNet<Double> = unet(.small16, values: values)
        let byName = Dictionary(uniqueKeysWithValues: zip(net.parameters.names, values))
        let cNoise = [Double.log(80) / 4, Double.log(0.002) / 4, 0.3]
        let y: Tensor<Double> = oneHot([3, nil, 9], count: 10)
        let ours = net.embedding(noiseLabels: Tensor(shape: [3], scalars: cNoise), classLabels: y, batch: 3).value
        let reference = Naive.embedding(cNoise, labels: y, modelChannels: 64) { byName[$0]! }
        XCTAssertLessThan(relativeError(ours, reference), 1e-13)
    }

    /// nil labels and all-zero labels are the same "no label".
    func testNoLabelEqualsZeroLabels() {
        let net: UNet<Double> = unet(tinyConfig, values: randomParameterValues(tinyConfig.layout.stateEntries, seed: 4))
        let (x, cNoise, _) = inputs(tinyConfig, batch: 2, seed: 5)
        let a = NoGrad.run { net(Variable(x), noiseLabels: cNoise, classLabels: nil) }.value
        let b = NoGrad.run { net(Variable(x), noiseLabels: cNoise, classLabels: .zeros([2, 3])) }.value
        let c = NoGrad.run { net(Variable(x), noiseLabels: cNoise, classLabels: oneHot([0, 1], count: 3)) }.value
        XCTAssertLessThan(relativeError(a, b), 1e-15)
        XCTAssertGreaterThan(relativeError(c, a), 1e-3)
    }

    /// At initialisation out_conv is zero, so F ≡ 0 and D(x; σ) = c_skip·x.
    func testInitialNetworkOutputsZero() {
        var rng = RandomGenerator(seed: 6)
        let denoiser = Denoiser(net: UNet<Float>(config: .small16, rng: &rng))
        let x: Tensor<Float> = rng.normal([2, 3, 16, 16])
        let D = NoGrad.run { denoiser(Variable(x), sigma: [0.5, 80], classLabels: oneHot([1, nil], count: 10)) }.value
        for n in 0..<2 {
            let cSkip = Float(Preconditioning(sigma: [0.5, 80][n]).cSkip)
            for k in 0..<768 { XCTAssertEqual(D.scalars[n * 768 + k], x.scalars[n * 768 + k] * cSkip) }
        }
    }

    /// The bottleneck for DMD2's GAN head: the last encoder block's output.
    func testEncoderFeatures() {
        let values = randomParameterValues(tinyConfig.layout.stateEntries, seed: 7)
        let net: UNet<Double> = unet(tinyConfig, values: values)
        let (x, cNoise, y) = inputs(tinyConfig, batch: 2, seed: 8)
        let features = NoGrad.run { net.encoderFeatures(Variable(x), noiseLabels: cNoise, classLabels: y) }.value
        XCTAssertEqual(features.shape, [2, 16, 4, 4])
        let byName = Dictionary(uniqueKeysWithValues: zip(net.parameters.names, values))
        let p = { byName[$0]! }
        let emb = Naive.embedding(cNoise.scalars, labels: y, modelChannels: 8, p)
        var h = Naive.conv(x, p("model.enc.8x8_conv.weight"), p("model.enc.8x8_conv.bias"))
        for spec in net.layout.encoder { h = Naive.block(spec, h, emb: emb, p) }
        XCTAssertEqual(net.layout.encoder.last?.name, "enc.4x4_block0")
        XCTAssertLessThan(relativeError(features, h), 1e-12)

        var rng = RandomGenerator(seed: 9)
        let small = Denoiser(net: UNet<Float>(config: .small16, rng: &rng))
        let f = NoGrad.run { small.encoderFeatures(Variable(rng.normal([2, 3, 16, 16])), sigma: [1, 2], classLabels: nil) }
        XCTAssertEqual(f.shape, [2, 128, 8, 8])
    }

    // MARK: Gradient checks

    /// F of the tiny config, with labels and dropout, in the space of its input and every parameter.
    func testGradientCheckWholeUNet() {
        let config = tinyConfig
        let values = randomParameterValues(config.layout.stateEntries, seed: 10)
        let (x, cNoise, y) = inputs(config, batch: 2, seed: 11)
        let entries = config.layout.stateEntries
        // Draw the masks once (in Double) and replay them in both precisions.
        let drawn = DropoutMasks<Double>(p: 0.2, rng: RandomGenerator(seed: 12))
        _ = NoGrad.run { unet(config, values: values, as: Double.self)(Variable(x), noiseLabels: cNoise, classLabels: y, dropout: drawn) }
        XCTAssertEqual(drawn.masks.count, config.layout.allBlocks.count)
        func run<T>(_ v: [Variable<T>]) -> Variable<T> {
            let net = UNet(config: config, parameters: store(entries, v[1...]))
            let masks = DropoutMasks<T>(p: 0.2, masks: drawn.masks.mapValues { $0.converted() })
            return net(v[0], noiseLabels: cNoise.converted(), classLabels: y.converted(), dropout: masks)
        }
        let c = OpCase("UNet.forward", "tiny 8×8, 8×[1,2]", inputs: [x] + values, double: { run($0) }, float: { run($0) })
        check { try GradCheck.randomDirection(c, seed: 1) }
        check { try GradCheck.randomDirection(c, seed: 2) }
    }

    /// F of the real `small16` config (3.3 M parameters), batch 1, in input-and-parameter space.
    func testGradientCheckSmall16() {
        let config = UNetConfig.small16
        let entries = config.layout.stateEntries
        let values = randomParameterValues(entries, seed: 13)
        let (x, cNoise, y) = inputs(config, batch: 1, seed: 14)
        func run<T>(_ v: [Variable<T>]) -> Variable<T> {
            UNet(config: config, parameters: store(entries, v[1...]))(v[0], noiseLabels: cNoise.converted(), classLabels: y.converted())
        }
        let c = OpCase("UNet.forward", "small16", inputs: [x] + values, double: { run($0) }, float: { run($0) })
        check { try GradCheck.randomDirection(c, seed: 1) }
    }

    /// The encoder features (the GAN head's input) w.r.t. input and parameters.
    func testGradientCheckEncoderFeatures() {
        let config = tinyConfig
        let entries = config.layout.stateEntries
        let values = randomParameterValues(entries, seed: 15)
        let (x, _, y) = inputs(config, batch: 2, seed: 16)
        func run<T>(_ v: [Variable<T>]) -> Variable<T> {
            let denoiser = Denoiser(net: UNet(config: config, parameters: store(entries, v[1...])))
            return denoiser.encoderFeatures(v[0], sigma: [0.3, 7], classLabels: y.converted())
        }
        let c = OpCase("Denoiser.encoderFeatures", "tiny", inputs: [x] + values, double: { run($0) }, float: { run($0) })
        check { try GradCheck.randomDirection(c, seed: 1) }
    }

    /// The EDM loss with fixed draws (σ, noise, a dropped label), w.r.t. images and parameters.
    func testGradientCheckEDMLoss() {
        let config = tinyConfig
        let entries = config.layout.stateEntries
        let values = randomParameterValues(entries, seed: 17)
        let (x, _, y) = inputs(config, batch: 2, seed: 18)
        var rng = RandomGenerator(seed: 19)
        let loss = EDMLoss(labelDropout: 0.5)
        var draws: EDMLoss.Draws<Double> = loss.draw(shape: x.shape, rng: &rng)
        draws.dropLabel = [true, false]
        let fixed = draws
        func run<T>(_ v: [Variable<T>]) -> Variable<T> {
            let denoiser = Denoiser(net: UNet(config: config, parameters: store(entries, v[1...])))
            let d = EDMLoss.Draws<T>(sigma: fixed.sigma, noise: fixed.noise.converted(), dropLabel: fixed.dropLabel)
            return loss(denoiser, images: v[0], classLabels: y.converted(), draws: d)
        }
        let c = OpCase("EDMLoss", "tiny, fixed draws", inputs: [x] + values, double: { run($0) }, float: { run($0) })
        check { try GradCheck.randomDirection(c, seed: 1) }
        check { try GradCheck.randomDirection(c, seed: 2) }
    }

    // MARK: Heavy

    /// The full ImageNet-64 network (296 M parameters, 219 GFLOP) forward at batch 1, Float.
    /// Only with DMD2_HEAVY_TESTS=1 (takes ~1 GB and seconds to minutes).
    func testImageNet64ForwardHeavy() throws {
        guard ProcessInfo.processInfo.environment["DMD2_HEAVY_TESTS"] == "1" else {
            throw XCTSkip("heavy: the 296M-parameter ImageNet-64 forward runs only with DMD2_HEAVY_TESTS=1")
        }
        var rng = RandomGenerator(seed: 20)
        let start = Date()
        let denoiser = Denoiser(net: UNet<Float>(config: .imagenet64, rng: &rng))
        // Non-zero residual branches so the whole network contributes to the output.
        for name in denoiser.parameters.names where name.hasSuffix("conv1.weight") || name.hasSuffix("proj.weight") || name.hasPrefix("model.out_conv") {
            let v = denoiser.parameters[name]
            v.value = rng.normal(v.shape, std: 1 / Double(v.shape[1...].reduce(1, *)).squareRoot())
        }
        let initTime = Date().timeIntervalSince(start)
        let x: Tensor<Float> = rng.normal([1, 3, 64, 64])
        let y: Tensor<Float> = oneHot([207], count: 1000)
        let t0 = Date()
        let D = NoGrad.run { denoiser(Variable(x), sigma: [2.5], classLabels: y) }.value
        let forward = Date().timeIntervalSince(t0)
        let t1 = Date()
        let features = NoGrad.run { denoiser.encoderFeatures(Variable(x), sigma: [2.5], classLabels: y) }
        let encoderTime = Date().timeIntervalSince(t1)
        XCTAssertEqual(D.shape, [1, 3, 64, 64])
        XCTAssertTrue(D.isFinite)
        XCTAssertEqual(features.shape, [1, 768, 8, 8])
        let gflop = UNetConfig.imagenet64.forwardCost().total / 1e9
        print(String(format: "ImageNet-64 forward, batch 1: %.2f s (%.1f GFLOP/s of %.1f GFLOP); encoder only %.2f s; init %.1f s",
                     forward, gflop / forward, gflop, encoderTime, initTime))
    }
}
