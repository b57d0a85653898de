// Every op case, run on the fast CPU backend and on the plain reference backend: forward values
// and input gradients must agree (Double: 1e-12, Float: the Float tolerance, both relative to the
// largest value and scaled by √(reduction length)).
import DMD2Core
import DMD2Ops
import DMD2Checks
import XCTest

final class BackendConformanceTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    func testCPUBackendMatchesReferenceOnEveryOpCase() throws {
        let reference = ReferenceBackend(), cpu = CPUBackend()
        for c in AllOpCases.all {
            var rng = RandomGenerator(seed: 7)
            let y = Compute.with(cpu) { GradCheck.evaluate(c.double, c.inputs) }
            let seed: Tensor<Double> = rng.normal(y.shape)
            for precision in ["Double", "Float"] {
                let tol = precision == "Double"
                    ? 1e-12 * Double(max(1, c.reductionLength)).squareRoot()
                    : GradCheck.floatTolerance(reductionLength: c.reductionLength)
                let run = { (backend: any Backend) -> [Tensor<Double>] in
                    Compute.with(backend) {
                        if precision == "Double" {
                            return [GradCheck.evaluate(c.double, c.inputs)] + GradCheck.gradient(c.double, c.inputs, seed: seed)
                        }
                        let xf = c.inputs.map { $0.converted(to: Float.self) }
                        return ([GradCheck.evaluate(c.float, xf)] + GradCheck.gradient(c.float, xf, seed: seed.converted()))
                            .map { $0.converted(to: Double.self) }
                    }
                }
                let fast = run(cpu), slow = run(reference)
                for (k, (a, b)) in zip(fast, slow).enumerated() {
                    let what = k == 0 ? "output" : "gradient of input \(k - 1)"
                    XCTAssertNoThrow(try GradCheck.compare(a, b, tol: tol, what: "\(c.label) \(precision) \(what), cpu vs reference"))
                }
            }
        }
    }
}
