// The small UNet (EDM small16, batch 2) forward and backward on every registered backend, in
// Float, each primitive checked by a shadow against the reference and every output (F, dx,
// 149 parameter gradients) against the Double truth — through StepConformance, the hook a
// DMD2 step uses the same way. For the CPU backend this is also the shadow mode's "correct
// backend passes a whole network" check: zero divergent calls out of ~1000.
import DMD2Core
import DMD2TestSupport
import XCTest

final class SmallUNetConformanceTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    func testSmallUNetForwardBackwardOnEveryRegisteredBackend() {
        let parameters = SmallUNet.parameters(), inputs = SmallUNet.inputs()
        let names = SmallUNet.outputNames(parameters)
        let lines = StepConformance.check("small16 UNet forward+backward (batch 2)", reductionLength: SmallUNet.reductionLength) { double in
            let outputs = double ? SmallUNet.step(Double.self, parameters: parameters, inputs: inputs)
                                 : SmallUNet.step(Float.self, parameters: parameters, inputs: inputs)
            return Array(zip(names, outputs)).map { (name: $0.0, value: $0.1) }
        }
        XCTAssertTrue(lines.contains { $0.contains(" on cpu ") }, "the CPU backend ran: \(lines)")
    }
}
