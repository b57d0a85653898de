import DMD2Core
import DMD2Ops
import DMD2Checks
import DMD2TestSupport
import XCTest

final class ReduceMatmulGradTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }
    func testReduceGradientChecks() { runChecks(ReduceCases.all) }
    func testMatmulGradientChecks() { runChecks(MatmulCases.all) }
}
