// The checkpoint folders every trainer writes (the EDM teacher's and DMD2's):
//
//   <run>/checkpoints/step-00000500/      one checkpoint; complete exactly when its manifest exists
//   <run>/checkpoints/.step-….partial-…   being written (never read; a crash leaves it behind)
//
// A checkpoint is written into the hidden partial folder and renamed into place (a folder rename
// is atomic), then the oldest are pruned. The manifest lists every file with its size, so a
// truncated or replaced file is caught when the checkpoint is read. What goes into a checkpoint
// and its manifest's format belong to each trainer; errors are `CheckpointFolderError`s that the
// trainer re-throws as its own error type.
import Foundation

/// A checkpoint folder that could not be created, written or read; the message names the path.
public struct CheckpointFolderError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

public enum CheckpointFolders {
    /// `step-00000500`.
    public static func folderName(step: Int) -> String { String(format: "step-%08d", step) }

    /// The complete checkpoints under `run/checkpoints` (those with `manifestName`), oldest first.
    public static func all(in run: URL, manifestName: String) -> [(step: Int, url: URL)] {
        let root = run.appendingPathComponent("checkpoints")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return names.compactMap { name -> (Int, URL)? in
            guard name.hasPrefix("step-"), let step = Int(name.dropFirst(5)) else { return nil }
            let url = root.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.appendingPathComponent(manifestName).path) else { return nil }
            return (step, url)
        }.sorted { $0.0 < $1.0 }
    }

    /// Sizes in bytes of those of `names` that exist in `folder` (for the manifest).
    public static func sizes(of names: [String], in folder: URL) -> [String: Int] {
        var files: [String: Int] = [:]
        for name in names {
            if let size = try? FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent(name).path)[.size] as? Int {
                files[name] = size
            }
        }
        return files
    }

    /// Throws unless every file a manifest lists is in `folder` at its recorded size.
    public static func checkFiles(_ files: [String: Int], in folder: URL, manifestName: String) throws {
        for (name, size) in files.sorted(by: { $0.key < $1.key }) {
            let file = folder.appendingPathComponent(name)
            let actual = (try? FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int) ?? nil
            guard let actual else { throw CheckpointFolderError("\(file.path): missing (listed in \(manifestName))") }
            guard actual == size else {
                throw CheckpointFolderError("\(file.path): \(actual) bytes, the manifest says \(size) (truncated or replaced)")
            }
        }
    }

    public static func createFolder(_ url: URL) throws {
        do { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) } catch {
            throw CheckpointFolderError("\(url.path): cannot create folder (\(error.localizedDescription))")
        }
    }

    /// Write `run/checkpoints/step-<step>` atomically: `fill` writes the files (the manifest last)
    /// into a hidden partial folder, which is then renamed into place — an existing folder of the
    /// same step (a run resumed and stopped at the same step) is moved aside first, then removed.
    /// Afterwards only the newest `keep` checkpoints stay (0 keeps all). Returns the folder.
    @discardableResult
    public static func write(step: Int, run: URL, manifestName: String, keep: Int, fill: (URL) throws -> Void) throws -> URL {
        let fm = FileManager.default
        let root = run.appendingPathComponent("checkpoints")
        try createFolder(root)
        let name = folderName(step: step)
        let target = root.appendingPathComponent(name)
        let partial = root.appendingPathComponent(".\(name).partial-\(UUID().uuidString)")
        try createFolder(partial)
        do {
            try fill(partial)
            if fm.fileExists(atPath: target.path) {
                let aside = root.appendingPathComponent(".\(name).old-\(UUID().uuidString)")
                try fm.moveItem(at: target, to: aside)
                try fm.moveItem(at: partial, to: target)
                try? fm.removeItem(at: aside)
            } else {
                try fm.moveItem(at: partial, to: target)
            }
        } catch {
            try? fm.removeItem(at: partial)
            throw CheckpointFolderError("cannot write \(target.path): \(error)")
        }
        if keep > 0 {
            for old in all(in: run, manifestName: manifestName).dropLast(keep) { try? fm.removeItem(at: old.url) }
        }
        return target
    }
}

// MARK: One mechanism for both trainers' checkpoints

/// What every trainer's checkpoint manifest (`state.json`) carries: its format and version,
/// the step, and the files of the checkpoint with their sizes.
public protocol RunCheckpointManifest: Codable, Sendable {
    /// "swift-dmd2.teacher-checkpoint", "swift-dmd2.distill-checkpoint".
    static var format: String { get }
    /// The version written; `readableVersions` lists those still read.
    static var formatVersion: Int { get }
    static var readableVersions: ClosedRange<Int> { get }
    /// "teacher checkpoint", "distillation checkpoint" (in messages).
    static var kind: String { get }
    var format: String { get }
    var formatVersion: Int { get }
    var step: Int { get }
    var files: [String: Int] { get }
}

/// A trainer's checkpoint layout: its manifest type and the error it reports a checkpoint that
/// cannot be used with. Conforming (an enum holding the file names) gives the functions below.
public protocol RunCheckpointLayout {
    associatedtype Manifest: RunCheckpointManifest
    /// The trainer's error for a checkpoint that cannot be used (the message names the file).
    static func badCheckpoint(_ message: String) -> any Error
}

extension RunCheckpointLayout {
    public static var manifestName: String { "state.json" }

    /// `step-00000500`.
    public static func folderName(step: Int) -> String { CheckpointFolders.folderName(step: step) }

    /// The complete checkpoints under `run/checkpoints`, oldest first.
    public static func all(in run: URL) -> [(step: Int, url: URL)] { CheckpointFolders.all(in: run, manifestName: manifestName) }

    /// The newest complete checkpoint of a run, or nil.
    public static func latest(in run: URL) -> URL? { all(in: run).last?.url }

    /// A checkpoint folder's manifest, with every listed file present at its recorded size.
    public static func manifest(at folder: URL) throws -> Manifest {
        let url = folder.appendingPathComponent(manifestName)
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw badCheckpoint("\(url.path): cannot read (\(error.localizedDescription))")
        }
        let manifest: Manifest
        do { manifest = try JSONDecoder().decode(Manifest.self, from: data) } catch {
            throw badCheckpoint("\(url.path): not a \(Manifest.kind) manifest (\(error))")
        }
        guard manifest.format == Manifest.format, Manifest.readableVersions.contains(manifest.formatVersion) else {
            throw badCheckpoint("\(url.path): format \(manifest.format) v\(manifest.formatVersion), expected \(Manifest.format) v\(Manifest.readableVersions.lowerBound)…\(Manifest.readableVersions.upperBound)")
        }
        do { try CheckpointFolders.checkFiles(manifest.files, in: folder, manifestName: manifestName) } catch let e as CheckpointFolderError {
            throw badCheckpoint(e.description)
        }
        return manifest
    }

    /// The checkpoint folder a path designates: nil for a file (used as is); the folder itself
    /// when it holds a manifest; a run folder's newest checkpoint.
    public static func checkpointFolder(designatedBy url: URL) throws -> URL? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw badCheckpoint("\(url.path): no such file or folder")
        }
        guard isDirectory.boolValue else { return nil }
        if FileManager.default.fileExists(atPath: url.appendingPathComponent(manifestName).path) { return url }
        guard let latest = latest(in: url) else {
            throw badCheckpoint("\(url.path): neither a \(Manifest.kind) folder (no \(manifestName)) nor a run folder with checkpoints/step-*")
        }
        return latest
    }

    /// Write `run/checkpoints/step-<step>` atomically (see `CheckpointFolders.write`): `fill`
    /// writes the checkpoint's files into the partial folder, then the manifest `manifest` makes
    /// from the sizes of `files` is written last (JSON, sorted keys). Old checkpoints are then
    /// pruned to the newest `keep`.
    @discardableResult
    public static func write(step: Int, run: URL, keep: Int, files: [String], fill: (URL) throws -> Void,
                             manifest: ([String: Int]) -> Manifest) throws -> URL {
        do {
            return try CheckpointFolders.write(step: step, run: run, manifestName: manifestName, keep: keep) { partial in
                try fill(partial)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                let sizes = CheckpointFolders.sizes(of: files, in: partial)
                try encoder.encode(manifest(sizes)).write(to: partial.appendingPathComponent(manifestName), options: .atomic)
            }
        } catch let e as CheckpointFolderError {
            throw badCheckpoint(e.description)
        }
    }

    /// Create a folder, reporting failure as the trainer's error.
    public static func createFolder(_ url: URL) throws {
        do { try CheckpointFolders.createFolder(url) } catch let e as CheckpointFolderError { throw badCheckpoint(e.description) }
    }
}

/// The manifests' random-generator state: `rng_state` since format version 2, `generator` in
/// version 1 (the word also names the DMD2 network). Both trainers' manifests read it this way.
public enum ManifestRNGState {
    enum Keys: String, CodingKey { case rngState = "rng_state", legacy = "generator" }

    public static func decode<G: Decodable>(_: G.Type, from decoder: any Decoder) throws -> G {
        let c = try decoder.container(keyedBy: Keys.self)
        return try c.decodeIfPresent(G.self, forKey: .rngState) ?? c.decode(G.self, forKey: .legacy)
    }
}
