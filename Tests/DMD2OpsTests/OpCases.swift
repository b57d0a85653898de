// The registry of gradient-check cases, one array per op family (each family's cases live in
// its own *Cases.swift file), and the test that every op in OpCatalog has at least one case.
import DMD2Core
import DMD2Ops
import DMD2Checks
import Foundation
import SafeTensors
import DMD2TestSupport
import XCTest

final class OpCoverageTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    /// Every op in the catalog has at least one gradient check, and every case names a real op.
    func testEveryOpHasAGradientCheck() {
        let checked = Set(AllOpCases.all.map(\.op))
        let missing = OpCatalog.all.filter { !checked.contains($0) }
        XCTAssert(missing.isEmpty, "ops without a gradient check: \(missing)")
        let unknown = checked.subtracting(OpCatalog.all)
        XCTAssert(unknown.isEmpty, "cases name ops missing from OpCatalog: \(unknown.sorted())")
    }
}

/// Run every check on a family's cases, reporting each failure by name.
func runChecks(_ cases: [OpCase], file: StaticString = #filePath, line: UInt = #line) {
    for c in cases {
        do { try GradCheck.all(c) } catch { XCTFail("\(error)", file: file, line: line) }
    }
}

/// A committed PyTorch fixture from Tests/DMD2OpsTests/Fixtures (see reference/make_fixtures.py).
func fixture(_ name: String) throws -> SafeTensorsFile {
    guard let url = Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures") else {
        throw GradCheckFailure(description: "fixture \(name).safetensors is missing from Tests/DMD2OpsTests/Fixtures; regenerate with python3 reference/make_fixtures.py")
    }
    let file = try SafeTensorsFile(contentsOf: url)
    guard file.metadata["format"] == "swift-dmd2-fixture", file.metadata["version"] == "1" else {
        throw GradCheckFailure(description: "\(name).safetensors: not a version-1 swift-dmd2 fixture (metadata \(file.metadata)); regenerate it")
    }
    return file
}

/// The case names of a fixture file: every metadata key except the file-level ones.
func fixtureCases(_ file: SafeTensorsFile) -> [String] {
    file.metadata.keys.filter { !["format", "version", "generator", "torch"].contains($0) }.sorted()
}

