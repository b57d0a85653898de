// The Swift EDM module against our independent PyTorch reference (reference/edm_model.py, written
// from the same spec): the committed fixture Resources/edm_small16_fixture.safetensors, made by
// reference/make_edm_fixtures.py (layout in reference/README.md).
//
// Network: small16's structure (16×16 RGB, 10 classes, channel_mult [1, 2], 1 block, attention
// at 8, embedding 4× the width) at model width 16 — 209,587 parameters, random and non-zero
// (no zero conv1/proj/out_conv hiding the layers before them), stored as F32 so the Double and
// Float networks hold the same values. Compared:
//   D(x; σ, y)       σ ∈ {0.002, 0.5, 2.5, 80} × {one-hot, no label}, and per-image σ with a mixed batch
//   F's internals    the embedding, every encoder and decoder block's output, F, the encoder features
//   EDM loss         value, every parameter gradient and dL/dx for fixed draws (σ, ε, dropped labels)
//   Heun             5 deterministic steps from fixed latents (the state after every step)
//   converters       reference/convert_dmd2_bin.py and convert_edm_pkl.py outputs load and give D
// Tolerance: max |Swift − PyTorch| / max |PyTorch| per tensor ≤ 1e-10 in Double against the
// float64 reference, ≤ 1e-4 in Float — against the float32 reference where the fixture has one
// (D, embedding, F, encoder features, loss value, Heun), else against float64 (block outputs,
// gradients; the fixture stores those in float64 only to stay small).
import DMD2Core
import DMD2Ops
import EDM
import Foundation
import SafeTensors
import DMD2TestSupport
import XCTest

final class FixtureTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    /// The fixture network's config (also in the file's metadata).
    static let config = UNetConfig(
        resolution: 16, inChannels: 3, outChannels: 3, labelDim: 10, modelChannels: 16,
        channelMult: [1, 2], channelMultEmb: 4, numBlocks: 1, attnResolutions: [8],
        dropout: 0, labelDropout: 0)

    static let hint = "regenerate with `python3 reference/make_edm_fixtures.py` only if the reference itself changed"

    // MARK: Loading

    func resource(_ name: String) throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Resources"),
                      "Tests/EDMTests/Resources/\(name).safetensors is missing (written by reference/make_edm_fixtures.py)")
    }

    func fixture() throws -> SafeTensorsFile { try SafeTensorsFile(contentsOf: resource("edm_small16_fixture")) }

    /// The fixture's network, loaded through `EDMCheckpoint` from its `model.…` tensors and config.
    func network<T: TensorScalar>(_ file: SafeTensorsFile, as: T.Type = T.self) throws -> UNet<T> {
        let weights = SafeTensorsFile(metadata: ["config": file.metadata["config"] ?? ""],
                                      tensors: file.tensors.filter { $0.key.hasPrefix("model.") })
        let loaded: LoadedCheckpoint<T> = try EDMCheckpoint.load(weights)
        return loaded.net
    }

    /// "f64" for Double, "f32" for Float: the reference of the same precision.
    func tag<T: TensorScalar>(_: T.Type) -> String { T.self == Double.self ? "f64" : "f32" }

    func tolerance<T: TensorScalar>(_: T.Type) -> Double { T.self == Double.self ? 1e-10 : 1e-4 }

    /// max |actual − expected| / max |expected|, in Double (∞ for a shape mismatch or a NaN/∞).
    func error<T: TensorScalar>(_ actual: Tensor<T>, _ expected: Tensor<Double>, _ name: String) -> Double {
        XCTAssertEqual(actual.shape, expected.shape, "\(name): shape")
        guard actual.shape == expected.shape, actual.scalars.allSatisfy(\.isFinite) else { return .infinity }
        let scale = max(expected.maxAbs(), 1e-300)
        return zip(actual.scalars, expected.scalars).reduce(0) { max($0, abs(Double($1.0) - $1.1)) } / scale
    }

    /// Compare with the fixture tensor `name`; returns the error.
    @discardableResult
    func compare<T: TensorScalar>(_ actual: Tensor<T>, _ file: SafeTensorsFile, _ name: String,
                                  line: UInt = #line) throws -> Double {
        let e = error(actual, try file.tensor(name, as: Double.self), name)
        XCTAssertLessThanOrEqual(e, tolerance(T.self), "\(T.self) vs '\(name)': relative error \(e) (\(Self.hint))", line: line)
        return e
    }

    func report(_ what: String, _ errors: [Double], _ type: Any.Type) {
        print("FixtureTests: \(what) [\(type)]: max relative error \(errors.max() ?? 0) over \(errors.count) tensors")
    }

    // MARK: File and weights

    func testFixtureMetadataAndWeights() throws {
        let file = try fixture()
        XCTAssertEqual(file.metadata["format"], "swift-dmd2-fixture")
        XCTAssertEqual(file.metadata["version"], "1")
        XCTAssertEqual(file.metadata["generator"], "reference/make_edm_fixtures.py")
        let config = try JSONDecoder().decode(UNetConfig.self, from: Data((file.metadata["config"] ?? "").utf8))
        XCTAssertEqual(config, Self.config)
        XCTAssertEqual(config.parameterCount, 209_587)
        let net: UNet<Double> = try network(file)
        XCTAssertEqual(net.parameters.names, config.layout.parameterEntries.map(\.name))
        // No layer is zero: a zero conv1, proj or out_conv would hide every layer before it.
        for (name, value) in net.parameters.namedTensors {
            XCTAssertGreaterThan(value.maxAbs(), 0, "\(name) is zero")
        }
    }

    // MARK: D(x; σ, y)

    func denoiser<T: TensorScalar>(_ file: SafeTensorsFile, _: T.Type) throws -> [Double] {
        let D = Denoiser(net: try network(file, as: T.self))
        let sigmas = try file.tensor("denoise.sigma", as: Double.self).scalars
        XCTAssertEqual(sigmas, [0.002, 0.5, 2.5, 80])
        let labels: Tensor<T> = try file.tensor("denoise.labels")
        var errors: [Double] = []
        for (j, σ) in sigmas.enumerated() {
            let x: Tensor<T> = try file.tensor("denoise.x\(j)")
            for (label, y) in [("label", labels), ("nolabel", nil)] {
                let out = NoGrad.run { D(Variable(x), sigma: σ, classLabels: y) }.value
                errors.append(try compare(out, file, "denoise.out\(j).\(label).\(tag(T.self))"))
            }
        }
        // One σ per image, one image labelled and one not (a zero row).
        let x: Tensor<T> = try file.tensor("mixed.x")
        let mixedSigma = try file.tensor("mixed.sigma", as: Double.self).scalars
        let mixedLabels: Tensor<T> = try file.tensor("mixed.labels")
        let out = NoGrad.run { D(Variable(x), sigma: mixedSigma, classLabels: mixedLabels) }.value
        errors.append(try compare(out, file, "mixed.out.\(tag(T.self))"))
        report("D(x; σ, y)", errors, T.self)
        return errors
    }

    func testDenoiserDouble() throws { _ = try denoiser(fixture(), Double.self) }
    func testDenoiserFloat() throws { _ = try denoiser(fixture(), Float.self) }

    // MARK: Embedding and every block's output

    /// Replays F block by block through the public layout and compares every intermediate.
    func activations<T: TensorScalar>(_ file: SafeTensorsFile, _: T.Type) throws {
        let net: UNet<T> = try network(file)
        let layout = net.layout
        let x: Tensor<T> = try file.tensor("act.x")
        let cNoise: Tensor<T> = try file.tensor("act.c_noise")
        let y: Tensor<T> = try file.tensor("act.labels")
        let p = net.parameters
        let own = tag(T.self)
        var errors: [String: Double] = [:]
        NoGrad.run {
            let emb = net.embedding(noiseLabels: cNoise, classLabels: y, batch: 2)
            errors["emb"] = try? compare(emb.value, file, "act.\(own).emb")
            var h = conv2d(Variable(x), weight: p["model.\(layout.inputConvName).weight"],
                           bias: p["model.\(layout.inputConvName).bias"], padding: 1)
            errors[layout.inputConvName] = try? compare(h.value, file, "act.f64.\(layout.inputConvName)")
            var skips = [h]
            for block in layout.encoder {
                h = block(h, emb: emb, parameters: p)
                errors[block.name] = try? compare(h.value, file, "act.f64.\(block.name)")
                skips.append(h)
            }
            for step in layout.decoder {
                if step.popsSkip { h = concat([h, skips.removeLast()], axis: 1) }
                h = step.block(h, emb: emb, parameters: p)
                errors[step.block.name] = try? compare(h.value, file, "act.f64.\(step.block.name)")
            }
            // The network's own forward and encoder output.
            let F = net(Variable(x), noiseLabels: cNoise, classLabels: y)
            errors["F"] = try? compare(F.value, file, "act.\(own).F")
            let features = net.encoderFeatures(Variable(x), noiseLabels: cNoise, classLabels: y)
            errors["encoder_features"] = try? compare(features.value, file, "act.\(own).encoder_features")
        }
        let names = ["emb", layout.inputConvName] + layout.allBlocks.map(\.name) + ["F", "encoder_features"]
        XCTAssertEqual(Set(errors.keys), Set(names), "every intermediate was found in the fixture")
        // The first block past the tolerance is where the two implementations part.
        if let first = names.first(where: { (errors[$0] ?? .infinity) > tolerance(T.self) }) {
            XCTFail("\(T.self): first mismatching intermediate is '\(first)' (relative error \(errors[first] ?? .infinity))")
        }
        report("embedding, input conv, \(layout.allBlocks.count) block outputs, F, encoder features", Array(errors.values), T.self)
    }

    func testActivationsDouble() throws { try activations(fixture(), Double.self) }
    func testActivationsFloat() throws { try activations(fixture(), Float.self) }

    // MARK: EDM loss and its gradients

    func lossGradients<T: TensorScalar>(_ file: SafeTensorsFile, _: T.Type) throws {
        let net: UNet<T> = try network(file)
        let images = Variable<T>(try file.tensor("loss.images"), requiresGrad: true)
        let draws = EDMLoss.Draws<T>(
            sigma: try file.tensor("loss.sigma", as: Double.self).scalars,
            noise: try file.tensor("loss.noise"),
            dropLabel: try file.tensor("loss.drop", as: Double.self).scalars.map { $0 != 0 })
        XCTAssertEqual(draws.dropLabel, [false, true, false])
        let loss = EDMLoss()(Denoiser(net: net), images: images, classLabels: try file.tensor("loss.labels"), draws: draws)
        loss.backward()

        try compare(loss.value.reshaped([1]), file, "loss.value.\(tag(T.self))")
        var errors = [try compare(XCTUnwrap(images.grad, "dL/dx"), file, "loss.grad.images")]
        for (name, v) in zip(net.parameters.names, net.parameters.variables) {
            errors.append(try compare(XCTUnwrap(v.grad, "no gradient for \(name)"), file, "loss.grad.\(name)"))
        }
        let stored = file.tensors.keys.filter { $0.hasPrefix("loss.grad.model.") }.count
        XCTAssertEqual(stored, net.parameters.count, "one stored gradient per parameter")
        report("EDM loss gradients (\(net.parameters.count) parameters + images)", errors, T.self)
    }

    func testLossGradientsDouble() throws { try lossGradients(fixture(), Double.self) }
    func testLossGradientsFloat() throws { try lossGradients(fixture(), Float.self) }

    // MARK: Heun

    /// 5 deterministic Heun steps (NFE 9); the state after step i is the input of evaluation 2i,
    /// so recording the denoiser's inputs gives the whole trajectory.
    func heun<T: TensorScalar>(_ file: SafeTensorsFile, _: T.Type) throws {
        let D = Denoiser(net: try network(file, as: T.self))
        let sampler = EDMSampler(method: .heun, steps: 5)
        let expectedSigmas = try file.tensor("heun.sigmas", as: Double.self).scalars
        XCTAssertEqual(sampler.sigmas.count, expectedSigmas.count)
        for (a, b) in zip(sampler.sigmas, expectedSigmas) { XCTAssertEqual(a, b, accuracy: 1e-14 * max(b, 1e-300)) }

        let latents: Tensor<Double> = try file.tensor("heun.latents")
        let inner = D.samplingFunction(classLabels: try file.tensor("heun.labels", as: T.self))
        var inputs: [Tensor<Double>] = []
        let result = sampler.sample(latents: latents, churnNoise: { _ in
            XCTFail("the deterministic sampler asked for churn noise")
            return .zeros(latents.shape)
        }, denoise: { x, σ in
            inputs.append(x)
            return inner(x, σ)
        })
        XCTAssertEqual(result.nfe, 9)
        XCTAssertEqual(inputs.count, 9)
        XCTAssertEqual(inputs.first, latents * 80)

        let trajectory = try file.tensor("heun.\(tag(T.self)).x", as: Double.self)
        let n = latents.count
        func state(_ i: Int) -> Tensor<Double> {
            Tensor(shape: latents.shape, scalars: Array(trajectory.scalars[i * n ..< (i + 1) * n]))
        }
        var errors: [Double] = []
        for i in 0..<4 {
            let e = error(inputs[2 * (i + 1)], state(i), "state after step \(i + 1)")
            XCTAssertLessThanOrEqual(e, tolerance(T.self), "\(T.self) Heun: state after step \(i + 1), relative error \(e) (\(Self.hint))")
            errors.append(e)
        }
        let e = error(result.x, state(4), "final state")
        XCTAssertLessThanOrEqual(e, tolerance(T.self), "\(T.self) Heun: final state, relative error \(e) (\(Self.hint))")
        errors.append(e)
        report("Heun, 5 steps", errors, T.self)
    }

    func testHeunDouble() throws { try heun(fixture(), Double.self) }
    func testHeunFloat() throws { try heun(fixture(), Float.self) }

    // MARK: Converted checkpoints

    /// reference/convert_dmd2_bin.py (a `feedforward_model.`-prefixed state dict) and
    /// reference/convert_edm_pkl.py (a stand-in EDM pickle) outputs for a tiny network load
    /// strictly, carry the checkpoint metadata, and compute PyTorch's D.
    func testConvertedCheckpoints() throws {
        let file = try fixture()
        let expectedConfig = UNetConfig(
            resolution: 8, inChannels: 2, outChannels: 2, labelDim: 3, modelChannels: 4,
            channelMult: [1, 2], channelMultEmb: 2, numBlocks: 1, attnResolutions: [4],
            dropout: 0.10, labelDropout: 0)
        let x: Tensor<Double> = try file.tensor("convert.x")
        let sigma = try file.tensor("convert.sigma", as: Double.self).scalars
        let labels: Tensor<Double> = try file.tensor("convert.labels")
        var nets: [UNet<Double>] = []
        for (name, converter) in [("edm_tiny_from_bin", "convert_dmd2_bin.py"), ("edm_tiny_from_pkl", "convert_edm_pkl.py")] {
            let url = try resource(name)
            let raw = try SafeTensorsFile(contentsOf: url)
            XCTAssertEqual(raw.metadata["format"], EDMCheckpoint.format, name)
            XCTAssertEqual(raw.metadata["format_version"], EDMCheckpoint.formatVersion, name)
            XCTAssertEqual(raw.metadata["converter"], "reference/\(converter)", name)
            XCTAssertEqual(Set(raw.tensors.keys), Set(expectedConfig.layout.stateEntries.map(\.name)), "\(name): EDM's state dict")
            let loaded: LoadedCheckpoint<Double> = try EDMCheckpoint.load(from: url)
            XCTAssertEqual(loaded.net.config, expectedConfig, name)
            XCTAssertEqual(loaded.step, 0, name)
            let out = NoGrad.run { Denoiser(net: loaded.net)(Variable(x), sigma: sigma, classLabels: labels) }.value
            let e = try compare(out, file, "convert.out.f64")
            print("FixtureTests: \(name) D [Double]: relative error \(e)")
            let asFloat: LoadedCheckpoint<Float> = try EDMCheckpoint.load(from: url)
            let outFloat = NoGrad.run {
                Denoiser(net: asFloat.net)(Variable(x.converted(to: Float.self)), sigma: sigma, classLabels: labels.converted())
            }.value
            try compare(outFloat, file, "convert.out.f64")
            nets.append(loaded.net)
        }
        for name in nets[0].parameters.names {
            XCTAssertEqual(nets[0].parameters[name].value, nets[1].parameters[name].value, "\(name): .bin and .pkl conversions differ")
        }
    }

    /// A converted real checkpoint, when `DMD2_EDM_CHECKPOINT` names one (e.g. EDM's ImageNet-64
    /// teacher through reference/convert_edm_pkl.py): loads strictly in Float and D at σ = 80 on
    /// one image is finite. With `DMD2_EDM_REFERENCE` (convert_edm_pkl.py --reference), D must
    /// match the pickled module's own output (EDM's code) within 1e-4.
    func testConvertedCheckpointFromEnvironment() throws {
        let environment = ProcessInfo.processInfo.environment
        guard let path = environment["DMD2_EDM_CHECKPOINT"] else {
            throw XCTSkip("set DMD2_EDM_CHECKPOINT to a converted checkpoint to check it")
        }
        let loaded: LoadedCheckpoint<Float> = try EDMCheckpoint.load(from: URL(fileURLWithPath: path))
        let c = loaded.net.config
        print("FixtureTests: \(path): \(try EDMCheckpoint.configJSON(c)), \(c.parameterCount) parameters, step \(loaded.step ?? -1)")
        XCTAssertEqual(loaded.net.parameters.scalarCount, c.parameterCount)
        let denoiser = Denoiser(net: loaded.net)
        var rng = RandomGenerator(seed: 1)
        let z: Tensor<Float> = rng.normal([1, c.inChannels, c.resolution, c.resolution])
        let y: Tensor<Float>? = c.labelDim > 0 ? oneHot([0], count: c.labelDim) : nil
        let D = NoGrad.run { denoiser(Variable(z * 80), sigma: 80, classLabels: y) }.value
        XCTAssertTrue(D.scalars.allSatisfy(\.isFinite), "D(80·z; 80) has non-finite values")

        guard let referencePath = environment["DMD2_EDM_REFERENCE"] else { return }
        let reference = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: referencePath))
        let x: Tensor<Float> = try reference.tensor("x")
        let sigma = try reference.tensor("sigma", as: Double.self).scalars
        let labels: Tensor<Float>? = reference["labels"] == nil ? nil : try reference.tensor("labels")
        let out = NoGrad.run { denoiser(Variable(x), sigma: sigma, classLabels: labels) }.value
        let e = try compare(out, reference, "out")
        print("FixtureTests: D vs \(reference.metadata["module"] ?? "?") in \(referencePath) [Float]: relative error \(e)")
    }
}
