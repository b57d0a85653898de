// AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization") as PyTorch's
// `torch.optim.AdamW` computes it, over an ordered list of named `Variable` leaves.
//
// For each parameter p with gradient g at its k-th update (k = 1, 2, …), with learning rate
// lr_t from the schedule:
//   p ← p·(1 − lr_t·wd)                                  decoupled weight decay
//   m ← m + (g − m)·(1 − β₁)                             PyTorch's `exp_avg.lerp_(g, 1 − β₁)`
//   v ← v·β₂ + (1 − β₂)·g·g                              `exp_avg_sq.mul_(β₂).addcmul_(g, g, 1 − β₂)`
//   p ← p − (lr_t/(1 − β₁ᵏ))·m/(√v/√(1 − β₂ᵏ) + ε)      bias-corrected step, ε outside the root
// Schedule (linear warm-up, then constant, then an optional linear cool-down): at the
// optimiser's t-th `step()` call,
//   lr_t = lr·min(1, t/W)·c_t     (W = warmUpSteps; W = 0: constant)
//   c_t = 1, or with a cool-down over steps S < t ≤ E: (E − t + 1)/(E − S), so the rate falls in
//   equal steps from lr at t = S to lr/(E − S) at the last step E (the "stable, then decay"
//   schedule; the weights stop moving noisily at a high rate before the run ends)
// so the first step already moves (diffusers' "constant_with_warmup", used by DMD2, evaluates
// the same ramp one step earlier, (t − 1)/W, and so makes a zero first step).
//
// Precision: m, v and p stay in the parameter's type T (Float training keeps Float state, as
// PyTorch does for float32 parameters); the scalars (bias corrections, lr_t) are computed in
// Double and rounded once to T. Weight decay applies to every parameter (no exclusions for
// biases or norms, PyTorch's default with one parameter group).
// The update runs as one fused, in-place SIMD pass per parameter on the host storage
// (FusedUpdate.swift), not through the backend's primitives: the same operations in the same
// order, each rounded to T, so bitwise what the `Tensor` composition
//   m' = m + (g − m)·(1 − β₁);  v' = v·β₂ + (g·g)·(1 − β₂);
//   p' = p·(1 − lr·wd) − (m' / (√v'·(1/√(1 − β₂ᵏ)) + ε))·(lr/(1 − β₁ᵏ))
// computes (each `·scalar` being the backend's affine x·s + 0), as AdamWTests checks.
//
// State (`stateFile()` / `restore(from:)`): a safetensors file with, per parameter,
// `<name>.exp_avg` and `<name>.exp_avg_sq` (T's dtype, the parameter's shape) and `<name>.step`
// (I64 scalar, k), plus metadata: format "swift-dmd2.adamw", format_version "1", step (calls
// to `step()`), dtype, lr, beta1, beta2, eps, weight_decay, warm_up_steps. Restoring is strict:
// a missing, unexpected, mis-shaped or mis-typed key, a NaN or ±∞ moment, or different
// hyper-parameters, is a `CheckpointError` (DMD2Core) naming the key.
import DMD2Core
import Foundation
import SafeTensors

/// AdamW's hyper-parameters.
public struct AdamWConfig: Codable, Equatable, Sendable {
    /// Peak learning rate (reached after the warm-up).
    public var learningRate: Double
    public var beta1: Double
    public var beta2: Double
    /// Added to √v̂ (outside the root, as PyTorch).
    public var eps: Double
    /// Decoupled weight decay coefficient: p ← p·(1 − lr·wd) before each step.
    public var weightDecay: Double
    /// Steps of linear learning-rate warm-up (0: none).
    public var warmUpSteps: Int
    /// A linear cool-down over the optimiser steps start < t ≤ end (nil: none; see the file header).
    /// It is a schedule, like the run's length: a resumed run may add or move it, so a restored
    /// state is not compared on it.
    public var coolDown: LinearCoolDown?

    public init(learningRate: Double, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8,
                weightDecay: Double = 0.01, warmUpSteps: Int = 0, coolDown: LinearCoolDown? = nil) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
        self.warmUpSteps = warmUpSteps
        self.coolDown = coolDown
    }

    /// Traps with the offending value if a hyper-parameter is out of range.
    public func validate() {
        precondition(learningRate >= 0 && learningRate.isFinite, "AdamW: learning rate \(learningRate) must be finite and ≥ 0")
        precondition((0..<1).contains(beta1) && (0..<1).contains(beta2), "AdamW: betas (\(beta1), \(beta2)) must lie in [0, 1)")
        precondition(eps > 0 && eps.isFinite, "AdamW: eps \(eps) must be finite and > 0")
        precondition(weightDecay >= 0 && weightDecay.isFinite, "AdamW: weight decay \(weightDecay) must be finite and ≥ 0")
        precondition(warmUpSteps >= 0, "AdamW: warm-up steps \(warmUpSteps) must be ≥ 0")
        if let coolDown { precondition(coolDown.isValid, "AdamW: cool-down \(coolDown) must have 0 ≤ start < end") }
    }

    /// lr_t at the t-th call of `step()` (t ≥ 1): lr·min(1, t/W)·c_t (the file header).
    public func learningRate(atStep t: Int) -> Double {
        precondition(t >= 1, "AdamWConfig.learningRate(atStep:): steps count from 1, got \(t)")
        var lr = learningRate
        if warmUpSteps > 0, t < warmUpSteps { lr = learningRate * Double(t) / Double(warmUpSteps) }
        if let coolDown { lr *= coolDown.factor(atStep: t) }
        return lr
    }
}

/// A linear learning-rate cool-down over the optimiser steps start < t ≤ end: the factor
/// c_t = (end − t + 1)/(end − start) there, 1 before, 0 after end.
public struct LinearCoolDown: Codable, Equatable, Sendable, CustomStringConvertible {
    public var start: Int
    public var end: Int

    public init(start: Int, end: Int) {
        self.start = start
        self.end = end
    }

    /// The cool-down over the last `steps` of a run of `total` steps.
    public init(last steps: Int, of total: Int) { self.init(start: total - steps, end: total) }

    public var isValid: Bool { start >= 0 && end > start }

    public func factor(atStep t: Int) -> Double {
        guard t > start else { return 1 }
        guard t <= end else { return 0 }
        return Double(end - t + 1) / Double(end - start)
    }

    public var description: String { "steps \(start + 1)…\(end)" }
}

/// AdamW over named parameters (see the file header for the update and the state format).
///
/// ```swift
/// let opt = AdamW(parameters: zip(names, leaves).map { ($0, $1) }, config: AdamWConfig(learningRate: 2e-4))
/// loss.backward()
/// opt.step()          // consumes every .grad (parameters with nil grad are skipped)
/// opt.zeroGrad()
/// ```
public final class AdamW<T: TensorScalar> {
    public let names: [String]
    public let parameters: [Variable<T>]
    public let config: AdamWConfig
    /// Calls to `step()` so far (drives the learning-rate schedule).
    public private(set) var stepCount: Int
    /// m per parameter (PyTorch's `exp_avg`), in parameter order.
    public private(set) var expAvg: [Tensor<T>]
    /// v per parameter (`exp_avg_sq`).
    public private(set) var expAvgSq: [Tensor<T>]
    /// k per parameter: updates it has received (parameters without a gradient are not updated).
    public private(set) var parameterSteps: [Int]

    public static var format: String { "swift-dmd2.adamw" }
    public static var formatVersion: String { "1" }

    /// An optimiser with zero state for `parameters` (unique names, in a fixed order).
    public init(parameters: [(name: String, variable: Variable<T>)], config: AdamWConfig) {
        config.validate()
        precondition(Set(parameters.map(\.name)).count == parameters.count, "AdamW: parameter names must be unique")
        self.names = parameters.map(\.name)
        self.parameters = parameters.map(\.variable)
        self.config = config
        self.stepCount = 0
        self.expAvg = parameters.map { Tensor.zeros($0.variable.shape) }
        self.expAvgSq = parameters.map { Tensor.zeros($0.variable.shape) }
        self.parameterSteps = [Int](repeating: 0, count: parameters.count)
    }

    /// The learning rate the next `step()` will use.
    public var nextLearningRate: Double { config.learningRate(atStep: stepCount + 1) }

    /// One AdamW update of every parameter that has a gradient; returns the learning rate used.
    /// Gradients are read, not cleared (call `zeroGrad()`).
    @discardableResult
    public func step() -> Double {
        stepCount += 1
        let lr = config.learningRate(atStep: stepCount)
        let β1 = config.beta1, β2 = config.beta2
        for i in parameters.indices {
            let p = parameters[i]
            guard let g = p.grad else { continue }
            precondition(g.shape == p.shape, "AdamW: gradient of '\(names[i])' has shape \(g.shape), parameter \(p.shape)")
            parameterSteps[i] += 1
            let k = Double(parameterSteps[i])
            let stepSize = lr / (1 - Double.pow(β1, k))
            let biasCorrection2Root = (1 - Double.pow(β2, k)).squareRoot()
            let scalars = AdamWScalars<Double>(
                decay: 1 - lr * config.weightDecay, decays: config.weightDecay != 0,
                oneMinusBeta1: 1 - β1, beta2: β2, oneMinusBeta2: 1 - β2,
                inverseBiasCorrection2Root: 1 / biasCorrection2Root, eps: config.eps, stepSize: stepSize)
            // One fused pass over p, m and v in place (FusedUpdate.swift); bitwise the update
            // of the file header as the `Tensor` composition computed it.
            g.withUnsafeBufferPointer { gs in
                p.value.withUnsafeMutableBufferPointer { ps in
                    expAvg[i].withUnsafeMutableBufferPointer { ms in
                        expAvgSq[i].withUnsafeMutableBufferPointer { vs in
                            FusedUpdate.adamW(ps, ms, vs, gs, scalars)
                        }
                    }
                }
            }
        }
        return lr
    }

    /// Drop every parameter's gradient.
    public func zeroGrad() { for p in parameters { p.zeroGrad() } }

    // MARK: State

    /// The state as a safetensors file (keys and metadata in the file header).
    public func stateFile() -> SafeTensorsFile {
        var metadata = hyperParameterMetadata
        metadata["format"] = Self.format
        metadata["format_version"] = Self.formatVersion
        metadata["step"] = String(stepCount)
        // For information only (a schedule, not compared on restore).
        if let c = config.coolDown { metadata["cool_down"] = "\(c.start)-\(c.end)" }
        var file = SafeTensorsFile(metadata: metadata)
        for i in names.indices {
            file["\(names[i]).exp_avg"] = expAvg[i].safeTensor()
            file["\(names[i]).exp_avg_sq"] = expAvgSq[i].safeTensor()
            file["\(names[i]).step"] = try! SafeTensor([Int64(parameterSteps[i])], shape: [])
        }
        return file
    }

    /// Write the state to `url` atomically.
    public func save(to url: URL) throws { try stateFile().write(to: url) }

    /// Replace the state with the one in `url` (strict, see the file header).
    public func restore(from url: URL) throws { try restore(SafeTensorsFile(contentsOf: url)) }

    /// Replace the state with the one in `file`. Nothing changes when it throws.
    public func restore(_ file: SafeTensorsFile) throws {
        let meta = file.metadata
        guard meta["format"] == Self.format else {
            throw CheckpointError(.badMetadata, key: "format", "metadata 'format' is \(meta["format"].map { "'\($0)'" } ?? "absent"), expected '\(Self.format)'")
        }
        guard meta["format_version"] == Self.formatVersion else {
            throw CheckpointError(.badMetadata, key: "format_version", "metadata 'format_version' is \(meta["format_version"] ?? "absent"), expected \(Self.formatVersion)")
        }
        for (key, expected) in hyperParameterMetadata.sorted(by: { $0.key < $1.key }) where meta[key] != expected {
            throw CheckpointError(key == "dtype" ? .dtypeMismatch : .hyperParameterMismatch, key: key,
                                      "metadata '\(key)' is \(meta[key] ?? "absent"), this optimiser has \(expected)")
        }
        guard let s = meta["step"], let step = Int(s), step >= 0 else {
            throw CheckpointError(.badMetadata, key: "step", "metadata 'step' is \(meta["step"] ?? "absent"), not a count")
        }
        let known = Set(names.flatMap { ["\($0).exp_avg", "\($0).exp_avg_sq", "\($0).step"] })
        for key in file.tensors.keys.sorted() where !known.contains(key) {
            throw CheckpointError(.unexpectedKey, key: key, "unexpected key '\(key)': no parameter of this optimiser has it")
        }
        var m: [Tensor<T>] = [], v: [Tensor<T>] = [], steps: [Int] = []
        for (name, p) in zip(names, parameters) {
            m.append(try moment("\(name).exp_avg", shape: p.shape, in: file))
            v.append(try moment("\(name).exp_avg_sq", shape: p.shape, in: file))
            let key = "\(name).step"
            guard let record = file[key] else { throw CheckpointError(.missingKey, key: key, "missing key '\(key)'") }
            guard record.dtype == .I64, record.shape == [], let k = try? record.int64s().first, k >= 0, k <= step else {
                throw CheckpointError(.badMetadata, key: key, "key '\(key)' must be an I64 scalar in 0…\(step), got \(record.dtype.rawValue) \(record.shape)")
            }
            steps.append(Int(k))
        }
        stepCount = step
        expAvg = m
        expAvgSq = v
        parameterSteps = steps
    }

    private func moment(_ key: String, shape: [Int], in file: SafeTensorsFile) throws -> Tensor<T> {
        guard let record = file[key] else { throw CheckpointError(.missingKey, key: key, "missing key '\(key)' (shape \(shape))") }
        guard record.shape == shape else {
            throw CheckpointError(.shapeMismatch, key: key, "key '\(key)' has shape \(record.shape), expected \(shape)")
        }
        guard record.dtype.rawValue == T.dtypeTag else {
            throw CheckpointError(.dtypeMismatch, key: key, "key '\(key)' is \(record.dtype.rawValue), this optimiser keeps \(T.dtypeTag)")
        }
        let value = try Tensor<T>(record)
        try CheckpointError.checkFinite(value, key: key)                // garbage bytes read as NaN
        return value
    }

    /// Hyper-parameters and dtype as metadata strings (Double's `description` round-trips exactly).
    private var hyperParameterMetadata: [String: String] {
        [
            "dtype": T.dtypeTag,
            "lr": String(config.learningRate), "beta1": String(config.beta1), "beta2": String(config.beta2),
            "eps": String(config.eps), "weight_decay": String(config.weightDecay),
            "warm_up_steps": String(config.warmUpSteps),
        ]
    }
}
