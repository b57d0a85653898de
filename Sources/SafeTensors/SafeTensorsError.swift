// SafeTensorsError.swift — the single error type thrown by this module: a category for code
// to match on, plus a message that names the problem (file, tensor, expected vs found).

/// An error reading, validating, converting or writing safetensors data.
///
/// `description` is the message to show a person. When the error concerns a file on disk it
/// starts with the file's path, e.g.
/// `/ckpt/model.safetensors: tensor 'w': dtype F32 with shape [2, 2] needs 16 bytes but data_offsets [0, 12] hold 12`.
public struct SafeTensorsError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Broad category of the problem.
    public enum Kind: String, Sendable, Equatable {
        /// The file ends before the 8-byte size prefix or before the end of the header.
        case truncatedFile
        /// The header is too large, not UTF-8, not JSON, not an object, or `__metadata__` is malformed.
        case invalidHeader
        /// A tensor entry in the header is malformed: missing or mistyped fields, unknown dtype, bad shape.
        case invalidTensorEntry
        /// A tensor's `data_offsets` are out of bounds, reversed, of the wrong length, or overlap another's.
        case invalidDataOffsets
        /// A `SafeTensor` value is inconsistent (byte count vs dtype × shape, bad shape, reserved name).
        case invalidTensor
        /// A tensor name that is not in the file was requested.
        case missingTensor
        /// The tensor's dtype cannot be converted to the requested element type.
        case unsupportedConversion
        /// Reading or writing the file failed at the operating-system level.
        case io
    }

    /// Broad category of the problem.
    public var kind: Kind
    /// What went wrong, without the file path.
    public var message: String
    /// The file the error concerns, when the operation was given a URL.
    public var path: String?

    /// Creates an error; `path` is normally filled in by the URL-taking entry points.
    public init(_ kind: Kind, _ message: String, path: String? = nil) {
        self.kind = kind
        self.message = message
        self.path = path
    }

    /// `"<path>: <message>"`, or just the message when no file is involved.
    public var description: String {
        if let path { return "\(path): \(message)" }
        return message
    }

    /// This error, attributed to the file at `path` (kept if one is already set).
    func inFile(_ path: String) -> SafeTensorsError {
        var copy = self
        if copy.path == nil { copy.path = path }
        return copy
    }
}
