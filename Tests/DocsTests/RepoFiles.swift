// The repository as the docs tests see it: its root (found from this file's path, so the tests
// need no resources and no working-directory convention) and its files.
import Foundation

enum Repo {
    /// The repository root: this file is Tests/DocsTests/RepoFiles.swift.
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().standardizedFileURL

    /// Paths relative to the root of the files git tracks or would track (not ignored), that
    /// exist on disk. Without git (an exported tarball) every file outside the ignored folders.
    static func files() throws -> [String] {
        let listed = (try? gitFiles()) ?? walk()
        let fm = FileManager.default
        return listed.filter { fm.fileExists(atPath: root.appendingPathComponent($0).path) }.sorted()
    }

    static func gitFiles() throws -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git", "-C", root.path, "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CocoaError(.fileReadUnknown) }
        let names = String(decoding: data, as: UTF8.self).split(separator: "\0").map(String.init)
        guard !names.isEmpty else { throw CocoaError(.fileReadNoSuchFile) }
        return names
    }

    /// Every file under the root, skipping build folders, git's folder and the ignored run, data
    /// and cache folders (.gitignore).
    static func walk() -> [String] {
        let skipped: Set<String> = [".git", ".swiftpm", "runs", "data", ".cache", ".venv", "__pycache__"]
        var result: [String] = []
        let prefix = root.path.hasSuffix("/") ? root.path : root.path + "/"
        guard let e = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isDirectoryKey]) else { return [] }
        for case let url as URL in e {
            let name = url.lastPathComponent
            if (try? url.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) == true {
                if skipped.contains(name) || name.hasPrefix(".build") { e.skipDescendants() }
                continue
            }
            let path = url.standardizedFileURL.path
            if path.hasPrefix(prefix) { result.append(String(path.dropFirst(prefix.count))) }
        }
        return result
    }

    /// The file's text, nil when it is not UTF-8 (binary).
    static func text(_ path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: root.appendingPathComponent(path).path) else { return nil }
        return String(data: data, encoding: .utf8)
    }

    /// 1-based line number of a character offset.
    static func line(of offset: String.Index, in text: String) -> Int {
        text[..<offset].reduce(1) { $1 == "\n" ? $0 + 1 : $0 }
    }
}

extension String {
    /// Runs of whitespace collapsed to one space, trimmed.
    var whitespaceNormalized: String { split(whereSeparator: \.isWhitespace).joined(separator: " ") }

    /// All matches of `pattern` as (whole match range, capture group ranges; nil for a group
    /// that did not take part).
    func matches(_ pattern: String, options: NSRegularExpression.Options = []) -> [(Range<String.Index>, [Range<String.Index>?])] {
        let regex = try! NSRegularExpression(pattern: pattern, options: options)
        return regex.matches(in: self, range: NSRange(startIndex..., in: self)).map { m in
            (Range(m.range, in: self)!, (1..<m.numberOfRanges).map { Range(m.range(at: $0), in: self) })
        }
    }
}
