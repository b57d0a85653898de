// The golden primitive cases (`dmd2 export-goldens`, GoldenPrimitiveCases.swift) on every
// registered backend under the shadow, in Double: the files a backend would export agree with
// the reference under Tolerance.table's rule.
import DMD2Checks
import DMD2Core
import DMD2TestSupport
import XCTest

final class GoldenCaseConformanceTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    func testGoldenPrimitiveCasesOnEveryRegisteredBackend() {
        let (backends, skipped) = RegisteredBackends.all()
        RegisteredBackends.printSkipped(skipped, in: "GoldenCaseConformanceTests")
        for backend in backends {
            let shadow = ShadowBackend(candidate: backend, policy: .recordAndContinue)
            let files = GoldenCases.primitives(seed: 2024, on: shadow)
            XCTAssertEqual(shadow.divergenceCount, 0, "\(backend.name): \(shadow.divergences.map(\.description).joined(separator: "\n"))")
            let worst = shadow.statistics.values.map(\.worstRatio).max() ?? 0
            print(String(format: "GoldenCaseConformanceTests: %@ — %d files, %d cases, %d primitive calls, worst err/tol %.3g",
                         backend.name, files.count, files.map(\.cases.count).reduce(0, +), shadow.callCount, worst))
            XCTAssertEqual(Set(shadow.statistics.keys), Set(files.map(\.name)), "\(backend.name): every golden primitive was called")
        }
    }
}
