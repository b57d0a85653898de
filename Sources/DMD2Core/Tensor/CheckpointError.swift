// The one error for a tensor file that does not fit what reads it: a network checkpoint
// (EDM's keys), an optimiser state, a GAN head. Every violation names the tensor or metadata key.

/// A checkpoint (network, optimiser state) that does not fit the model or optimiser reading it.
public struct CheckpointError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable, Equatable {
        case missingKey, unexpectedKey, shapeMismatch, dtypeMismatch, badMetadata
        /// A network's `resample_filter` buffer that is not the 2×2 average.
        case badResampleFilter
        /// A network file without a config where none was given, or one that differs from it.
        case missingConfig, configMismatch
        /// An optimiser state saved with other hyper-parameters.
        case hyperParameterMismatch
        /// A tensor holding NaN or ±∞ (a corrupt file, or weights of a diverged run).
        case nonFinite
    }
    public var kind: Kind
    /// The tensor or metadata key concerned.
    public var key: String
    public var message: String

    public init(_ kind: Kind, key: String, _ message: String) {
        self.kind = kind
        self.key = key
        self.message = message
    }

    public var description: String { "checkpoint: \(message)" }

    /// Throws `.nonFinite` naming `key` unless every value of `tensor` is finite (one pass; the
    /// counts are taken only on failure).
    public static func checkFinite<T: TensorScalar>(_ tensor: Tensor<T>, key: String) throws {
        guard !tensor.isFinite else { return }
        var nan = 0, infinite = 0
        for x in tensor.scalars { if x.isNaN { nan += 1 } else if x.isInfinite { infinite += 1 } }
        throw CheckpointError(.nonFinite, key: key, "key '\(key)' holds \(nan) NaN and \(infinite) ±∞ of \(tensor.count) values")
    }
}
