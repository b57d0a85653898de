// Test support shared by the test targets (not a product): the base class of every test class
// that should honour DMD2_BACKEND.
//
// `CheckedTestCase` registers the checking backends (DMD2Checks' `CheckBackends.register()`)
// before a class's first test: `Compute.backend` reads DMD2_BACKEND when it is first used, so
// DMD2_BACKEND=reference, shadow or shadow:NAME then runs these tests on that backend
// (docs/BACKENDS.md section 2). XCTest on Linux has no process-wide start-up hook, hence a base
// class.
import DMD2Checks
import XCTest

open class CheckedTestCase: XCTestCase {
    override open class func setUp() {
        super.setUp()
        CheckBackends.register()
    }
}
