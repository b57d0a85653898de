// Every op case, run on the fast CPU backend and on the plain reference backend: forward values
// and input gradients must agree (Double: 1e-12, Float: the Float tolerance, both relative to the
// largest value and scaled by √(reduction length)). The comparison is DMD2Checks'
// `BackendChecks.compare`, which `dmd2 gradcheck --family backend` runs too.
import DMD2Core
import DMD2Ops
import DMD2Checks
import DMD2TestSupport
import XCTest

final class BackendConformanceTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    func testCPUBackendMatchesReferenceOnEveryOpCase() throws {
        for c in AllOpCases.all {
            XCTAssertNoThrow(try BackendChecks.compare(c))
        }
    }
}
