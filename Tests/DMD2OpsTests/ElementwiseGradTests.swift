import DMD2Core
import DMD2Ops
import DMD2Checks
import DMD2TestSupport
import XCTest

final class ElementwiseGradTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }
    func testGradientChecks() { runChecks(ElementwiseCases.all) }
}
