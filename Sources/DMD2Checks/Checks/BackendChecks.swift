// The CPU-vs-reference comparison: every op case run on the fast CPU backend and on the plain
// `ReferenceBackend` (one loop per primitive, no SIMD, no BLIS). Forward values and input
// gradients (of ⟨v, f⟩ for a random v) must agree: Double to 1e-12·√n, Float to the Float
// tolerance, both relative to the largest value and n the case's reduction length. Together with
// the op family (the CPU backend against finite differences) this checks the reference backend
// too.
import DMD2Core

public enum BackendChecks {
    public static var all: [Check] {
        AllOpCases.all.map { c in
            Check(family: "backend", op: c.op, name: "\(c.label) cpu vs reference") { try compare(c) }
        }
    }

    /// The Double tolerance: random rounding differences of two summation orders grow like √n.
    public static func doubleTolerance(reductionLength: Int) -> Double {
        1e-12 * Double(max(1, reductionLength)).squareRoot()
    }

    @discardableResult
    public static func compare(_ c: OpCase, candidate: any Backend = CPUBackend(), reference: any Backend = ReferenceBackend()) throws -> CheckStats {
        var rng = RandomGenerator(seed: 7)
        let y = Compute.with(candidate) { GradCheck.evaluate(c.double, c.inputs) }
        let seed: Tensor<Double> = rng.normal(y.shape)
        for precision in ["Double", "Float"] {
            let tol = precision == "Double"
                ? doubleTolerance(reductionLength: c.reductionLength)
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
            let fast = run(candidate), slow = run(reference)
            for (k, (a, b)) in zip(fast, slow).enumerated() where k == 0 || c.differentiable[k - 1] {
                let what = k == 0 ? "output" : "gradient of input \(k - 1)"
                try GradCheck.compare(a, b, tol: tol, what: "\(c.label) \(precision) \(what), \(candidate.name) vs \(reference.name)")
            }
        }
        var stats = CheckStats()
        stats.checks = ["cpu vs reference, Double and Float"]
        return stats
    }
}
