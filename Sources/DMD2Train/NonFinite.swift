// Stopping a training run at the first NaN or ±∞, with the step and the tensor named.
//
// A loop checks its loss, then every gradient, after the backward pass and before the
// optimiser touches anything, so the parameters and the last checkpoint are still good.
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

    public init(step: Int, tensor: String, nanCount: Int, infinityCount: Int) {
        self.step = step
        self.tensor = tensor
        self.nanCount = nanCount
        self.infinityCount = infinityCount
    }

    public var description: String {
        "non-finite values at step \(step) in \(tensor): \(nanCount) NaN, \(infinityCount) ±∞; stopped before the update, so the parameters and the last checkpoint are intact"
    }
}

public enum NonFinite {
    /// Throws a `NonFiniteError` if `tensor` holds a NaN or ±∞.
    public static func check<T: TensorScalar>(_ tensor: Tensor<T>, name: String, step: Int) throws {
        guard !tensor.isFinite else { return }
        let nan = tensor.scalars.reduce(0) { $0 + ($1.isNaN ? 1 : 0) }
        let infinite = tensor.scalars.reduce(0) { $0 + ($1.isInfinite ? 1 : 0) }
        throw NonFiniteError(step: step, tensor: name, nanCount: nan, infinityCount: infinite)
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
