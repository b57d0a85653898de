// conv2d against PyTorch (Fixtures/conv2d.safetensors from reference/make_fixtures.py), against a
// direct-convolution loop at a moderate size, and run-to-run reproducibility.
import DMD2Core
import DMD2Ops
import DMD2Checks
import Foundation
import SafeTensors
import DMD2TestSupport
import XCTest

final class Conv2DFixtureTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    /// One fixture case's parameters (its metadata value, a JSON object).
    struct Params: Decodable { var kernel, stride, padding: Int }

    /// Forward and VJPs of every fixture case: Double within 1e-10, Float within 1e-4, relative
    /// to the largest |value| of PyTorch's float64 result.
    func testAgainstPyTorch() throws {
        let file = try fixture("conv2d")
        let names = fixtureCases(file)
        XCTAssertEqual(names, ["k1s1p0", "k3s1p1", "k3s2p1", "k4s2p1", "k4s4p0"],
                       "conv2d.safetensors holds other cases than expected; regenerate with python3 reference/make_fixtures.py")
        for name in names {
            let params = try JSONDecoder().decode(Params.self, from: Data(file.metadata[name]!.utf8))
            XCTAssertEqual([params.kernel, params.kernel], try file.tensor("\(name).weight", as: Double.self).shape.suffix(2).map { $0 })
            try check(Double.self, file, name, params, tol: 1e-10)
            try check(Float.self, file, name, params, tol: 1e-4)
        }
    }

    private func check<T: TensorScalar>(
        _: T.Type, _ file: SafeTensorsFile, _ name: String, _ p: Params, tol: Double
    ) throws {
        func load(_ key: String) throws -> Tensor<T> { try file.tensor("\(name).\(key)", as: T.self) }
        func reference(_ key: String) throws -> Tensor<Double> { try file.tensor("\(name).\(key)", as: Double.self) }
        let x = Variable(try load("x"), requiresGrad: true)
        let w = Variable(try load("weight"), requiresGrad: true)
        let b = Variable(try load("bias"), requiresGrad: true)
        let y = conv2d(x, weight: w, bias: b, stride: p.stride, padding: p.padding)
        let grads = gradients(of: y, withRespectTo: [x, w, b], seed: try load("gy"))
        let hint = "(\(T.self), case \(name), kernel \(p.kernel) stride \(p.stride) padding \(p.padding); if the fixture changed, regenerate with python3 reference/make_fixtures.py)"
        for (ours, key) in [(y.value, "y"), (grads[0], "gx"), (grads[1], "gweight"), (grads[2], "gbias")] {
            do {
                try GradCheck.compare(ours.converted(), try reference(key), tol: tol, what: "conv2d \(key) vs PyTorch \(hint)")
            } catch { XCTFail("\(error)") }
        }
    }

    /// The same inputs give bitwise the same outputs and gradients on every run at a fixed
    /// thread count, and — since no conv2d sum is split across threads (BLIS partitions GEMMs
    /// over rows and columns, col2im over channels, the bias sum over channels) — the same as
    /// one thread gives.
    func testReproducibleAcrossRunsAndThreadCounts() {
        let x = randn([3, 8, 12, 12], seed: 1).converted(to: Float.self)
        let w = randn([16, 8, 3, 3], seed: 2, scale: 0.1).converted(to: Float.self)
        let b = randn([16], seed: 3).converted(to: Float.self)
        let gy = randn([3, 16, 6, 6], seed: 4).converted(to: Float.self)
        func run(threads: Int) -> [Tensor<Float>] {
            Threads.with(threads) {
                let vs = [x, w, b].map { Variable($0, requiresGrad: true) }
                let y = conv2d(vs[0], weight: vs[1], bias: vs[2], stride: 2, padding: 1)
                return [y.value] + gradients(of: y, withRespectTo: vs, seed: gy)
            }
        }
        let first = run(threads: 2), second = run(threads: 2), single = run(threads: 1)
        for (k, name) in ["y", "dX", "dWeight", "dBias"].enumerated() {
            XCTAssertEqual(first[k].scalars, second[k].scalars, "conv2d \(name) differs between two runs with 2 threads")
            XCTAssertEqual(first[k].scalars, single[k].scalars, "conv2d \(name) differs between 2 threads and 1 thread")
        }
    }

    /// Float conv2d and its VJPs at N=2, C=16, 16×16 against a direct loop accumulating in Double.
    func testAgainstDirectLoop() throws {
        let (N, C, H, W, O) = (2, 16, 16, 16, 8)
        for (k, s, p) in [(3, 1, 1), (1, 1, 0), (4, 2, 1), (4, 4, 0), (3, 2, 1)] {
            let x = randn([N, C, H, W], seed: 11).converted(to: Float.self)
            let w = randn([O, C, k, k], seed: 12, scale: 1 / Double(C * k * k).squareRoot()).converted(to: Float.self)
            let b = randn([O], seed: 13).converted(to: Float.self)
            let (Ho, Wo) = ((H + 2 * p - k) / s + 1, (W + 2 * p - k) / s + 1)
            let gy = randn([N, O, Ho, Wo], seed: 14).converted(to: Float.self)

            let vs = [x, w, b].map { Variable($0, requiresGrad: true) }
            let y = conv2d(vs[0], weight: vs[1], bias: vs[2], stride: s, padding: p)
            let grads = gradients(of: y, withRespectTo: vs, seed: gy)

            // The definition, term by term: every (n, o, i, j, c, u, v) whose input pixel lies
            // inside the image contributes to y, dX and dWeight.
            var yRef = [Double](repeating: 0, count: N * O * Ho * Wo)
            var dxRef = [Double](repeating: 0, count: x.count)
            var dwRef = [Double](repeating: 0, count: w.count)
            var dbRef = [Double](repeating: 0, count: O)
            for n in 0..<N { for o in 0..<O { for i in 0..<Ho { for j in 0..<Wo {
                let yi = ((n * O + o) * Ho + i) * Wo + j
                let g = Double(gy.scalars[yi])
                var acc = Double(b.scalars[o])
                dbRef[o] += g
                for c in 0..<C { for u in 0..<k { for v in 0..<k {
                    let h = i * s + u - p, ww = j * s + v - p
                    guard h >= 0, h < H, ww >= 0, ww < W else { continue }
                    let xi = ((n * C + c) * H + h) * W + ww, wi = ((o * C + c) * k + u) * k + v
                    acc += Double(w.scalars[wi]) * Double(x.scalars[xi])
                    dxRef[xi] += Double(w.scalars[wi]) * g
                    dwRef[wi] += Double(x.scalars[xi]) * g
                } } }
                yRef[yi] = acc
            } } } }

            let what = "conv2d k\(k)s\(s)p\(p) on [\(N), \(C), \(H), \(W)] vs direct loop"
            let tol = GradCheck.floatTolerance(reductionLength: max(C * k * k, N * Ho * Wo, O * k * k))
            let pairs: [(Tensor<Float>, [Double], [Int], String)] = [
                (y.value, yRef, [N, O, Ho, Wo], "y"), (grads[0], dxRef, x.shape, "dX"),
                (grads[1], dwRef, w.shape, "dWeight"), (grads[2], dbRef, [O], "dBias"),
            ]
            for (ours, ref, shape, name) in pairs {
                do {
                    try GradCheck.compare(ours.converted(), Tensor(shape: shape, scalars: ref), tol: tol, what: "\(what): \(name)")
                } catch { XCTFail("\(error)") }
            }
        }
    }
}
