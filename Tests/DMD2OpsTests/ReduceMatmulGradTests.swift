import DMD2Core
import DMD2Ops
import _GradCheck
import XCTest

final class ReduceMatmulGradTests: XCTestCase {
    override func setUp() { Threads.count = 2 }
    func testReduceGradientChecks() { runChecks(ReduceCases.all) }
    func testMatmulGradientChecks() { runChecks(MatmulCases.all) }
}
