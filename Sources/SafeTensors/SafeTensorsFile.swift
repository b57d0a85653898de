// SafeTensorsFile.swift — the in-memory form of a whole .safetensors file (string metadata plus
// named tensors) and its entry points: load from Data or a URL, look tensors up, save to Data
// or atomically to a URL. Parsing lives in SafeTensorsReader.swift, layout in SafeTensorsWriter.swift.

import Foundation

/// A safetensors file: named tensors plus optional string-to-string metadata.
///
/// On disk: an 8-byte little-endian header size N, N bytes of UTF-8 JSON mapping each tensor
/// name to `{"dtype", "shape", "data_offsets": [begin, end]}` (plus an optional
/// `"__metadata__"` object of strings), then the data buffer those offsets index into.
///
/// ```swift
/// var file = SafeTensorsFile(metadata: ["step": "1000"])
/// file["w"] = try SafeTensor([1, 2, 3, 4] as [Float], shape: [2, 2])
/// try file.write(to: url)
/// let w = try SafeTensorsFile(contentsOf: url).tensor("w").floats()
/// ```
public struct SafeTensorsFile: Sendable, Equatable {
    /// The header's `"__metadata__"` object (empty when the file has none).
    public var metadata: [String: String]
    /// The tensors, by name.
    public var tensors: [String: SafeTensor]

    /// The key the format reserves for metadata; it cannot be used as a tensor name.
    public static let metadataKey = "__metadata__"

    /// The largest header this reader accepts, in bytes (the reference implementation's limit).
    public static let maxHeaderSize = 100_000_000

    /// A file with the given contents.
    public init(metadata: [String: String] = [:], tensors: [String: SafeTensor] = [:]) {
        self.metadata = metadata
        self.tensors = tensors
    }

    /// Parses a complete file held in memory. Throws `SafeTensorsError` describing the first
    /// problem found if the bytes are not a well-formed safetensors file.
    public init(data: Data) throws {
        self = try data.withUnsafeBytes { try SafeTensorsReader.parse($0) }
    }

    /// Reads and parses the file at `url`. Every error thrown names the file's path.
    public init(contentsOf url: URL) throws {
        let path = url.path
        let data: Data
        do {
            // Mapped rather than read: the parser copies each tensor out once, so a large
            // checkpoint is not held in memory twice.
            data = try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw SafeTensorsError(.io, "cannot read file: \(error.localizedDescription)", path: path)
        }
        do {
            try self.init(data: data)
        } catch let error as SafeTensorsError {
            throw error.inFile(path)
        }
    }

    /// The tensor named `name`, or nil. Assigning nil removes it.
    public subscript(name: String) -> SafeTensor? {
        get { tensors[name] }
        set { tensors[name] = newValue }
    }

    /// The tensor named `name`; throws an error naming it (and listing what is there) if absent.
    public func tensor(_ name: String) throws -> SafeTensor {
        if let tensor = tensors[name] { return tensor }
        let names = tensors.keys.sorted()
        let available: String
        if names.isEmpty {
            available = "the file has no tensors"
        } else if names.count <= 10 {
            available = "available: " + names.map { "'\($0)'" }.joined(separator: ", ")
        } else {
            available = "available: " + names.prefix(10).map { "'\($0)'" }.joined(separator: ", ")
                + " and \(names.count - 10) more"
        }
        throw SafeTensorsError(.missingTensor, "no tensor named '\(name)' (\(available))")
    }

    /// The complete file as bytes. Throws if a tensor's bytes do not match its dtype and shape,
    /// or a tensor is named `"__metadata__"`.
    ///
    /// Layout: the header is padded with spaces so the data buffer starts at an 8-byte-aligned
    /// file offset; tensors are packed without gaps, largest element size first, then by name,
    /// so each starts at a multiple of its own element size. The output is deterministic and
    /// readable by the reference implementation, which rejects gaps between tensors.
    /// This reader, by contrast, accepts gaps and trailing padding.
    public func serialized() throws -> Data {
        try SafeTensorsWriter.serialize(self)
    }

    /// Writes the file to `url` atomically: the bytes go to a temporary file in the same folder,
    /// which is flushed to disk (fsync) and then renamed over `url`. Readers see either the old
    /// file or the complete new one, never a partial write; on failure no temporary file is left.
    public func write(to url: URL) throws {
        let data: Data
        do {
            data = try serialized()
        } catch let error as SafeTensorsError {
            throw error.inFile(url.path)
        }
        try AtomicFileWriter.write(data, to: url)
    }
}
