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
