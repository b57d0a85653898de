import DMD2Core
import DMD2Metrics
import Foundation
import XCTest

final class RealFFT2DTests: XCTestCase {
    /// FFTW's half spectrum equals a direct O(H²W²) DFT, in Double and in Float.
    func testMatchesDirectDFT() {
        let H = 6, W = 5, Wc = W / 2 + 1
        var rng = RandomGenerator(seed: 11)
        let x: Tensor<Double> = rng.normal([H * W])
        let (re, im) = RealFFT2D.forward(x.scalars, height: H, width: W)
        let (reF, imF) = RealFFT2D.forward(x.scalars.map(Float.init), height: H, width: W)
        for u in 0..<H {
            for v in 0..<Wc {
                var sr = 0.0, si = 0.0
                for h in 0..<H {
                    for w in 0..<W {
                        let a = -2 * Double.pi * (Double(u * h) / Double(H) + Double(v * w) / Double(W))
                        sr += x.scalars[h * W + w] * cos(a)
                        si += x.scalars[h * W + w] * sin(a)
                    }
                }
                XCTAssertEqual(re[u * Wc + v], sr, accuracy: 1e-12)
                XCTAssertEqual(im[u * Wc + v], si, accuracy: 1e-12)
                XCTAssertEqual(Double(reF[u * Wc + v]), sr, accuracy: 1e-4)
                XCTAssertEqual(Double(imF[u * Wc + v]), si, accuracy: 1e-4)
            }
        }
    }

    /// Parseval: Σ|x|² = (1/HW)·Σ over the full spectrum of |X|² (half spectrum counted twice
    /// except the self-conjugate columns).
    func testParseval() {
        let H = 8, W = 8, Wc = W / 2 + 1
        var rng = RandomGenerator(seed: 12)
        let x: Tensor<Double> = rng.normal([H * W])
        let p = RealFFT2D.power(x.scalars, height: H, width: W)
        var total = 0.0
        for u in 0..<H { for v in 0..<Wc { total += p[u * Wc + v] * ((v == 0 || v == W / 2) ? 1 : 2) } }
        XCTAssertEqual(total / Double(H * W), x.dot(x), accuracy: 1e-9)
    }
}
