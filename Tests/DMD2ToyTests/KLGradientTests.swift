import DMD2Core
import DMD2Ops
@testable import DMD2Toy
import Foundation
import XCTest

/// The objective of docs/guide/02-the-objective.md, checked exactly: the DMD gradient
/// E[(s_fake − s_real)ᵀ·∂x_t/∂θ] is the gradient of D_KL(p_fake,σ ‖ p_real,σ).
final class KLGradientTests: XCTestCase {
    override func setUp() { Threads.count = 1 }

    let check = KLGradientCheck(gridPoints: 241, gridExtent: 7)
    let blob = KLGradientCheck.collapsedBlob

    /// The affine generator's closed-form score is the gradient of log N(x; b, C).
    func testAffineGeneratorScoreIsTheGaussianScore() {
        let g = blob
        let sigma = 0.4
        let L = g.noisedCholesky(sigma: sigma)
        let c00 = L.l00 * L.l00, c01 = L.l00 * L.l10, c11 = L.l10 * L.l10 + L.l11 * L.l11
        let det = c00 * c11 - c01 * c01
        func logDensity(_ x: Double, _ y: Double) -> Double {
            let dx = x - g.b[0], dy = y - g.b[1]
            return -Foundation.log(2 * Double.pi) - Foundation.log(det) / 2 - (c11 * dx * dx - 2 * c01 * dx * dy + c00 * dy * dy) / (2 * det)
        }
        XCTAssertEqual(c00, g.a[0] * g.a[0] + g.a[1] * g.a[1] + sigma * sigma, accuracy: 1e-14)
        var rng = RandomGenerator(seed: 4)
        let x: Tensor<Double> = rng.normal([5, 2])
        let s = g.score(x, sigma: sigma)
        let h = 1e-5
        for i in 0..<5 {
            let px = x.scalars[2 * i], py = x.scalars[2 * i + 1]
            XCTAssertEqual(s.scalars[2 * i], (logDensity(px + h, py) - logDensity(px - h, py)) / (2 * h), accuracy: 1e-7)
            XCTAssertEqual(s.scalars[2 * i + 1], (logDensity(px, py + h) - logDensity(px, py - h)) / (2 * h), accuracy: 1e-7)
        }
    }

    /// The DMD gradient by quadrature equals finite differences of the quadrature KL, at small,
    /// middle and large σ, for all six parameters.
    func testDMDGradientIsTheReverseKLGradient() {
        for sigma in [0.1, 0.5, 2.0] {
            let fd = check.klGradientByFiniteDifferences(blob, sigma: sigma)
            let dmd = check.dmdGradientByQuadrature(blob, sigma: sigma)
            let scale = fd.map(Swift.abs).max()!
            XCTAssertGreaterThan(scale, 1e-3, "σ \(sigma): the gradient should not vanish here")
            for p in 0..<6 {
                XCTAssertEqual(dmd[p], fd[p], accuracy: 1e-7 * Swift.max(1, scale),
                               "σ \(sigma), \(AffineGenerator2D.parameterNames[p]): DMD \(dmd[p]) vs ∂KL/∂θ \(fd[p])")
            }
        }
    }

    /// The code path: a Monte-Carlo estimate through the toy's surrogate loss agrees with the
    /// exact gradient within 4 standard errors; leaving out s_fake, or using a lagging critic's,
    /// does not.
    func testMonteCarloDMDGradientAgreesWithinItsError() {
        let sigma = 0.5
        let exact = check.klGradientByFiniteDifferences(blob, sigma: sigma)
        var rng = RandomGenerator(seed: 11)
        let mc = check.dmdGradientMonteCarlo(blob, sigma: sigma, samples: 20_000, rng: &rng)
        let norm = exact.map { $0 * $0 }.reduce(0, +).squareRoot()
        XCTAssertGreaterThan(norm, 20 * mc.standardError.max()!, "the check must resolve the gradient: SE \(mc.standardError), ‖∇‖ \(norm)")
        for p in 0..<6 {
            XCTAssertEqual(mc.autograd[p], mc.mean[p], accuracy: 1e-12 * Swift.max(1, Swift.abs(mc.mean[p])), "autograd vs per-sample mean")
            XCTAssertLessThan(Swift.abs(mc.mean[p] - exact[p]), 4 * mc.standardError[p],
                              "\(AffineGenerator2D.parameterNames[p]): MC \(mc.mean[p]) ± \(mc.standardError[p]) vs exact \(exact[p])")
        }
        // Controls: without s_fake the A entries are off by E[s_fake·zᵀ] = −C⁻¹·A; a critic fitted
        // to an earlier G (0.8× its parameters) is off too.
        let realOnly = check.dmdGradientMonteCarlo(blob, sigma: sigma, samples: 20_000, rng: &rng, fake: .none)
        let earlier = AffineGenerator2D(parameters: blob.parameters.map { 0.8 * $0 })
        let stale = check.dmdGradientMonteCarlo(blob, sigma: sigma, samples: 20_000, rng: &rng, fake: .stale(earlier))
        for (name, wrong) in [("s_real only", realOnly), ("lagging critic", stale)] {
            let worst = (0..<6).map { Swift.abs(wrong.mean[$0] - exact[$0]) / wrong.standardError[$0] }.max()!
            XCTAssertGreaterThan(worst, 10, "\(name) should be far from the KL gradient, got at most \(worst) SE")
        }
    }

    /// Reverse KL is mode-seeking: a Gaussian on one component scores log 8 at small σ and beats
    /// one that covers the ring; at large σ, where the components merge, covering wins.
    func testReverseKLPrefersOneModeAtSmallSigma() {
        let one = AffineGenerator2D(a: [0.08, 0, 0, 0.08], b: [1, 0])
        let cover = AffineGenerator2D(a: [0.7, 0, 0, 0.7], b: [0, 0])
        let klOne = check.kl(one, sigma: 0.1)
        // p_fake,σ is exactly component 0 noised at σ, so KL = log 8 − E[log(1 + Σ_{m≠0} p_m/p_0)].
        XCTAssertLessThanOrEqual(klOne, Foundation.log(8) + 1e-9)
        XCTAssertGreaterThan(klOne, Foundation.log(8) - 0.01)
        XCTAssertLessThan(klOne, check.kl(cover, sigma: 0.1))
        XCTAssertGreaterThan(check.kl(one, sigma: 2), check.kl(cover, sigma: 2))
    }
}
