// UNet checkpoints as safetensors files with EDM's key names (the checkpoint interface of
// docs/ARCHITECTURE-ADM.md "Names"), so EDM's ImageNet-64 weights and DMD2's students, once
// converted by reference/, load by name.
//
// File: one tensor per state-dict entry, `model.…` keys; the `resample_filter` buffers are
// written too (0.25 everywhere, [1, 1, 2, 2]), so the key set equals EDM's state dict.
// Metadata: format "swift-dmd2.edm-unet", format_version "1", config (UNetConfig as JSON),
// step (training step), plus whatever the caller adds. Values are stored in T's precision
// (F32 for Float, F64 for Double). Writing is atomic (temporary file + fsync + rename).
// Loading is strict: every parameter of the layout must be present with its exact shape, no
// other key may appear, and `resample_filter` buffers, optional, must hold 0.25s; any
// violation is a `CheckpointError` (DMD2Core) naming the key, and so is a NaN or ±∞ weight.
import DMD2Core
import Foundation
import SafeTensors

/// A loaded checkpoint: the network and what the file says about it.
public struct LoadedCheckpoint<T: TensorScalar> {
    public var net: UNet<T>
    /// The training step in the metadata, if any.
    public var step: Int?
    /// All metadata.
    public var metadata: [String: String]
}

public enum EDMCheckpoint {
    public static let format = "swift-dmd2.edm-unet"
    public static let formatVersion = "1"

    /// The safetensors file of `net` (parameters, resample filters, metadata).
    public static func file<T>(_ net: UNet<T>, step: Int? = nil, metadata: [String: String] = [:]) throws -> SafeTensorsFile {
        var meta = metadata
        meta["format"] = format
        meta["format_version"] = formatVersion
        meta["config"] = try configJSON(net.config)
        if let step { meta["step"] = String(step) }
        var file = SafeTensorsFile(metadata: meta)
        for entry in net.layout.stateEntries {
            switch entry.kind {
            case .parameter: file[entry.name] = net.parameters[entry.name].value.safeTensor()
            case .resampleFilter: file[entry.name] = Tensor<T>(repeating: 0.25, shape: entry.shape).safeTensor()
            }
        }
        return file
    }

    /// Write `net` to `url` atomically.
    public static func save<T>(_ net: UNet<T>, to url: URL, step: Int? = nil, metadata: [String: String] = [:]) throws {
        try file(net, step: step, metadata: metadata).write(to: url)
    }

    /// Load a network from `url`. The config comes from the file's metadata, or from `config`
    /// for files without one (converted EDM checkpoints); when both exist they must agree.
    public static func load<T>(from url: URL, config: UNetConfig? = nil, as: T.Type = T.self) throws -> LoadedCheckpoint<T> {
        try load(SafeTensorsFile(contentsOf: url), config: config)
    }

    /// Load a network from an in-memory file (see `load(from:config:)`).
    public static func load<T>(_ file: SafeTensorsFile, config: UNetConfig? = nil, as: T.Type = T.self) throws -> LoadedCheckpoint<T> {
        let resolved = try resolveConfig(file.metadata, given: config)
        let parameters: ParameterStore<T> = try parameters(from: file, layout: UNetLayout(resolved))
        var step: Int?
        if let s = file.metadata["step"] {
            guard let value = Int(s) else { throw CheckpointError(.badMetadata, key: "step", "metadata 'step' is '\(s)', not an integer") }
            step = value
        }
        return LoadedCheckpoint(net: UNet(config: resolved, parameters: parameters), step: step, metadata: file.metadata)
    }

    /// The layout's parameters from `file`, strictly checked (see the file header).
    public static func parameters<T>(from file: SafeTensorsFile, layout: UNetLayout) throws -> ParameterStore<T> {
        let entries = layout.stateEntries
        let known = Set(entries.map(\.name))
        for name in file.tensors.keys.sorted() where !known.contains(name) {
            throw CheckpointError(.unexpectedKey, key: name,
                                  "unexpected key '\(name)': the \(layout.config.resolution)×\(layout.config.resolution) network of this config has no such tensor")
        }
        var pairs: [(name: String, variable: Variable<T>)] = []
        for entry in entries {
            guard let record = file[entry.name] else {
                if entry.isParameter { throw CheckpointError(.missingKey, key: entry.name, "missing key '\(entry.name)' (shape \(entry.shape))") }
                continue                                                  // resample filters are optional
            }
            guard record.shape == entry.shape else {
                throw CheckpointError(entry.isParameter ? .shapeMismatch : .badResampleFilter, key: entry.name,
                                      "key '\(entry.name)' has shape \(record.shape), expected \(entry.shape)")
            }
            let value: Tensor<T>
            do { value = try Tensor<T>(record) } catch {
                throw CheckpointError(.badMetadata, key: entry.name, "key '\(entry.name)': \(error)")
            }
            if entry.isParameter {
                try CheckpointError.checkFinite(value, key: entry.name)
                pairs.append((entry.name, Variable(value, requiresGrad: true, name: entry.name)))
            } else if let bad = value.scalars.first(where: { abs(Double($0) - 0.25) > 1e-6 }) {
                throw CheckpointError(.badResampleFilter, key: entry.name,
                                      "key '\(entry.name)' holds \(bad); a resample filter is 0.25 everywhere (2×2 average)")
            }
        }
        return ParameterStore(pairs)
    }

    /// The config as the metadata stores it (JSON with sorted keys).
    public static func configJSON(_ config: UNetConfig) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(config), as: UTF8.self)
    }

    static func resolveConfig(_ metadata: [String: String], given: UNetConfig?) throws -> UNetConfig {
        guard let json = metadata["config"] else {
            if let given { return given }
            throw CheckpointError(.missingConfig, key: "config", "the file has no 'config' metadata; pass the UNetConfig it was made with")
        }
        let stored: UNetConfig
        do { stored = try JSONDecoder().decode(UNetConfig.self, from: Data(json.utf8)) } catch {
            throw CheckpointError(.badMetadata, key: "config", "metadata 'config' is not a UNetConfig: \(error)")
        }
        if let given, given != stored {
            throw CheckpointError(.configMismatch, key: "config", "the file's config \(json) differs from the one given, \(try configJSON(given))")
        }
        do { try stored.validate() } catch {
            throw CheckpointError(.badMetadata, key: "config", "metadata 'config' is invalid: \(error)")
        }
        return stored
    }
}
