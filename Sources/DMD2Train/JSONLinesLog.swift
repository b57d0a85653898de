// A JSON-lines log: one JSON object per line, written and flushed as each line is made, so a
// training run can be followed with `tail -f` and read by any tool (pandas, jq) after a crash.
//
// Objects are encoded with sorted keys; NaN and ±∞ (which JSON cannot hold) become the strings
// "nan", "inf" and "-inf". A resumed run first cuts the file back to the lines it will not
// repeat (`truncate(url, keepingLinesWhere:)`), so the log of a resumed run equals the log of
// an uninterrupted one.
import Foundation

/// Appends JSON objects to a file, one per line.
public final class JSONLinesLog {
    public let url: URL
    private let handle: FileHandle
    private let encoder: JSONEncoder

    /// Opens `url` for appending (created if absent).
    public init(url: URL) throws {
        let fm = FileManager.default
        if !fm.fileExists(atPath: url.path) {
            guard fm.createFile(atPath: url.path, contents: nil) else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path])
            }
        }
        handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
        self.url = url
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    }

    deinit { try? handle.close() }

    /// Write `record` as one line (a write(2) per line: visible to readers at once).
    public func write<Record: Encodable>(_ record: Record) throws {
        var data = try encoder.encode(record)
        data.append(UInt8(ascii: "\n"))
        try handle.write(contentsOf: data)
    }

    /// Keep only the leading lines for which `keep` (given each line's JSON object) is true,
    /// dropping everything from the first line it rejects (or that does not parse). A missing
    /// file is left missing. The rewrite is atomic.
    public static func truncate(_ url: URL, keepingLinesWhere keep: ([String: Any]) -> Bool) throws {
        guard FileManager.default.fileExists(atPath: url.path) else { return }
        let data = try Data(contentsOf: url)
        var kept = Data()
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any], keep(object) else { break }
            kept.append(contentsOf: line)
            kept.append(UInt8(ascii: "\n"))
        }
        try kept.write(to: url, options: .atomic)
    }
}
