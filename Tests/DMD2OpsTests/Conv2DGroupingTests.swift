// Conv2D unfolds a group of G images into one wide GEMM (col [K, G·L], Conv2D.gemmColumns,
// Conv2D.maxColumnBytes). Grouping must not change the result beyond rounding: here a batched
// convolution — forward, and the three gradients of the backward pass — is compared with the
// same convolution done one image at a time, for batch sizes that straddle the group size
// (one group, a full group plus a remainder, several groups), strides 1/2/4, kernels 1/3/4
// (the pointwise path included), in Float and Double.
//
// The bound: every output is a sum of products. A floating-point sum of n products, in any
// order, is within γ_n·Σ|terms| of the exact value (γ_n = n·u/(1 − n·u), u the unit roundoff),
// so two orders differ by at most 2·γ_n·Σ|terms|. Σ|terms| per element is the same convolution
// on absolute values, computed in Double:
//   y:  n = K + 1 (the dot product and the bias),  Σ|terms| = conv(|x|, |W|) + |b|
//   dX: n = O·⌈k/s⌉² (the Wᵀ·dY GEMM, then col2im's overlapping adds),  Σ = backward(|dY|, W → |W|).dX
//   dW: n = N·L + N (the per-image sums added up), Σ = backward(|dY|, x → |x|).dW
//   dB: n = N·L + N,                                Σ = Σ_{n,l} |dY|
// A misplaced column, a wrong sample offset or a missed group gives errors of the size of the
// values themselves, far outside this bound. How many elements are bitwise equal is printed.
import DMD2Core
import DMD2Ops
import Foundation
import DMD2TestSupport
import XCTest

final class Conv2DGroupingTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    struct Case: CustomStringConvertible {
        var C, O, H, k, stride, padding: Int
        var description: String { "C\(C) O\(O) \(H)×\(H) k\(k) s\(stride) p\(padding)" }
    }

    /// Kernels 1, 3, 4 and strides 1, 2, 4, with the paddings the UNet and the GAN head use.
    let cases = [
        Case(C: 5, O: 6, H: 8, k: 1, stride: 1, padding: 0),       // pointwise: col is x itself
        Case(C: 5, O: 6, H: 9, k: 1, stride: 2, padding: 0),       // a 1×1 kernel that needs unfolding
        Case(C: 4, O: 7, H: 8, k: 3, stride: 1, padding: 1),
        Case(C: 4, O: 7, H: 9, k: 3, stride: 2, padding: 1),
        Case(C: 3, O: 5, H: 10, k: 3, stride: 4, padding: 1),
        Case(C: 6, O: 6, H: 8, k: 4, stride: 2, padding: 1),       // the head's first conv
        Case(C: 6, O: 6, H: 4, k: 4, stride: 4, padding: 0),       // the head's second conv: L = 1
        Case(C: 4, O: 3, H: 12, k: 4, stride: 4, padding: 0),
    ]

    func testBatchedEqualsPerImageAcrossGroupBoundaries() {
        var bitwise = [String: (equal: Int, total: Int)]()
        for c in cases {
            let g0 = Conv2D.Geometry(x: [1, c.C, c.H, c.H], weight: [c.O, c.C, c.k, c.k], stride: c.stride, padding: c.padding)
            // Groups of 3 images; N = 1…7 gives one partial group, one full, full + 1, …, 3 groups.
            let columns = 3 * g0.L
            for N in [1, 2, 3, 4, 5, 7] {
                compare(Float.self, c, N: N, gemmColumns: columns, stats: &bitwise)
                compare(Double.self, c, N: N, gemmColumns: columns, stats: &bitwise)
            }
        }
        // The default column target: 8×8 outputs (L = 64) are grouped 64 at a time, so 65 images
        // make two groups (33 + 32).
        let c = Case(C: 2, O: 3, H: 8, k: 3, stride: 1, padding: 1)
        let g = Conv2D.Geometry(x: [65, 2, 8, 8], weight: [3, 2, 3, 3], stride: 1, padding: 1)
        XCTAssertEqual(g.sampleGroups(columns: Conv2D.gemmColumns, elementSize: 4), [0..<33, 33..<65])
        compare(Float.self, c, N: 65, gemmColumns: Conv2D.gemmColumns, stats: &bitwise)
        for (key, s) in bitwise.sorted(by: { $0.key < $1.key }) { print("conv grouping, \(key): \(s.equal) of \(s.total) elements bitwise equal") }
    }

    /// Consecutive groups covering the batch, at most ⌈columns/L⌉ images and no more than fit
    /// maxColumnBytes (but at least one), evened out.
    func testSampleGroups() {
        func groups(N: Int, C: Int, H: Int, k: Int, stride: Int = 1, columns: Int = Conv2D.gemmColumns, size: Int = 4) -> [Range<Int>] {
            Conv2D.Geometry(x: [N, C, H, H], weight: [C, C, k, k], stride: stride, padding: k / 2).sampleGroups(columns: columns, elementSize: size)
        }
        XCTAssertEqual(groups(N: 20, C: 4, H: 16, k: 3), [0..<10, 10..<20], "L = 256: 16 wanted, evened to 10 + 10")
        XCTAssertEqual(groups(N: 7, C: 4, H: 8, k: 3, columns: 192), [0..<3, 3..<6, 6..<7])
        XCTAssertEqual(groups(N: 3, C: 4, H: 64, k: 3), [0..<1, 1..<2, 2..<3], "L = 4096: one image per GEMM")
        XCTAssertEqual(groups(N: 0, C: 4, H: 8, k: 3), [])
        // K·L·4 = 2304·1024·4 bytes = 9 MiB per image: 3 fit in 32 MiB although 4 are wanted.
        let big = groups(N: 8, C: 256, H: 32, k: 3)
        XCTAssertEqual(big, [0..<3, 3..<6, 6..<8])
        XCTAssertLessThanOrEqual(3 * 2304 * 1024 * 4, Conv2D.maxColumnBytes)
        // Too big for even one image: one at a time, never zero.
        XCTAssertEqual(groups(N: 2, C: 2048, H: 64, k: 3), [0..<1, 1..<2])
        for N in 1...40 {
            let r = groups(N: N, C: 3, H: 8, k: 3, columns: 5 * 64)
            XCTAssertEqual(r.first?.lowerBound, 0)
            XCTAssertEqual(r.last?.upperBound, N)
            XCTAssertTrue(zip(r, r.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
            XCTAssertTrue(r.allSatisfy { $0.count <= 5 && !$0.isEmpty })
            XCTAssertEqual(r.count, (N + 4) / 5)
        }
    }

    // MARK: Helpers

    func compare<T: TensorScalar>(_: T.Type, _ c: Case, N: Int, gemmColumns: Int, stats: inout [String: (equal: Int, total: Int)],
                                  line: UInt = #line) {
        let seed = UInt64(N * 1000 + c.k * 100 + c.stride * 10 + c.H)
        var rng = RandomGenerator(seed: seed)
        let x: Tensor<T> = rng.normal([N, c.C, c.H, c.H])
        let w: Tensor<T> = rng.normal([c.O, c.C, c.k, c.k], std: 1 / Double(c.C * c.k * c.k).squareRoot())
        let b: Tensor<T> = rng.normal([c.O])
        let geometry = Conv2D.Geometry(x: x.shape, weight: w.shape, stride: c.stride, padding: c.padding)
        let dY: Tensor<T> = rng.normal(geometry.outputShape)
        let groups = geometry.sampleGroups(columns: gemmColumns, elementSize: MemoryLayout<T>.stride)
        let label = "\(T.self) \(c), N \(N), groups \(groups.map(\.count))"

        // Batched, with the requested grouping.
        let y = Conv2D.forward(x, weight: w, bias: b, stride: c.stride, padding: c.padding, gemmColumns: gemmColumns)
        let grads = Conv2D.backward(dY, x: x, weight: w, stride: c.stride, padding: c.padding,
                                    needX: true, needWeight: true, needBias: true, gemmColumns: gemmColumns)
        // One image at a time (every group of one), dW and dB summed over the images.
        var yImages: [T] = [], dXImages: [T] = []
        var dW = Tensor<T>.zeros(w.shape), dB = Tensor<T>.zeros(b.shape)
        for n in 0..<N {
            let xn = image(x, n), dYn = image(dY, n)
            yImages += Conv2D.forward(xn, weight: w, bias: b, stride: c.stride, padding: c.padding).scalars
            let g = Conv2D.backward(dYn, x: xn, weight: w, stride: c.stride, padding: c.padding, needX: true, needWeight: true, needBias: true)
            dXImages += g.dX!.scalars
            dW = dW + g.dWeight!
            dB = dB + g.dBias!
        }

        // Σ|terms| per element, in Double.
        let (xa, wa, dYa) = (absolute(x), absolute(w), absolute(dY))
        let ySum = Conv2D.forward(xa, weight: wa, bias: absolute(b), stride: c.stride, padding: c.padding)
        let dXSum = Conv2D.backward(dYa, x: xa, weight: wa, stride: c.stride, padding: c.padding, needX: true, needWeight: false, needBias: false).dX!
        let dWSum = Conv2D.backward(dYa, x: xa, weight: wa, stride: c.stride, padding: c.padding, needX: false, needWeight: true, needBias: false).dWeight!
        let dBSum = dYa.reshaped([N, c.O, geometry.L]).sum(axis: 2).sum(axis: 0)
        let reach = (c.k + c.stride - 1) / c.stride
        let L = geometry.L
        check(y.scalars, yImages, bound: ySum, n: geometry.K + 1, T.self, "\(label): y", &stats, line: line)
        check(grads.dX!.scalars, dXImages, bound: dXSum, n: c.O * reach * reach, T.self, "\(label): dX", &stats, line: line)
        check(grads.dWeight!.scalars, dW.scalars, bound: dWSum, n: N * L + N, T.self, "\(label): dW", &stats, line: line)
        check(grads.dBias!.scalars, dB.scalars, bound: dBSum, n: N * L + N, T.self, "\(label): dB", &stats, line: line)
    }

    /// |a − b| ≤ 2·γ_n·Σ|terms| element by element (see the file header); counts bitwise equality.
    func check<T: TensorScalar>(_ a: [T], _ b: [T], bound: Tensor<Double>, n: Int, _: T.Type, _ what: String,
                                _ stats: inout [String: (equal: Int, total: Int)], line: UInt) {
        XCTAssertEqual(a.count, b.count, what, line: line)
        let u = T.self == Float.self ? Double(Float.ulpOfOne) / 2 : Double.ulpOfOne / 2
        let γ = Double(n) * u / (1 - Double(n) * u)
        var worst = 0.0, worstIndex = 0, equal = 0
        for i in 0..<min(a.count, b.count) {
            let e = Swift.abs(Double(a[i]) - Double(b[i]))
            if a[i] == b[i] { equal += 1 }
            // 2γ_n·Σ|terms|, plus a little for the Double evaluation of Σ|terms| itself.
            let allowed = 2 * γ * bound.scalars[i] * (1 + 1e-12)
            let ratio = allowed > 0 ? e / allowed : (e == 0 ? 0 : .infinity)
            if ratio > worst { worst = ratio; worstIndex = i }
        }
        XCTAssertLessThanOrEqual(worst, 1, "\(what): element \(worstIndex) differs by \(Swift.abs(Double(a[worstIndex]) - Double(b[worstIndex]))), over the rounding bound", line: line)
        let key = what.split(separator: ":").last!.trimmingCharacters(in: .whitespaces) + " (\(T.self))"
        let s = stats[key] ?? (0, 0)
        stats[key] = (s.equal + equal, s.total + a.count)
    }

    /// Image n of [N, …] as [1, …].
    func image<T: TensorScalar>(_ t: Tensor<T>, _ n: Int) -> Tensor<T> {
        let size = t.count / t.shape[0]
        return Tensor(shape: [1] + Array(t.shape.dropFirst()), scalars: Array(t.scalars[(n * size)..<((n + 1) * size)]))
    }

    func absolute<T: TensorScalar>(_ t: Tensor<T>) -> Tensor<Double> { t.converted(to: Double.self).map(.abs) }
}
