// Everything the repository cites is inside the repository: no source, doc or script names the
// working library outside it, and every relative Markdown link resolves to a file or folder of
// the repository. (The forbidden strings are assembled at run time so this file does not cite
// them itself.)
import Foundation
import XCTest

final class CitationTests: XCTestCase {
    /// Files whose text is source, documentation or scripts (binary fixtures and weights are not
    /// read; their metadata may record where they were made).
    static let textExtensions: Set<String> = ["swift", "md", "sh", "py", "h", "c", "modulemap", "txt", "json",
                                              "yml", "yaml", "toml", "cfg", "tsv", "gitignore", ""]

    static func textFiles() throws -> [String] {
        try Repo.files().filter { textExtensions.contains(URL(fileURLWithPath: $0).pathExtension) }
    }

    func testNoCitationOutsideTheRepository() throws {
        let outside = [".." + "/shared", "shared" + "/docs", "/work" + "/shared"]
        let files = try Self.textFiles()
        XCTAssertGreaterThan(files.count, 200, "the repository's text files were not found from \(Repo.root.path)")
        XCTAssert(files.contains("Package.swift") && files.contains("docs/METHOD.md"), "Package.swift or docs/METHOD.md not listed")
        var found: [String] = []
        for path in files {
            guard let text = Repo.text(path) else { continue }
            for needle in outside {
                var from = text.startIndex
                while let r = text.range(of: needle, range: from..<text.endIndex) {
                    found.append("\(path):\(Repo.line(of: r.lowerBound, in: text)): cites '\(needle)'")
                    from = r.upperBound
                }
            }
        }
        XCTAssert(found.isEmpty, "paths outside the repository are cited (the spec lives in docs/):\n" + found.joined(separator: "\n"))
    }

    /// Relative link targets of a Markdown text with their line numbers: inline links and images
    /// `[text](target "title")`, `<target>` forms and reference definitions `[id]: target`.
    /// Code (fenced blocks, inline spans) and links with a scheme (http:, mailto:) or only an
    /// anchor are skipped.
    static func relativeLinks(in markdown: String) -> [(line: Int, target: String)] {
        // Blank out code so that brackets in code are not read as links (line numbers kept).
        var text = markdown
        for pattern in ["(?ms)^[ \\t]*```.*?^[ \\t]*```", "`[^`\\n]*`"] {
            for (range, _) in text.matches(pattern).reversed() {
                text.replaceSubrange(range, with: String(text[range].map { $0 == "\n" ? "\n" : " " }))
            }
        }
        var links: [(Int, String)] = []
        let inline = "!?\\[[^\\]\\n]*\\]\\(\\s*(<[^>\\n]*>|[^)\\s]+)(?:\\s+\"[^\"]*\")?\\s*\\)"
        let reference = "(?m)^[ ]{0,3}\\[[^\\]\\n]+\\]:[ \\t]*(<[^>\\n]*>|\\S+)"
        for pattern in [inline, reference] {
            for (range, groups) in text.matches(pattern) {
                guard let g = groups[0] else { continue }
                var target = String(text[g])
                if target.hasPrefix("<") { target = String(target.dropFirst().dropLast()) }
                if target.hasPrefix("#") || target.range(of: "^[A-Za-z][A-Za-z0-9+.-]*:", options: .regularExpression) != nil { continue }
                links.append((Repo.line(of: range.lowerBound, in: text), target))
            }
        }
        return links
    }

    func testRelativeMarkdownLinksResolve() throws {
        let markdown = try Repo.files().filter { $0.hasSuffix(".md") }
        XCTAssert(markdown.contains("README.md") && markdown.contains("docs/guide/00-one-iteration.md"), "README.md or the guide not listed")
        var checked = 0
        var broken: [String] = []
        let fm = FileManager.default
        let rootPath = Repo.root.path
        for path in markdown {
            guard let text = Repo.text(path) else { continue }
            let folder = Repo.root.appendingPathComponent(path).deletingLastPathComponent()
            for (line, target) in Self.relativeLinks(in: text) {
                checked += 1
                var file = String(target.prefix { $0 != "#" && $0 != "?" })
                file = file.removingPercentEncoding ?? file
                let url = file.hasPrefix("/") ? Repo.root.appendingPathComponent(String(file.dropFirst()))
                                              : (file.isEmpty ? Repo.root.appendingPathComponent(path) : folder.appendingPathComponent(file))
                let resolved = url.standardizedFileURL.path
                if !(resolved == rootPath || resolved.hasPrefix(rootPath + "/")) {
                    broken.append("\(path):\(line): '\(target)' points outside the repository")
                } else if !fm.fileExists(atPath: resolved) {
                    broken.append("\(path):\(line): '\(target)' does not resolve (no \(resolved.dropFirst(rootPath.count + 1)))")
                }
            }
        }
        XCTAssertGreaterThan(checked, 100, "suspiciously few relative links found in \(markdown.count) Markdown files")
        XCTAssert(broken.isEmpty, "\(broken.count) of \(checked) relative Markdown links are broken:\n" + broken.joined(separator: "\n"))
    }

    /// The link reader itself: what counts as a relative link and what is skipped.
    func testLinkReaderFindsAndSkipsTheRightTargets() {
        let sample = """
        See [the method](../METHOD.md#2-dmd2) and ![figure](figures/a.png "title"), [web](https://x.org/a.md),
        [anchor](#top), `[code](not/a/link.md)`, <https://y.org>.
        ```swift
        let a = b[c](d)
        ```
        [ref]: ../DATA.md
        """
        let targets = Self.relativeLinks(in: sample).map(\.target)
        XCTAssertEqual(targets, ["../METHOD.md#2-dmd2", "figures/a.png", "../DATA.md"])
        XCTAssertEqual(Self.relativeLinks(in: sample).map(\.line), [1, 1, 6])
    }
}
