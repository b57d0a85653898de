// The CUDA adapter: it reports cleanly where there is no GPU, and its kernels run — on the GPU
// where there is one, and always on the host emulator (the same CUDA C source compiled by the
// host C++ compiler; HostEmulator.swift) — through the conformance suites of this target.
import DMD2Checks
import DMD2Core
import DMD2CUDA
import DMD2TestSupport
import XCTest

final class CUDABackendTests: CheckedTestCase {
    func testAvailabilityNeverCrashes() throws {
        let availability = CUDABackend.availability
        print("CUDABackendTests: CUDA \(availability)")
        switch availability {
        case .available(let device):
            let backend = try CUDABackend()
            XCTAssertEqual(backend.name, "cuda")
            XCTAssertEqual(backend.deviceSummary, device)
        case .unavailable(let reason):
            XCTAssertFalse(reason.isEmpty)
            XCTAssertThrowsError(try CUDABackend())
            throw XCTSkip("skipped: no CUDA device (\(reason))")
        }
    }

    func testEmulatorRunsTheKernelsAndCountsPlacements() throws {
        guard case .available(let summary) = CUDABackend.emulatorAvailability else {
            throw XCTSkip("skipped: no C++ compiler for the CUDA host emulator (\(CUDABackend.emulatorAvailability))")
        }
        print("CUDABackendTests: \(summary)")
        let backend = try CUDABackend.emulated()
        // GroupNorm over 300·4 values per group: past one block of 256 threads, so the block
        // reduction's strided loop and its barriers both run.
        let x = randnFloat([2, 8, 300], seed: 1)
        let (y, mean, rstd) = groupNorm(x, on: backend)
        let (yRef, meanRef, rstdRef) = groupNorm(x, on: ReferenceBackend())
        for (a, r) in zip(mean + rstd + y, meanRef + rstdRef + yRef) { XCTAssertEqual(a, r, accuracy: 1e-4 * max(1, abs(r))) }
        XCTAssertEqual(backend.placements["groupNorm"]?.device, 1)
        XCTAssertEqual(backend.placements["groupNorm"]?.cpu, 0)
        XCTAssertTrue(CUDABackend.fallbackPrimitives.isEmpty)
        XCTAssertGreaterThan(backend.cachedDeviceBytes, 0, "the caching allocator keeps buffers for reuse")
    }

    /// GroupNorm of x [2, 8, 300] in 2 groups: y, mean, rstd.
    func groupNorm(_ x: [Float], on backend: any Backend) -> ([Float], [Float], [Float]) {
        var y = [Float](repeating: 0, count: x.count), mean = [Float](repeating: 0, count: 4), rstd = mean
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                mean.withUnsafeMutableBufferPointer { mp in
                    rstd.withUnsafeMutableBufferPointer { rp in
                        backend.groupNorm(xp, N: 2, C: 8, L: 300, groups: 2, eps: 1e-5, gamma: nil, beta: nil, yp, mean: mp, rstd: rp)
                    }
                }
            }
        }
        return (y, mean, rstd)
    }

    func randnFloat(_ shape: [Int], seed: UInt64) -> [Float] {
        var rng = RandomGenerator(seed: seed)
        return (rng.normal(shape) as Tensor<Double>).scalars.map { Float($0) }
    }
}
