// The FID network's extra layers against their definitions written as plain loops.
import DMD2Core
import DMD2Metrics
import DMD2Ops
import XCTest

final class InceptionOpsTests: XCTestCase {
    override func setUp() { Threads.count = 2 }

    func random(_ shape: [Int], seed: UInt64) -> Tensor<Float> {
        var rng = RandomGenerator(seed: seed)
        return rng.normal(shape)
    }

    /// y[n, o, i, j] = b[o] + Σ_{c,u,v} w[o, c, u, v]·x[n, c, i·s + u − ph, j·s + v − pw], in Double.
    func naiveConv(_ x: Tensor<Float>, _ w: Tensor<Float>, _ b: Tensor<Float>, stride s: Int, ph: Int, pw: Int) -> Tensor<Float> {
        let (N, C, H, W) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (O, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
        let Ho = (H + 2 * ph - kh) / s + 1, Wo = (W + 2 * pw - kw) / s + 1
        var y = Tensor<Float>.zeros([N, O, Ho, Wo])
        for n in 0..<N { for o in 0..<O { for i in 0..<Ho { for j in 0..<Wo {
            var acc = Double(b[o])
            for c in 0..<C { for u in 0..<kh { for v in 0..<kw {
                let h = i * s + u - ph, q = j * s + v - pw
                if h >= 0 && h < H && q >= 0 && q < W { acc += Double(w[o, c, u, v]) * Double(x[n, c, h, q]) }
            } } }
            y[n, o, i, j] = Float(acc)
        } } } }
        return y
    }

    func assertClose(_ a: Tensor<Float>, _ b: Tensor<Float>, tolerance: Float = 1e-5, _ message: String = "",
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.shape, b.shape, message, file: file, line: line)
        let diff = zip(a.scalars, b.scalars).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(diff, tolerance, "\(message): max |Δ| = \(diff)", file: file, line: line)
    }

    func testConvolutionMatchesDefinition() {
        let x = random([3, 3, 6, 7], seed: 1)
        // (kh, kw, stride, ph, pw): Inception's 1×7 / 7×1 / 1×3 / 3×1 shapes, a strided one, and a
        // square kernel (where it must also agree with DMD2Ops' Conv2D).
        for (kh, kw, s, ph, pw) in [(1, 7, 1, 0, 3), (7, 1, 1, 3, 0), (1, 3, 1, 0, 1), (3, 1, 1, 1, 0),
                                    (3, 2, 2, 1, 0), (3, 3, 1, 1, 1)] {
            let w = random([4, 3, kh, kw], seed: UInt64(10 * kh + kw)), b = random([4], seed: 7)
            let y = InceptionOps.convReLU(x, weight: w, bias: b, stride: s, padding: (ph, pw), relu: false)
            assertClose(y, naiveConv(x, w, b, stride: s, ph: ph, pw: pw), "\(kh)×\(kw) s\(s) p(\(ph), \(pw))")
            if kh == kw && ph == pw {
                assertClose(y, Conv2D.forward(x, weight: w, bias: b, stride: s, padding: ph), "vs Conv2D")
            }
            let r = InceptionOps.convReLU(x, weight: w, bias: b, stride: s, padding: (ph, pw))
            XCTAssertEqual(r.scalars, y.scalars.map { max($0, 0) }, "convReLU = ReLU(conv)")
        }
        // Images grouped per GEMM or one at a time: the same numbers. (A 1×1 conv on 3 images of
        // 6×7 groups all three; image by image is the same conv on each slice.)
        let w = random([5, 3, 1, 1], seed: 8), b = random([5], seed: 9)
        let all = InceptionOps.convReLU(x, weight: w, bias: b, stride: 1, padding: (0, 0))
        for n in 0..<3 {
            let xn = Tensor(shape: [1, 3, 6, 7], scalars: Array(x.scalars[(n * 126)..<((n + 1) * 126)]))
            let yn = InceptionOps.convReLU(xn, weight: w, bias: b, stride: 1, padding: (0, 0))
            XCTAssertEqual(yn.scalars, Array(all.scalars[(n * 210)..<((n + 1) * 210)]))
        }
    }

    func testLargeConvolutionSplitsIntoGroups() {
        // K·L above the col budget for 2 images: one GEMM per image, still the definition.
        let x = random([2, 8, 120, 120], seed: 10), w = random([3, 8, 5, 5], seed: 11), b = random([3], seed: 12)
        XCTAssertGreaterThan(2 * (8 * 25) * (120 * 120), InceptionOps.colBudget)      // 2 images' col [K, 2L]
        assertClose(InceptionOps.convReLU(x, weight: w, bias: b, stride: 1, padding: (2, 2), relu: false),
                    Conv2D.forward(x, weight: w, bias: b, stride: 1, padding: 2), tolerance: 1e-4, "5×5 on 120×120")
    }

    func testMaxPool() {
        let x = random([2, 3, 7, 6], seed: 2)
        for (k, s, p) in [(3, 2, 0), (3, 1, 1)] {
            let y = InceptionOps.maxPool(x, kernel: k, stride: s, padding: p)
            let Ho = (7 + 2 * p - k) / s + 1, Wo = (6 + 2 * p - k) / s + 1
            XCTAssertEqual(y.shape, [2, 3, Ho, Wo])
            for n in 0..<2 { for c in 0..<3 { for i in 0..<Ho { for j in 0..<Wo {
                var m = -Float.infinity             // padding never wins
                for u in 0..<k { for v in 0..<k {
                    let h = i * s + u - p, w = j * s + v - p
                    if h >= 0 && h < 7 && w >= 0 && w < 6 { m = max(m, x[n, c, h, w]) }
                } }
                XCTAssertEqual(y[n, c, i, j], m)
            } } } }
        }
        // All-negative input: a padded max-pool must not return the padding's 0.
        let negative = Tensor<Float>(repeating: -3, shape: [1, 1, 2, 2])
        XCTAssertEqual(InceptionOps.maxPool(negative, kernel: 3, stride: 1, padding: 1).scalars, [-3, -3, -3, -3])
    }

    func testAveragePoolExcludesPadding() {
        let x = random([1, 2, 4, 5], seed: 3)
        let y = InceptionOps.avgPool3x3ExcludingPadding(x)
        for c in 0..<2 { for i in 0..<4 { for j in 0..<5 {
            var sum = 0.0, count = 0
            for h in max(i - 1, 0)...min(i + 1, 3) { for w in max(j - 1, 0)...min(j + 1, 4) { sum += Double(x[0, c, h, w]); count += 1 } }
            XCTAssertEqual(Double(y[0, c, i, j]), sum / Double(count), accuracy: 1e-6)
        } } }
        // A constant image stays constant (corners divide by 4, edges by 6, not 9).
        XCTAssertEqual(InceptionOps.avgPool3x3ExcludingPadding(Tensor(repeating: 2, shape: [1, 1, 3, 3])).scalars,
                       [Float](repeating: 2, count: 9))
    }

    func testResizeIsTensorFlowLegacyBilinear() {
        // 1-D: 2 → 4 samples positions 0, 0.5, 1, 1.5 → a, (a+b)/2, b, b (the edge is replicated).
        let row = Tensor<Float>(shape: [1, 2], scalars: [10, 20])
        XCTAssertEqual(InceptionOps.resizeBilinearTF(row, height: 1, width: 4).scalars, [10, 15, 20, 20])
        // 4 → 3 samples positions 0, 4/3, 8/3.
        let four = Tensor<Float>(shape: [1, 4], scalars: [0, 3, 6, 9])
        let three = InceptionOps.resizeBilinearTF(four, height: 1, width: 3).scalars
        for (got, want) in zip(three, [0, 4, 8] as [Float]) { XCTAssertEqual(got, want, accuracy: 1e-5) }
        // Same size: identity.
        let x = random([2, 3, 5, 4], seed: 4)
        XCTAssertEqual(InceptionOps.resizeBilinearTF(x, height: 5, width: 4), x)
        // 2-D against the separable formula, 3×5 → 7×4.
        let img = random([1, 3, 5], seed: 5)
        let y = InceptionOps.resizeBilinearTF(img, height: 7, width: 4)
        func axis(_ i: Int, _ n: Int, _ m: Int) -> (Int, Int, Double) {
            let p = Double(i) * Double(n) / Double(m), i0 = Int(p)
            return (i0, min(i0 + 1, n - 1), p - Double(i0))
        }
        for i in 0..<7 { for j in 0..<4 {
            let (r0, r1, t) = axis(i, 3, 7), (c0, c1, u) = axis(j, 5, 4)
            let v = (1 - t) * ((1 - u) * Double(img[0, r0, c0]) + u * Double(img[0, r0, c1]))
                  + t * ((1 - u) * Double(img[0, r1, c0]) + u * Double(img[0, r1, c1]))
            XCTAssertEqual(Double(y[0, i, j]), v, accuracy: 1e-5)
        } }
    }

    func testConcatAndSpatialMean() {
        let a = random([2, 1, 2, 3], seed: 6), b = random([2, 3, 2, 3], seed: 7)
        let y = InceptionOps.concatChannels([a, b])
        XCTAssertEqual(y.shape, [2, 4, 2, 3])
        for n in 0..<2 { for c in 0..<4 { for i in 0..<2 { for j in 0..<3 {
            XCTAssertEqual(y[n, c, i, j], c == 0 ? a[n, 0, i, j] : b[n, c - 1, i, j])
        } } } }
        let m = InceptionOps.spatialMean(y)
        XCTAssertEqual(m.shape, [2, 4])
        for n in 0..<2 { for c in 0..<4 {
            var s: Float = 0
            for i in 0..<2 { for j in 0..<3 { s += y[n, c, i, j] } }
            XCTAssertEqual(m[n, c], s / 6, accuracy: 1e-6)
        } }
    }
}
