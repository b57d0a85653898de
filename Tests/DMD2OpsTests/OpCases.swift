// The registry of gradient-check cases, one array per op family (each family's cases live in
// its own *Cases.swift file), and the test that every op in OpCatalog has at least one case.
import DMD2Core
import DMD2Ops
import _GradCheck
import XCTest

enum AllOpCases {
    static var all: [OpCase] {
        ElementwiseCases.all + ReduceCases.all + MatmulCases.all
    }
}

final class OpCoverageTests: XCTestCase {
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

/// Deterministic test inputs.
func randn(_ shape: [Int], seed: UInt64, scale: Double = 1, shift: Double = 0) -> Tensor<Double> {
    var rng = RandomGenerator(seed: seed)
    return rng.normal(shape, mean: shift, std: scale)
}
