// Quoted source in the docs cannot go stale. A quote is a fenced block preceded by a marker line
//
//   <!-- source: Sources/DMD2/UpdateRule.swift func generatorGradients -->
//
// naming the file and, optionally, the function it comes from. The test finds every marker in
// every Markdown file and checks that the file exists, that it declares `func <name>`, and that
// the quote (whitespace-normalised; a line `// …` in the quote skips lines, the pieces must
// appear in order) lies in that function: between its declaration line and the next `func`
// declaration of the file. docs/guide/00-one-iteration.md, which walks one DMD2 iteration, is
// built from such quotes; every Swift block on that page must carry a marker.
import Foundation
import XCTest

final class GuideExcerptTests: XCTestCase {
    struct Quote {
        var page: String
        var line: Int
        var file: String
        var function: String?
        var body: String
    }

    static let marker = "(?m)^<!-- source: (\\S+)(?: func (\\w+))? -->\\n```[a-z]*\\n((?:.*\\n)*?)```"

    static func quotes(in page: String, text: String) -> [Quote] {
        text.matches(marker).map { range, groups in
            Quote(page: page, line: Repo.line(of: range.lowerBound, in: text), file: String(text[groups[0]!]),
                  function: groups[1].map { String(text[$0]) }, body: String(text[groups[2]!]))
        }
    }

    /// The quote's pieces (split at `// …` lines), whitespace-normalised, empty ones dropped.
    static func pieces(of body: String) -> [String] {
        var pieces: [String] = [], current: [Substring] = []
        for line in body.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.trimmingCharacters(in: .whitespaces) == "// …" {
                pieces.append(current.joined(separator: "\n"))
                current = []
            } else {
                current.append(line)
            }
        }
        pieces.append(current.joined(separator: "\n"))
        return pieces.map(\.whitespaceNormalized).filter { !$0.isEmpty }
    }

    /// The texts of the function `name` in `source`: for each `func name(` or `func name<`, from
    /// the start of its line to the next `func` declaration (or the end of the file).
    static func functionBodies(_ name: String, in source: String) -> [String] {
        let declarations = source.matches("\\bfunc\\s+\(NSRegularExpression.escapedPattern(for: name))\\s*[<(]")
        let anyFunc = source.matches("\\bfunc\\s").map(\.0.lowerBound)
        return declarations.map { range, _ in
            let start = source[..<range.lowerBound].lastIndex(of: "\n").map { source.index(after: $0) } ?? source.startIndex
            let end = anyFunc.first { $0 > range.lowerBound } ?? source.endIndex
            return String(source[start..<end])
        }
    }

    /// Whether the pieces occur in `text` (normalised) in order.
    static func contains(_ pieces: [String], in text: String) -> Bool {
        let haystack = text.whitespaceNormalized
        var from = haystack.startIndex
        for piece in pieces {
            guard let r = haystack.range(of: piece, range: from..<haystack.endIndex) else { return false }
            from = r.upperBound
        }
        return true
    }

    /// Problems with one quote (empty: it matches its source).
    static func problems(_ q: Quote) -> [String] {
        let place = "\(q.page):\(q.line)"
        guard let source = Repo.text(q.file) else { return ["\(place): \(q.file) does not exist (or is not text)"] }
        let pieces = pieces(of: q.body)
        guard !pieces.isEmpty else { return ["\(place): empty quote of \(q.file)"] }
        var regions = [source]
        if let f = q.function {
            regions = functionBodies(f, in: source)
            guard !regions.isEmpty else { return ["\(place): \(q.file) declares no func \(f)"] }
        }
        guard regions.contains(where: { contains(pieces, in: $0) }) else {
            let missing = pieces.first { p in !regions.contains { $0.whitespaceNormalized.contains(p) } } ?? pieces[0]
            return ["\(place): the quote no longer matches \(q.file)\(q.function.map { " func \($0)" } ?? "") — first piece not found (or out of order): \(missing.prefix(160))"]
        }
        return []
    }

    func testQuotedSourceMatchesTheCode() throws {
        var all: [Quote] = []
        for page in try Repo.files() where page.hasSuffix(".md") {
            guard let text = Repo.text(page) else { continue }
            all += Self.quotes(in: page, text: text)
        }
        XCTAssertGreaterThanOrEqual(all.count, 20, "too few source quotes found")
        let problems = all.flatMap(Self.problems)
        XCTAssert(problems.isEmpty, "\(problems.count) of \(all.count) quotes are stale:\n" + problems.joined(separator: "\n"))
    }

    /// The iteration page quotes only checked code: every Swift block carries a marker, and the
    /// walk covers the loop's parts by their functions.
    func testOneIterationPageIsFullyChecked() throws {
        let page = "docs/guide/00-one-iteration.md"
        let text = try XCTUnwrap(Repo.text(page), "\(page) is missing")
        let quotes = Self.quotes(in: page, text: text)
        let fences = text.matches("(?m)^```swift\\n").count
        XCTAssertEqual(quotes.count, fences, "every ```swift block of \(page) needs a `<!-- source: FILE func NAME -->` line before it")
        let functions = Set(quotes.compactMap(\.function))
        for f in ["updatesGenerator", "iterate", "draw", "rollout", "generatorGradients", "distributionMatchingLoss",
                  "generatorGANLoss", "criticGradients", "fakeCriticLoss", "discriminatorLoss", "apply", "clipGradNorm",
                  "step", "update"] {
            XCTAssert(functions.contains(f), "\(page) no longer quotes func \(f)")
        }
        let guide = try XCTUnwrap(Repo.text("docs/guide/README.md"))
        XCTAssert(guide.contains("(00-one-iteration.md)"), "docs/guide/README.md does not link the iteration page")
    }

    /// The checker catches a changed line, a wrong function and a missing file.
    func testCheckerRejectsStaleQuotes() {
        let source = """
        func a() {
            let x = 1
            let y = 2
        }
        func b() { let z = 3 }
        """
        XCTAssertEqual(Self.functionBodies("a", in: source).count, 1)
        XCTAssert(Self.contains(Self.pieces(of: "let x = 1\n// …\nlet   y = 2\n"), in: Self.functionBodies("a", in: source)[0]))
        XCTAssertFalse(Self.contains(Self.pieces(of: "let y = 2\n// …\nlet x = 1\n"), in: source), "order matters")
        XCTAssertFalse(Self.contains(Self.pieces(of: "let z = 3\n"), in: Self.functionBodies("a", in: source)[0]), "wrong function")
        let stale = Quote(page: "p.md", line: 1, file: "Sources/DMD2/UpdateRule.swift", function: "apply", body: "let cNorm = 0\n")
        XCTAssertEqual(Self.problems(stale).count, 1)
        let noFunc = Quote(page: "p.md", line: 1, file: "Sources/DMD2/UpdateRule.swift", function: "noSuchFunction", body: "x\n")
        XCTAssert(Self.problems(noFunc).first?.contains("declares no func noSuchFunction") == true)
        let noFile = Quote(page: "p.md", line: 1, file: "Sources/Nope.swift", function: nil, body: "x\n")
        XCTAssert(Self.problems(noFile).first?.contains("does not exist") == true)
    }
}
