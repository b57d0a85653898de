// This target's test classes derive from CheckedTestCase, which registers the checking backends
// (DMD2Checks' `CheckBackends.register()`) before a class's first test: `Compute.backend` reads
// DMD2_BACKEND when it is first used, so DMD2_BACKEND=reference, shadow or shadow:NAME then runs
// these tests on that backend (docs/BACKENDS.md section 2).
import DMD2Checks
import XCTest

class CheckedTestCase: XCTestCase {
    override class func setUp() {
        super.setUp()
        CheckBackends.register()
    }
}
