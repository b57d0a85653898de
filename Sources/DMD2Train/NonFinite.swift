// Stopping a training run at the first NaN or ±∞, with the step and the tensor named.
//
// A loop checks its loss, then every gradient, after the backward pass and before the
// optimiser touches anything, so the parameters and the last checkpoint are still good.
// After every update it checks the state the update wrote (weights, AdamW's moments, the EMA:
// `NonFinite.checkState`, one pass per tensor), and the same check runs before every
// checkpoint write, so a checkpoint holding a NaN or ±∞ is never written.
// Learning rates are checked in the network's precision before a run starts
// (`AdamWConfig.precisionProblem(in:)`): 1e39 is a finite Double but an infinite Float.
import DMD2Core

/// A NaN or ±∞ met during training: where (the step) and in what (the tensor's name).
public struct NonFiniteError: Error, CustomStringConvertible, Equatable {
    /// The step being taken (1-based: the step that would have produced checkpoint `step`).
    public var step: Int
    /// The tensor: a loss name, or `grad of <parameter>`.
    public var tensor: String
    /// Counts of the bad values.
    public var nanCount: Int
    public var infinityCount: Int
    /// When the values were met.
    public var phase: Phase

    public enum Phase: String, Sendable, Equatable {
        /// In a loss or gradient: nothing was updated.
        case beforeUpdate
        /// In the state an update wrote: the run stops, this step is neither logged nor saved.
        case afterUpdate
        /// In the state about to be saved: the checkpoint was not written.
        case beforeSave
    }

    public init(step: Int, tensor: String, nanCount: Int, infinityCount: Int, phase: Phase = .beforeUpdate) {
        self.step = step
        self.tensor = tensor
        self.nanCount = nanCount
        self.infinityCount = infinityCount
        self.phase = phase
    }

    public var description: String {
        let what = "non-finite values at step \(step) in \(tensor): \(nanCount) NaN, \(infinityCount) ±∞"
        switch phase {
        case .beforeUpdate: return "\(what); stopped before the update, so the parameters and the last checkpoint are intact"
        case .afterUpdate: return "\(what), written by the update; the run stops (lower the learning rate?); this step is not saved and the checkpoints on disk are intact"
        case .beforeSave: return "\(what); the checkpoint was not written, the checkpoints on disk are intact"
        }
    }
}

public enum NonFinite {
    /// Throws a `NonFiniteError` if `tensor` holds a NaN or ±∞.
    public static func check<T: TensorScalar>(_ tensor: Tensor<T>, name: String, step: Int,
                                              phase: NonFiniteError.Phase = .beforeUpdate) throws {
        guard !tensor.isFinite else { return }
        let nan = tensor.scalars.reduce(0) { $0 + ($1.isNaN ? 1 : 0) }
        let infinite = tensor.scalars.reduce(0) { $0 + ($1.isInfinite ? 1 : 0) }
        throw NonFiniteError(step: step, tensor: name, nanCount: nan, infinityCount: infinite, phase: phase)
    }

    /// The guard on a run's state, after every update and before every checkpoint write: the
    /// optimiser's parameters (`<prefix><name>`), its moments (`exp_avg of …`, `exp_avg_sq of …`)
    /// and, when given, the EMA of the same parameters (`EMA of …`); one pass per tensor,
    /// throwing a `NonFiniteError` for the first bad one. (The one function to fuse into the
    /// optimiser's own pass.)
    public static func checkState<T: TensorScalar>(_ optimizer: AdamW<T>, ema: [Tensor<T>]? = nil, prefix: String = "",
                                                   step: Int, phase: NonFiniteError.Phase) throws {
        for (i, name) in optimizer.names.enumerated() {
            try check(optimizer.parameters[i].value, name: "\(prefix)\(name)", step: step, phase: phase)
            try check(optimizer.expAvg[i], name: "exp_avg of \(prefix)\(name)", step: step, phase: phase)
            try check(optimizer.expAvgSq[i], name: "exp_avg_sq of \(prefix)\(name)", step: step, phase: phase)
        }
        if let ema {
            precondition(ema.count == optimizer.names.count, "NonFinite.checkState: \(ema.count) EMA tensors for \(optimizer.names.count) parameters")
            for (name, value) in zip(optimizer.names, ema) { try check(value, name: "EMA of \(prefix)\(name)", step: step, phase: phase) }
        }
    }

    /// Throws for the first parameter (in order) whose gradient holds a NaN or ±∞, naming it
    /// `grad of <name>`. Parameters without a gradient are skipped.
    public static func checkGradients<T: TensorScalar>(names: [String], parameters: [Variable<T>], step: Int) throws {
        precondition(names.count == parameters.count, "NonFinite.checkGradients: \(names.count) names for \(parameters.count) parameters")
        for (name, p) in zip(names, parameters) {
            if let g = p.grad { try check(g, name: "grad of \(name)", step: step) }
        }
    }
}

extension AdamWConfig {
    /// Why this optimiser cannot run in `T` (nil: it can): the learning rate, the largest step
    /// size lr/(1 − β₁), the decay factor 1 − lr·wd and eps must be finite in T, and eps > 0
    /// must not round to 0. E.g. lr 1e39 is a finite Double but +∞ as a Float.
    public func precisionProblem<T: TensorScalar>(in _: T.Type) -> String? {
        let name = T.dtypeTag == "F32" ? "Float (F32, largest \(Float.greatestFiniteMagnitude))" : T.dtypeTag
        func finite(_ x: Double) -> Bool { T(x).isFinite }
        if !finite(learningRate) { return "learning rate \(learningRate) is not finite in \(name)" }
        let largestStep = learningRate / (1 - beta1)
        if !finite(largestStep) { return "learning rate \(learningRate) gives a first step size lr/(1 − β₁) = \(largestStep), not finite in \(name)" }
        if !finite(1 - learningRate * weightDecay) { return "learning rate \(learningRate) × weight decay \(weightDecay) is not finite in \(name)" }
        if eps > 0 && !(T(eps) > 0) { return "eps \(eps) rounds to 0 in \(name)" }
        return nil
    }
}
