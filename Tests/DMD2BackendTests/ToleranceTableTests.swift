// The tolerance table is written once (DMD2Checks/Primitives/Tolerance.swift): every primitive
// the conformance and golden cases call has an entry, and docs/BACKENDS.md shows the table as
// `Tolerance.markdownTable` generates it.
import DMD2Checks
import DMD2Core
import Foundation
import DMD2TestSupport
import XCTest

final class ToleranceTableTests: CheckedTestCase {
    func testEveryPrimitiveHasOneRuleAndTheDocsShowTheTable() throws {
        let tabled = Set(Tolerance.table.flatMap(\.primitives))
        let conformance = Set(PrimitiveCases.all.map(\.primitive))
        let goldens = Set(GoldenCases.primitives(seed: 1).map(\.name))
        XCTAssertEqual(conformance, tabled, "PrimitiveCases vs Tolerance.table")
        XCTAssertEqual(goldens, tabled, "golden primitive files vs Tolerance.table")
        // A primitive is exact or rounded, never both.
        for p in tabled {
            let scales = Set(Tolerance.entries(p).map { "\($0.scale)" })
            XCTAssertTrue(scales.count == 1 || !scales.contains("exact"), "\(p): \(scales)")
        }
        XCTAssertEqual(Tolerance.K("gemm", .init(k: 7)), 8)
        XCTAssertEqual(Tolerance.K("groupNormBackward", .init(N: 2, C: 6, L: 5, groups: 3)), 10)
        XCTAssertEqual(Tolerance.K("groupNormBackward", output: "dx", .init(N: 2, C: 6, L: 5, groups: 3)), 10)
        XCTAssertEqual(Tolerance.K("groupNormBackward", output: "dGamma", .init(N: 4, C: 6, L: 5, groups: 3)), 20)
        XCTAssertEqual(Tolerance.K("col2im", .init(kernel: 3, stride: 2)), 5)
        XCTAssertTrue(Tolerance.isExact("permute"))
        XCTAssertFalse(Tolerance.isExact("avgPool2x2"))

        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/BACKENDS.md")
        let text = try String(contentsOf: docs, encoding: .utf8)
        XCTAssertTrue(text.contains(Tolerance.markdownTable),
                      "docs/BACKENDS.md must contain Tolerance.markdownTable verbatim; it is now:\n\(Tolerance.markdownTable)")
    }
}
