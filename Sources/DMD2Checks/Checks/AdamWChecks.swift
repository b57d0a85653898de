// AdamW's update (DMD2Train/AdamW.swift) against an independent scalar implementation of the
// textbook formulas, in Double, element by element:
//     lr_t = lr·min(1, t/W)
//     p ← p·(1 − lr_t·wd)
//     m ← β₁·m + (1 − β₁)·g,    v ← β₂·v + (1 − β₂)·g²
//     m̂ = m/(1 − β₁ᵏ),  v̂ = v/(1 − β₂ᵏ),   p ← p − lr_t·m̂/(√v̂ + ε)
// (k counts a parameter's own updates; a parameter without a gradient is skipped and keeps k).
// The implementation writes the same maths in PyTorch's arrangement (m += (g − m)(1 − β₁),
// ε added to √v/√(1 − β₂ᵏ)), so the two agree to rounding: the update Δp to 1e-12 of |Δp|,
// p to 8u·|p| more, m and v to 1e-13 of their size. A 1e-4 error in any factor — a bias
// correction, the step size, the decay — moves Δp by 1e-4 of itself, 10⁸ times the tolerance.
import DMD2Core
import DMD2Train
import Foundation

public enum AdamWChecks {
    public static var all: [Check] {
        [Check(family: "adamw", op: "AdamW", name: "AdamW: 4 steps (warm-up 3, weight decay, a skipped parameter) against the scalar formulas") {
            try steps()
        }]
    }

    /// The scalar reference state of one element.
    struct Element { var p: Double; var m = 0.0; var v = 0.0 }

    @discardableResult
    public static func steps() throws -> CheckStats {
        let config = AdamWConfig(learningRate: 2e-2, beta1: 0.9, beta2: 0.99, eps: 1e-6, weightDecay: 0.05, warmUpSteps: 3)
        var rng = RandomGenerator(seed: 21)
        let shapes = [[3, 4], [5], [2, 2, 2]]
        let initial: [Tensor<Double>] = shapes.map { rng.normal($0) }
        let params = initial.enumerated().map { i, t in (name: "p\(i)", variable: Variable(t, requiresGrad: true)) }
        let optimizer = AdamW<Double>(parameters: params, config: config)
        var reference = initial.map { $0.scalars.map { Element(p: $0) } }
        var k = [Int](repeating: 0, count: shapes.count)
        var worst = 0.0
        for t in 1...4 {
            // Gradients of varying scale; parameter 1 has none at step 2.
            for (i, p) in params.enumerated() {
                p.variable.zeroGrad()
                if t == 2 && i == 1 { continue }
                p.variable.grad = rng.normal(shapes[i], std: pow(10, Double(i - 1)))
            }
            let skippedBefore = params[1].variable.value
            let lr = optimizer.step()
            let lrT = config.learningRate * min(1, Double(t) / Double(config.warmUpSteps))
            guard abs(lr - lrT) <= 1e-15 * lrT else {
                throw GradCheckFailure(description: "AdamW step \(t): learning rate \(lr), expected lr·min(1, t/W) = \(lrT)")
            }
            for (i, p) in params.enumerated() {
                guard let g = p.variable.grad else { continue }
                k[i] += 1
                let β1 = config.beta1, β2 = config.beta2
                let c1 = 1 - pow(β1, Double(k[i])), c2 = 1 - pow(β2, Double(k[i]))
                for j in 0..<g.count {
                    var e = reference[i][j]
                    let before = e.p * (1 - lrT * config.weightDecay)
                    e.m = β1 * e.m + (1 - β1) * g.scalars[j]
                    e.v = β2 * e.v + (1 - β2) * g.scalars[j] * g.scalars[j]
                    let step = lrT * (e.m / c1) / ((e.v / c2).squareRoot() + config.eps)
                    e.p = before - step
                    reference[i][j] = e
                    let got = p.variable.value.scalars[j], m = optimizer.expAvg[i].scalars[j], v = optimizer.expAvgSq[i].scalars[j]
                    let tolP = 1e-12 * abs(step) + 8 * Double.unitRoundoff * abs(e.p)
                    let errors = [(abs(got - e.p), tolP, "p", got, e.p), (abs(m - e.m), 1e-13 * abs(e.m), "m", m, e.m),
                                  (abs(v - e.v), 1e-13 * abs(e.v), "v", v, e.v)]
                    for (err, tol, what, a, b) in errors {
                        worst = max(worst, err / tol)
                        if !(err <= tol) {
                            throw GradCheckFailure(description: String(
                                format: "AdamW step %d, parameter p%d%@ index %d: %@ = %.17g, scalar formula %.17g (error %.3g > %.3g; k = %d)",
                                t, i, "\(shapes[i])", j, what, a, b, err, tol, k[i]))
                        }
                    }
                }
            }
            // The skipped parameter keeps its value.
            if t == 2 {
                if params[1].variable.value != skippedBefore { throw GradCheckFailure(description: "AdamW step 2: p1 had no gradient but changed") }
            }
        }
        var stats = CheckStats()
        stats.checks = [String(format: "p, m, v against the formulas, worst error/tolerance %.2g", worst)]
        return stats
    }
}
