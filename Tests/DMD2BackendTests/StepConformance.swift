// The hook for whole computations — a small UNet's forward and backward, a DMD2 training step —
// on every registered backend.
//
// A step is a closure that runs one computation on `Compute.backend` in Float or Double and
// returns its named outputs (values, gradients, updated weights) widened to Double. The hook:
//   1. computes the truth: the step in Double on the CPU backend (whose Double primitives the
//      primitive suite checks against the reference, case by case);
//   2. for every registered backend but the reference (whose primitives the shadows already run
//      everywhere, and whose generic loops would make a whole network slow), runs the step in
//      Float under a shadow (candidate = that backend), which must see no divergence, and
//      compares every output with the truth: |out − truth| ≤ 64·u_f·√K·max|truth| per tensor,
//      K = the step's longest reduction;
//   3. prints, per backend, the worst output error/tolerance and the shadow's per-primitive table.
// SmallUNetConformanceTests uses it for small16; a DMD2 step plugs in the same way:
//
//     StepConformance.check("DMD2 step (small16, batch 2)", reductionLength: K) { double in
//         double ? dmd2Step(Double.self) : dmd2Step(Float.self)      // [(name, Tensor<Double>)]
//     }
import DMD2Checks
import DMD2Core
import XCTest

enum StepConformance {
    /// One named output of a step.
    typealias Outputs = [(name: String, value: Tensor<Double>)]

    /// Run `step` on every registered backend and compare with the truth (see the file comment).
    /// Returns one summary line per backend.
    @discardableResult
    static func check(
        _ name: String, reductionLength K: Int, file: StaticString = #filePath, line: UInt = #line,
        _ step: (_ double: Bool) -> Outputs
    ) -> [String] {
        let truth = Compute.with(CPUBackend()) { step(true) }
        let (backends, skipped) = RegisteredBackends.all()
        RegisteredBackends.printSkipped(skipped, in: name)
        var summary: [String] = []
        for backend in backends where !(backend is ReferenceBackend) {
            let shadow = ShadowBackend(candidate: backend, policy: .recordAndContinue)
            let start = Date()
            let outputs = Compute.with(shadow) { step(false) }
            let seconds = Date().timeIntervalSince(start)
            if let d = shadow.firstDivergence {
                XCTFail("\(name) on \(backend.name): \(shadow.divergenceCount) divergent primitive calls; first: \(d)", file: file, line: line)
            }
            XCTAssertEqual(outputs.map(\.name), truth.map(\.name), "\(name) on \(backend.name): output names", file: file, line: line)
            var worst = 0.0, worstName = ""
            for (out, ref) in zip(outputs, truth) {
                let (ratio, failure) = conformanceError(out.value, ref.value, reductionLength: K, precision: Float.self,
                                                        what: "\(name) on \(backend.name), Float vs Double truth, \(out.name)")
                if ratio > worst { worst = ratio; worstName = out.name }
                if let failure { XCTFail(failure, file: file, line: line) }
            }
            let line = String(format: "%@ on %@ (Float, %d outputs, %.1f s under the shadow): worst output error/tolerance %.3g (%@), "
                                + "%d primitive calls, %d divergent", name, backend.name, outputs.count, seconds, worst, worstName,
                              shadow.callCount, shadow.divergenceCount)
            print(line)
            print(shadow.report())
            summary.append(line)
        }
        return summary
    }
}
