// XCTest entry points for the Conv family's checks (cases: Sources/DMD2Checks/Cases/ConvCases.swift).
import DMD2Core
import DMD2Ops
import DMD2Checks
import DMD2TestSupport
import XCTest

final class ConvGradTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }
    func testGradientChecks() { runChecks(ConvCases.all) }

    /// Output sizes for the strided and pointwise geometries.
    func testGeometry() {
        let g = Conv2D.Geometry(x: [2, 3, 8, 8], weight: [4, 3, 4, 4], stride: 2, padding: 1)
        XCTAssertEqual(g.outputShape, [2, 4, 4, 4])
        XCTAssertEqual(g.K, 48)
        XCTAssertFalse(g.isPointwise)
        XCTAssertEqual(Conv2D.Geometry(x: [1, 3, 8, 8], weight: [4, 3, 4, 4], stride: 4, padding: 0).outputShape,
                       [1, 4, 2, 2])
        XCTAssertTrue(Conv2D.Geometry(x: [1, 3, 5, 7], weight: [2, 3, 1, 1], stride: 1, padding: 0).isPointwise)
    }
}
