// AdamW: a hand-computed two-step update, PyTorch's trajectory on a tiny quadratic, decoupled
// weight decay, the warm-up schedule, skipped parameters, and a state round trip that resumes
// bitwise identically; strict state loading.
import DMD2Core
import DMD2Train
import Foundation
import SafeTensors
import DMD2TestSupport
import XCTest

final class AdamWTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    /// One scalar parameter p₀ = 1, lr 0.1, β (0.9, 0.999), ε 1e-8, wd 0.01, gradients 0.5 then −0.25.
    /// Step 1: p = 1·(1 − 0.001) = 0.999; m = 0.05, v = 2.5e-4; m̂ = 0.5, v̂ = 0.25;
    ///         p = 0.999 − 0.1·0.5/(0.5 + 1e-8) = 0.899000002.
    /// Step 2: p = 0.899000002·0.999; m = 0.9·0.05 + 0.1·(−0.25) = 0.02;
    ///         v = 0.999·2.5e-4 + 0.001·0.0625 = 3.1225e-4; m̂ = 0.02/0.19, v̂ = 3.1225e-4/0.001999;
    ///         p = 0.898101001998 − 0.1·m̂/(√v̂ + 1e-8) = 0.87146729870584…
    func testHandComputedTwoSteps() {
        let p = Variable(Tensor<Double>(shape: [1], scalars: [1]), requiresGrad: true, name: "p")
        let opt = AdamW(parameters: [("p", p)], config: AdamWConfig(learningRate: 0.1, weightDecay: 0.01))
        p.grad = Tensor(shape: [1], scalars: [0.5])
        XCTAssertEqual(opt.step(), 0.1)
        XCTAssertEqual(p.value.scalars[0], 0.899000002, accuracy: 1e-15)
        XCTAssertEqual(opt.expAvg[0].scalars[0], 0.05, accuracy: 2e-15 * 0.05)
        XCTAssertEqual(opt.expAvgSq[0].scalars[0], 2.5e-4, accuracy: 2e-15 * 2.5e-4)
        p.grad = Tensor(shape: [1], scalars: [-0.25])
        opt.step()
        XCTAssertEqual(p.value.scalars[0], 0.8714672987058463, accuracy: 1e-15)
        XCTAssertEqual(opt.expAvg[0].scalars[0], 0.02, accuracy: 2e-15 * 0.02)
        XCTAssertEqual(opt.expAvgSq[0].scalars[0], 3.1225e-4, accuracy: 2e-15 * 3.1225e-4)
        XCTAssertEqual(opt.stepCount, 2)   // (tolerances: a few ulps, as 1 − β rounds)
        XCTAssertEqual(opt.parameterSteps, [2])
    }

    /// PyTorch 2.13 `torch.optim.AdamW(lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)`
    /// in float64 with `LambdaLR(lambda e: min(1, (e + 1)/3))` (our warm-up of 3 steps), on
    /// L = ½·Σ aᵢ(xᵢ − cᵢ)², a = [1, 4, 0.25], c = [0.3, 0.1, −1], x₀ = [1, −2, 0.5]:
    ///   x = torch.tensor([1., -2., .5], requires_grad=True); opt = AdamW([x], ...); sched = LambdaLR(...)
    ///   for t in range(6): opt.zero_grad(); (0.5*(a*(x-c)**2).sum()).backward(); opt.step(); sched.step()
    func testMatchesPyTorchOnAQuadratic() {
        let expected: [[Double]] = [
            [0.9663333338095238, -1.9660000000396827, 0.4665000008888889],
            [0.8991282850941446, -1.8980532500756768, 0.39956583140248003],
            [0.7989700992918025, -1.7963497293382538, 0.299448341062151],
            [0.700357736696657, -1.6950702315460968, 0.19991428325303418],
            [0.604221809887292, -1.5943663086602993, 0.10120638475647864],
            [0.5116443939270061, -1.4943871806420723, 0.0035723115703064356],
        ]
        let a = Tensor<Double>(shape: [3], scalars: [1, 4, 0.25]), c = Tensor<Double>(shape: [3], scalars: [0.3, 0.1, -1])
        let x = Variable(Tensor<Double>(shape: [3], scalars: [1, -2, 0.5]), requiresGrad: true)
        let opt = AdamW(parameters: [("x", x)], config: AdamWConfig(learningRate: 0.1, weightDecay: 0.01, warmUpSteps: 3))
        for row in expected {
            x.grad = a * (x.value - c)
            opt.step()
            for (got, want) in zip(x.value.scalars, row) { XCTAssertEqual(got, want, accuracy: 1e-14 * max(1, abs(want))) }
        }
        let m: [Double] = [0.2355998373486703, -3.55923408685879, 0.15254678844050396]
        let v: [Double] = [0.0017888109902903923, 0.3567750398729518, 0.000666869982242801]
        for i in 0..<3 {
            XCTAssertEqual(opt.expAvg[0].scalars[i], m[i], accuracy: 1e-14 * abs(m[i]))
            XCTAssertEqual(opt.expAvgSq[0].scalars[i], v[i], accuracy: 1e-14 * abs(v[i]))
        }

        // The Float path follows the Double one to Float precision.
        let x32 = Variable(Tensor<Float>(shape: [3], scalars: [1, -2, 0.5]), requiresGrad: true)
        let opt32 = AdamW(parameters: [("x", x32)], config: AdamWConfig(learningRate: 0.1, weightDecay: 0.01, warmUpSteps: 3))
        for _ in expected {
            x32.grad = a.converted(to: Float.self) * (x32.value - c.converted(to: Float.self))
            opt32.step()
        }
        for (got, want) in zip(x32.value.scalars, expected.last!) { XCTAssertEqual(Double(got), want, accuracy: 1e-5) }
    }

    /// With a zero gradient the Adam step is 0/(0 + ε) = 0, leaving the decay alone:
    /// p ← p·(1 − lr·wd) each step.
    func testDecoupledWeightDecay() {
        let p = Variable(Tensor<Double>(shape: [2], scalars: [2, -4]), requiresGrad: true)
        let opt = AdamW(parameters: [("p", p)], config: AdamWConfig(learningRate: 0.1, weightDecay: 0.5))
        for _ in 0..<2 {
            p.grad = Tensor.zeros([2])
            opt.step()
        }
        XCTAssertEqual(p.value.scalars[0], 2 * 0.95 * 0.95, accuracy: 1e-15)
        XCTAssertEqual(p.value.scalars[1], -4 * 0.95 * 0.95, accuracy: 1e-15)

        // Without weight decay the same gradient-free steps leave p exactly as it was.
        let q = Variable(Tensor<Double>(shape: [1], scalars: [3]), requiresGrad: true)
        let plain = AdamW(parameters: [("q", q)], config: AdamWConfig(learningRate: 0.1, weightDecay: 0))
        q.grad = Tensor.zeros([1])
        plain.step()
        XCTAssertEqual(q.value.scalars, [3])
    }

    func testWarmUpSchedule() {
        let config = AdamWConfig(learningRate: 1e-3, warmUpSteps: 4)
        XCTAssertEqual((1...6).map { config.learningRate(atStep: $0) }, [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
        XCTAssertEqual(AdamWConfig(learningRate: 1e-3).learningRate(atStep: 1), 1e-3)

        // The first update of a warm-up moves p by lr₁ = lr/W (|m̂/√v̂| = 1 at the first step).
        let p = Variable(Tensor<Double>(shape: [1], scalars: [0]), requiresGrad: true)
        let opt = AdamW(parameters: [("p", p)], config: AdamWConfig(learningRate: 1e-3, eps: 1e-300, weightDecay: 0, warmUpSteps: 4))
        XCTAssertEqual(opt.nextLearningRate, 2.5e-4)
        p.grad = Tensor(shape: [1], scalars: [7])
        XCTAssertEqual(opt.step(), 2.5e-4)
        XCTAssertEqual(p.value.scalars[0], -2.5e-4, accuracy: 1e-18)
    }

    /// The cool-down: 1 up to its start S, then (E − t + 1)/(E − S) down to 1/(E − S) at the last
    /// step E, 0 after; it multiplies the warm-up ramp where the two overlap.
    func testCoolDownSchedule() {
        let config = AdamWConfig(learningRate: 1e-3, warmUpSteps: 2, coolDown: LinearCoolDown(last: 4, of: 8))
        XCTAssertEqual(config.coolDown, LinearCoolDown(start: 4, end: 8))
        let expected = [5e-4, 1e-3, 1e-3, 1e-3, 1e-3, 7.5e-4, 5e-4, 2.5e-4, 0]
        for (t, want) in zip(1...9, expected) { XCTAssertEqual(config.learningRate(atStep: t), want, accuracy: 1e-18, "step \(t)") }
        let overlapping = AdamWConfig(learningRate: 1e-3, warmUpSteps: 4, coolDown: LinearCoolDown(start: 0, end: 2))
        XCTAssertEqual(overlapping.learningRate(atStep: 1), 1e-3 / 4 * 1, accuracy: 1e-18)
        XCTAssertEqual(overlapping.learningRate(atStep: 2), 2e-3 / 4 * 0.5, accuracy: 1e-18)
        XCTAssertFalse(LinearCoolDown(start: 3, end: 3).isValid)
        XCTAssertFalse(LinearCoolDown(start: -1, end: 3).isValid)

        // A schedule, not a hyper-parameter: state saved without one restores into an optimiser
        // with one (a cool-down added on resume), and the file records it for information.
        let w = Variable(Tensor<Float>.zeros([2]), requiresGrad: true)
        let plain = AdamW(parameters: [("w", w)], config: AdamWConfig(learningRate: 1e-3))
        let cooled = AdamW(parameters: [("w", w)], config: AdamWConfig(learningRate: 1e-3, coolDown: LinearCoolDown(start: 0, end: 5)))
        XCTAssertNoThrow(try cooled.restore(plain.stateFile()))
        XCTAssertNil(plain.stateFile().metadata["cool_down"])
        XCTAssertEqual(cooled.stateFile().metadata["cool_down"], "0-5")
    }

    /// A parameter without a gradient is neither moved nor decayed, and its step count stays.
    func testParametersWithoutGradientAreSkipped() {
        let a = Variable(Tensor<Double>(shape: [1], scalars: [1]), requiresGrad: true)
        let b = Variable(Tensor<Double>(shape: [1], scalars: [1]), requiresGrad: true)
        let opt = AdamW(parameters: [("a", a), ("b", b)], config: AdamWConfig(learningRate: 0.1, weightDecay: 0.1))
        a.grad = Tensor(shape: [1], scalars: [1])
        opt.step()
        XCTAssertEqual(b.value.scalars, [1])
        XCTAssertNotEqual(a.value.scalars, [1])
        XCTAssertEqual(opt.parameterSteps, [1, 0])
        XCTAssertEqual(opt.expAvg[1].scalars, [0])
        opt.zeroGrad()
        XCTAssertNil(a.grad)
    }

    /// Run 3 steps, save, restore into fresh parameters and optimiser, run 3 more on both:
    /// every parameter and moment is bitwise equal.
    func testStateRoundTripResumesBitwise() throws {
        let shapes = [[3, 2], [4]]
        func gradients(_ t: Int) -> [Tensor<Float>] {
            var rng = RandomGenerator(seed: UInt64(100 + t))
            return shapes.map { rng.normal($0) }
        }
        var rng = RandomGenerator(seed: 7)
        let initial: [Tensor<Float>] = shapes.map { rng.normal($0) }
        let config = AdamWConfig(learningRate: 0.05, weightDecay: 0.01, warmUpSteps: 2)
        let original = initial.map { Variable($0, requiresGrad: true) }
        let opt = AdamW(parameters: [("w", original[0]), ("b", original[1])], config: config)
        for t in 0..<3 {
            for (p, g) in zip(original, gradients(t)) { p.grad = g }
            opt.step()
        }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("adamw-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try opt.save(to: url)
        let file = try SafeTensorsFile(contentsOf: url)
        XCTAssertEqual(Set(file.tensors.keys), ["w.exp_avg", "w.exp_avg_sq", "w.step", "b.exp_avg", "b.exp_avg_sq", "b.step"])
        XCTAssertEqual(file.metadata["step"], "3")
        XCTAssertEqual(file.metadata["dtype"], "F32")
        XCTAssertEqual(file.metadata["lr"], "0.05")
        XCTAssertEqual(file["w.exp_avg"]?.dtype, .F32)

        let resumed = original.map { Variable($0.value, requiresGrad: true) }
        let opt2 = AdamW(parameters: [("w", resumed[0]), ("b", resumed[1])], config: config)
        try opt2.restore(from: url)
        XCTAssertEqual(opt2.stepCount, 3)
        for t in 3..<6 {
            for (p, g) in zip(original, gradients(t)) { p.grad = g }
            for (p, g) in zip(resumed, gradients(t)) { p.grad = g }
            opt.step()
            opt2.step()
        }
        for i in 0..<2 {
            XCTAssertEqual(original[i].value.scalars.map(\.bitPattern), resumed[i].value.scalars.map(\.bitPattern))
            XCTAssertEqual(opt.expAvg[i].scalars.map(\.bitPattern), opt2.expAvg[i].scalars.map(\.bitPattern))
            XCTAssertEqual(opt.expAvgSq[i].scalars.map(\.bitPattern), opt2.expAvgSq[i].scalars.map(\.bitPattern))
        }
        XCTAssertEqual(opt.parameterSteps, opt2.parameterSteps)
    }

    func testStrictRestore() throws {
        let w = Variable(Tensor<Float>.zeros([2, 2]), requiresGrad: true)
        let config = AdamWConfig(learningRate: 1e-3)
        let good = AdamW(parameters: [("w", w)], config: config).stateFile()
        func expect(_ file: SafeTensorsFile, _ kind: CheckpointError.Kind, key: String, into config: AdamWConfig = config,
                    line: UInt = #line) {
            let fresh = AdamW(parameters: [("w", Variable(Tensor<Float>.zeros([2, 2]), requiresGrad: true))], config: config)
            XCTAssertThrowsError(try fresh.restore(file), line: line) { error in
                guard let e = error as? CheckpointError else { return XCTFail("\(error)", line: line) }
                XCTAssertEqual(e.kind, kind, "\(e)", line: line)
                XCTAssertEqual(e.key, key, line: line)
                XCTAssertTrue(e.description.contains(key), e.description, line: line)
            }
        }
        var missing = good
        missing["w.exp_avg_sq"] = nil
        expect(missing, .missingKey, key: "w.exp_avg_sq")
        var extra = good
        extra["v.exp_avg"] = Tensor<Float>.zeros([1]).safeTensor()
        expect(extra, .unexpectedKey, key: "v.exp_avg")
        var misshapen = good
        misshapen["w.exp_avg"] = Tensor<Float>.zeros([4]).safeTensor()
        expect(misshapen, .shapeMismatch, key: "w.exp_avg")
        var wrongType = good
        wrongType["w.exp_avg"] = Tensor<Double>.zeros([2, 2]).safeTensor()
        expect(wrongType, .dtypeMismatch, key: "w.exp_avg")
        expect(good, .hyperParameterMismatch, key: "lr", into: AdamWConfig(learningRate: 2e-3))
        expect(good, .hyperParameterMismatch, key: "weight_decay", into: AdamWConfig(learningRate: 1e-3, weightDecay: 0))
        var noStep = good
        noStep.metadata["step"] = nil
        expect(noStep, .badMetadata, key: "step")
        var foreign = good
        foreign.metadata["format"] = "swift-dmd2.edm-unet"
        expect(foreign, .badMetadata, key: "format")
        // A Double optimiser refuses a Float state by its dtype metadata.
        let double = AdamW(parameters: [("w", Variable(Tensor<Double>.zeros([2, 2]), requiresGrad: true))], config: config)
        XCTAssertThrowsError(try double.restore(good)) { XCTAssertEqual(($0 as? CheckpointError)?.kind, .dtypeMismatch) }
    }
}
