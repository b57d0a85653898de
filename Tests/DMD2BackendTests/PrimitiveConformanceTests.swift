// Every primitive, called directly (PrimitiveCases), on every registered backend that starts
// here, against the reference backend:
//   same precision: through a shadow (candidate = the backend), in Double and in Float — the
//     shadow's rule (ShadowBackend.swift): data movement bitwise, arithmetic ≤ 64·u·√K·max|ref|;
//   Float against the Double truth: the backend's Float outputs against the reference's Double
//     outputs from the same (Float-exact) inputs, ≤ 64·u_f·√K·max|truth| (bitwise for data
//     movement).
// Prints one table per backend: primitive, cases, the worst ratio of each check (< 1 passes)
// and, for the CUDA backends, where the calls ran.
import DMD2Checks
import DMD2Core
import DMD2CUDA
import Foundation
import DMD2TestSupport
import XCTest

final class PrimitiveConformanceTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    func testEveryPrimitiveOnEveryRegisteredBackend() {
        let (backends, skipped) = RegisteredBackends.all()
        RegisteredBackends.printSkipped(skipped, in: "PrimitiveConformanceTests")
        let cases = PrimitiveCases.all
        let reference = ReferenceBackend()
        // The truth: the reference in Double, once per case.
        let truths = cases.map { $0.run(reference, true) }
        for backend in backends {
            var table: [String: (cases: Int, shadow: Double, truth: Double)] = [:]
            let start = Date()
            for (c, truth) in zip(cases, truths) {
                var row = table[c.primitive, default: (0, 0, 0)]
                row.cases += 1
                for double in [true, false] {
                    let shadow = ShadowBackend(candidate: backend, policy: .recordAndContinue)
                    _ = c.run(shadow, double)
                    if let d = shadow.firstDivergence {
                        XCTFail("\(backend.name), \(c.primitive) [\(c.label)], \(double ? "Double" : "Float"):\n\(d)")
                    }
                    row.shadow = max(row.shadow, shadow.statistics.values.map(\.worstRatio).max() ?? 0)
                }
                let float = c.run(backend, false)
                XCTAssertEqual(float.count, truth.count)
                for (k, (out, ref)) in zip(float, truth).enumerated() {
                    let (ratio, failure) = conformanceError(out, ref, reductionLength: c.reductionLength, precision: Float.self,
                                                            what: "\(backend.name), \(c.primitive) [\(c.label)], Float output \(k) vs Double truth")
                    row.truth = max(row.truth, ratio)
                    if let failure { XCTFail(failure) }
                }
                table[c.primitive] = row
            }
            print(String(format: "PrimitiveConformanceTests: %@ — %d cases in %.1f s", backend.name, cases.count, Date().timeIntervalSince(start)))
            let placements = (backend as? CUDABackend)?.placements
            print("  primitive                   cases   worst err/tol vs reference   worst Float err/tol vs Double truth"
                  + (placements != nil ? "   ran on device / cpu" : ""))
            for (primitive, row) in table.sorted(by: { $0.key < $1.key }) {
                var line = "  " + primitive.padding(toLength: 26, withPad: " ", startingAt: 0)
                    + String(format: " %6d   %26.3g   %35.3g", row.cases, row.shadow, row.truth)
                if let p = placements?[primitive] { line += String(format: "   %9d / %d", p.device, p.cpu) }
                print(line)
            }
            if let cuda = backend as? CUDABackend {
                print("  device: \(cuda.deviceSummary); CPU fallbacks: \(CUDABackend.fallbackPrimitives.isEmpty ? "none" : CUDABackend.fallbackPrimitives.joined(separator: ", "))")
            }
        }
    }
}
