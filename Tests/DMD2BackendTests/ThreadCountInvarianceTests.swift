// Results do not depend on the thread count, bit for bit: the pool (Parallel.swift) cuts every
// loop and every GEMM into chunks by problem size only and combines reduction partials in chunk
// order, so 1, 2 and 3 threads must give identical bytes. Covered here: elementwise maps, a
// full sum, a matmul forward and backward, GroupNorm + SiLU, a conv forward and backward big
// enough to be cut into several GEMM blocks, and the small UNet's forward and backward (Float,
// the training precision, and Double).
import DMD2Core
import DMD2Ops
import EDM
import XCTest

final class ThreadCountInvarianceTests: XCTestCase {
    override func setUp() { Threads.count = 2 }

    /// Runs `compute` at 1, 2 and 3 threads and asserts every output is bitwise the same.
    private func assertSameForEveryThreadCount<T: TensorScalar>(
        _ label: String, _ compute: () -> [Tensor<T>], file: StaticString = #filePath, line: UInt = #line
    ) {
        let reference = Threads.with(1) { compute() }
        XCTAssertFalse(reference.isEmpty, label, file: file, line: line)
        for threads in [2, 3] {
            let outputs = Threads.with(threads) { compute() }
            XCTAssertEqual(outputs.count, reference.count, label, file: file, line: line)
            for (i, (a, b)) in zip(outputs, reference).enumerated() {
                XCTAssertEqual(a.shape, b.shape, "\(label) output \(i), \(threads) threads", file: file, line: line)
                let same = a.withUnsafeBufferPointer { x in
                    b.withUnsafeBufferPointer { y in
                        x.count == y.count && memcmp(x.baseAddress!, y.baseAddress!, x.count * MemoryLayout<T>.stride) == 0
                    }
                }
                XCTAssertTrue(same, "\(label) output \(i): \(threads) threads differ bitwise from 1 thread", file: file, line: line)
            }
        }
    }

    /// A parallel loop inside a parallel loop's chunk (and a GEMM inside one) runs inline on
    /// that thread: every index is visited once, nothing deadlocks, and the result does not
    /// depend on the thread count.
    func testNestedParallelLoopsRunInline() {
        var rng = RandomGenerator(seed: 13)
        let a: Tensor<Float> = rng.normal([192, 64]), b: Tensor<Float> = rng.normal([64, 4096])
        for threads in [1, 2, 3] {
            Threads.with(threads) {
                var hits = [Int](repeating: 0, count: 64 * 1000)
                hits.withUnsafeMutableBufferPointer { h in
                    let p = UncheckedPointer(h.baseAddress!)
                    parallelFor(64) { outer in
                        parallelFor(1000) { inner in p.value[outer * 1000 + inner] += 1 }
                    }
                }
                XCTAssertEqual(hits, [Int](repeating: 1, count: 64 * 1000), "\(threads) threads")
            }
        }
        assertSameForEveryThreadCount("GEMMs inside a parallel loop") {
            let boxes = (0..<4).map { _ in UncheckedPointer(UnsafeMutablePointer<Float>.allocate(capacity: 192 * 4096)) }
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    let operands = UncheckedPointer((ap.baseAddress!, bp.baseAddress!))
                    parallelFor(4) { i in
                        Compute.backend.gemm(transA: false, transB: false, m: 192, n: 4096, k: 64,
                                             alpha: Float(i + 1), a: operands.value.0, lda: 64, b: operands.value.1, ldb: 4096,
                                             beta: 0, c: boxes[i].value, ldc: 4096)
                    }
                }
            }
            return boxes.map { box in
                defer { box.value.deallocate() }
                return Tensor(shape: [192, 4096], scalars: Array(UnsafeBufferPointer(start: box.value, count: 192 * 4096)))
            }
        }
    }

    func testElementwiseSumAndMatmul() {
        var rng = RandomGenerator(seed: 11)
        let x: Tensor<Float> = rng.normal([1 << 20]), y: Tensor<Float> = rng.normal([1 << 20])
        assertSameForEveryThreadCount("elementwise and sum") {
            let v = Variable(x, requiresGrad: true)
            let s = silu(v * Variable(y) + Variable(x))
            let total = sum(s)
            return [s.value, total.value, gradients(of: total, withRespectTo: [v])[0], Tensor(shape: [1], scalars: [x.sum()])]
        }
        // Wide (column blocks) and tall (row blocks) products, forward and backward.
        for (m, k, n) in [(64, 300, 4000), (3000, 200, 48)] {
            let a: Tensor<Float> = rng.normal([m, k]), b: Tensor<Float> = rng.normal([k, n])
            XCTAssertGreaterThan(CPUBackend.gemmBlocks(m: m, n: n, k: k).count, 2, "the product is cut into blocks")
            assertSameForEveryThreadCount("matmul \(m)×\(k)×\(n)") {
                let va = Variable(a, requiresGrad: true), vb = Variable(b, requiresGrad: true)
                let c = matmul(va, vb)
                return [c.value] + gradients(of: c, withRespectTo: [va, vb])
            }
        }
    }

    func testConvForwardAndBackward() {
        var rng = RandomGenerator(seed: 12)
        // N 4, 32 → 48 channels at 32×32: one GEMM of 48 × 4096 × 288, several column blocks.
        let x: Tensor<Float> = rng.normal([4, 32, 32, 32]), w: Tensor<Float> = rng.normal([48, 32, 3, 3], std: 0.1)
        let b: Tensor<Float> = rng.normal([48]), seed: Tensor<Float> = rng.normal([4, 48, 32, 32])
        XCTAssertGreaterThan(CPUBackend.gemmBlocks(m: 48, n: 4096, k: 288).count, 2)
        assertSameForEveryThreadCount("conv2d + groupNorm + silu") {
            let vx = Variable(x, requiresGrad: true), vw = Variable(w, requiresGrad: true), vb = Variable(b, requiresGrad: true)
            let y = silu(groupNorm(conv2d(vx, weight: vw, bias: vb, padding: 1), groups: 8, weight: nil, bias: nil))
            return [y.value] + gradients(of: y, withRespectTo: [vx, vw, vb], seed: seed)
        }
    }

    func testSmallUNetForwardAndBackward() {
        let parameters = SmallUNet.parameters(), inputs = SmallUNet.inputs()
        assertSameForEveryThreadCount("small UNet, Float") { SmallUNet.step(Float.self, parameters: parameters, inputs: inputs) }
        assertSameForEveryThreadCount("small UNet, Double") { SmallUNet.step(Double.self, parameters: parameters, inputs: inputs) }
    }
}

/// Pointers carried into a parallel loop whose chunks touch disjoint memory.
private struct UncheckedPointer<P>: @unchecked Sendable {
    let value: P
    init(_ value: P) { self.value = value }
}
