// The CUDA backend: every primitive of DMD2Core's Backend protocol on an NVIDIA GPU.
//
// A conformance vehicle, not a fast path. The protocol hands over host pointers, so each
// primitive copies its inputs to device buffers (from a caching allocator), launches an
// NVRTC-compiled kernel (CUDAKernels.swift) or cuBLAS, waits, and copies its outputs back. The
// PCIe round trip per primitive costs more than the arithmetic saves at these sizes; what the
// backend proves is that the seam holds — every op of the UNet and of DMD2 runs on another
// device through the same primitives and agrees with the CPU reference (the conformance suite,
// the shadow mode).
//
// A device-resident design would keep tensors on the device: `Tensor` storage becomes a
// handle (host array or device buffer, with the copy made lazily on first host access); the
// primitives take and return handles instead of pointers; the autograd tape keeps handles, so
// activations stay on the GPU between forward and backward; launches go to a stream and
// synchronise only where the host reads a value (a loss, a norm, a NaN check); and the
// per-primitive kernels fuse (GroupNorm+SiLU, bias+activation, flash-style attention instead of
// S = QᵀK, softmax, A = VWᵀ). The primitive set itself would not change, so this suite and the
// shadow mode would check that backend as they check this one.
//
// Fallbacks: every primitive has a kernel for Float and Double. An element type without
// kernels (neither Float nor Double) runs on the CPU backend, explicitly, and is counted in
// `placements` as such; `fallbackPrimitives` lists the primitives that always run on the CPU
// (none).
import DMD2Core
import Foundation

/// Whether this machine can run the CUDA backend, and why not when it cannot.
public enum CUDAAvailability: Sendable, Equatable, CustomStringConvertible {
    /// Usable; the device and the library versions in words.
    case available(String)
    /// Not usable here; the reason (no libcuda, no device, a library missing, a compile error).
    case unavailable(String)

    public var isAvailable: Bool { if case .available = self { return true } else { return false } }

    public var description: String {
        switch self {
        case .available(let device): return "available: \(device)"
        case .unavailable(let reason): return "unavailable: \(reason)"
        }
    }
}

public final class CUDABackend: Backend, @unchecked Sendable {
    public let name: String
    let runtime: DeviceRuntime
    let cpu = CPUBackend()
    private let countsLock = NSLock()
    private var counts: [String: (device: Int, cpu: Int)] = [:]

    /// Primitives that always run on the CPU backend (none: every primitive has a kernel).
    public static let fallbackPrimitives: [String] = []

    // MARK: Devices

    /// The GPU device, opened once per process (nil error when it opened).
    private static let gpu: Result<DeviceRuntime, CUDAError> = {
        do { return .success(DeviceRuntime(device: try CUDADriverDevice())) }
        catch let error as CUDAError { return .failure(error) }
        catch { return .failure(CUDAError("\(error)")) }
    }()

    private static let emulator: Result<DeviceRuntime, CUDAError> = {
        do { return .success(DeviceRuntime(device: try HostEmulatedDevice())) }
        catch let error as CUDAError { return .failure(error) }
        catch { return .failure(CUDAError("\(error)")) }
    }()

    /// Whether a GPU can run this backend here: loads libcuda, finds a device, loads NVRTC and
    /// cuBLAS and compiles the kernels (once per process); never crashes.
    public static var availability: CUDAAvailability {
        switch gpu {
        case .success(let runtime): return .available(runtime.device.summary)
        case .failure(let error): return .unavailable(error.description)
        }
    }

    /// Whether the host emulator can run (a C++ compiler compiled the kernels).
    public static var emulatorAvailability: CUDAAvailability {
        switch emulator {
        case .success(let runtime): return .available(runtime.device.summary)
        case .failure(let error): return .unavailable(error.description)
        }
    }

    /// The backend on the GPU (device DMD2_CUDA_DEVICE, default 0); throws the reason when
    /// there is none.
    public init() throws {
        runtime = try Self.gpu.get()
        name = "cuda"
    }

    /// The same backend with the kernels compiled for the host and run thread by thread
    /// (HostEmulator.swift): checks the kernel source and the data movement without a GPU.
    public static func emulated() throws -> CUDABackend {
        try CUDABackend(runtime: emulator.get(), name: "cuda-emu")
    }

    private init(runtime: DeviceRuntime, name: String) {
        self.runtime = runtime
        self.name = name
    }

    /// Adds "cuda" and "cuda-emu" to `BackendRegistry` (so `--backend cuda`, DMD2_BACKEND=cuda
    /// and "shadow:cuda" find them).
    public static func register() {
        BackendRegistry.register("cuda") { try CUDABackend() }
        BackendRegistry.register("cuda-emu") { try CUDABackend.emulated() }
    }

    /// The device in words.
    public var deviceSummary: String { runtime.device.summary }

    /// Per primitive: calls that ran on the device and calls that fell back to the CPU.
    public var placements: [String: (device: Int, cpu: Int)] {
        countsLock.lock()
        defer { countsLock.unlock() }
        return counts
    }

    /// Bytes held by the caching allocator.
    public var cachedDeviceBytes: Int { runtime.cachedBytes }

    /// Give the allocator's cached buffers back to the driver.
    public func trimCache() { runtime.trim() }

    // MARK: Plumbing

    private func count(_ primitive: String, onDevice: Bool) {
        countsLock.lock()
        defer { countsLock.unlock() }
        var c = counts[primitive, default: (0, 0)]
        if onDevice { c.device += 1 } else { c.cpu += 1 }
        counts[primitive] = c
    }

    /// Whether T has kernels (Float, Double); otherwise the primitive runs on the CPU backend.
    private func hasKernels<T: TensorScalar>(_: T.Type) -> Bool { T.self == Float.self || T.self == Double.self }

    /// Run one primitive's device work; a device error stops the process with the primitive
    /// named (the protocol cannot throw, and a half-done primitive must not pass silently).
    private func device<T: TensorScalar>(_ primitive: String, _: T.Type, _ body: (DeviceCall) throws -> Void) {
        count(primitive, onDevice: true)
        do {
            try runtime.run(body)
        } catch {
            preconditionFailure("\(name) backend, \(primitive) (\(T.self)): \(error)")
        }
    }

    // MARK: GEMM

    public func gemm<T: TensorScalar>(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: T, a: UnsafePointer<T>, lda: Int,
        b: UnsafePointer<T>, ldb: Int,
        beta: T, c: UnsafeMutablePointer<T>, ldc: Int
    ) {
        guard hasKernels(T.self) else {
            count("gemm", onDevice: false)
            return cpu.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                            b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
        guard m > 0, n > 0 else { return }
        // Row-major storage extents: A is [m, k] ([k, m] when transposed), B [k, n] ([n, k]), C [m, n].
        let aCount = k == 0 ? 0 : (transA ? (k - 1) * lda + m : (m - 1) * lda + k)
        let bCount = k == 0 ? 0 : (transB ? (n - 1) * ldb + k : (k - 1) * ldb + n)
        let cCount = (m - 1) * ldc + n
        device("gemm", T.self) { call in
            let da = try call.upload(a, count: aCount), db = try call.upload(b, count: bCount)
            // C is read when β ≠ 0, and its gaps (ldc > n) must come back unchanged.
            let dc = beta != 0 || ldc != n ? try call.upload(UnsafePointer(c), count: cCount) : try call.scratch(cCount, of: T.self)
            // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: the same buffers, read
            // as column-major, with A and B swapped and m and n swapped.
            try call.device.gemmColumnMajor(
                transA: transB, transB: transA, m: n, n: m, k: k, alpha: Double(alpha),
                a: db, lda: max(1, ldb), b: da, ldb: max(1, lda), beta: Double(beta), c: dc, ldc: max(1, ldc),
                double: T.self == Double.self)
            try call.download(dc, into: c, count: cCount)
        }
    }

    // MARK: Elementwise

    public func unary<T: TensorScalar>(_ op: UnaryOp, _ x: UnsafeBufferPointer<T>, _ y: UnsafeMutableBufferPointer<T>) {
        precondition(x.count == y.count, "unary \(op): \(x.count) inputs, \(y.count) outputs")
        guard hasKernels(T.self) else { count("unary", onDevice: false); return cpu.unary(op, x, y) }
        guard x.count > 0 else { return }
        device("unary", T.self) { call in
            let dx = try call.upload(x), dy = try call.scratch(y.count, of: T.self)
            try call.launchElementwise("unary", T.self, elements: x.count,
                                       [.int32(CUDAKernels.unaryCode(op)), .int(x.count), .address(dx), .address(dy)])
            try call.download(dy, into: y)
        }
    }

    public func binary<T: TensorScalar>(
        _ op: BinaryOp, _ a: UnsafeBufferPointer<T>, _ b: UnsafeBufferPointer<T>, _ y: UnsafeMutableBufferPointer<T>
    ) {
        precondition(a.count == b.count && a.count == y.count, "binary \(op): operand counts \(a.count), \(b.count), \(y.count) differ")
        guard hasKernels(T.self) else { count("binary", onDevice: false); return cpu.binary(op, a, b, y) }
        guard a.count > 0 else { return }
        device("binary", T.self) { call in
            let da = try call.upload(a), db = try call.upload(b), dy = try call.scratch(y.count, of: T.self)
            try call.launchElementwise("binary", T.self, elements: a.count,
                                       [.int32(CUDAKernels.binaryCode(op)), .int(a.count), .address(da), .address(db), .address(dy)])
            try call.download(dy, into: y)
        }
    }

    public func affine<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, scale: T, shift: T, _ y: UnsafeMutableBufferPointer<T>) {
        precondition(x.count == y.count, "affine: \(x.count) inputs, \(y.count) outputs")
        guard hasKernels(T.self) else { count("affine", onDevice: false); return cpu.affine(x, scale: scale, shift: shift, y) }
        guard x.count > 0 else { return }
        device("affine", T.self) { call in
            let dx = try call.upload(x), dy = try call.scratch(y.count, of: T.self)
            try call.launchElementwise("affine", T.self, elements: x.count,
                                       [.int(x.count), .address(dx), .scalar(scale), .scalar(shift), .address(dy)])
            try call.download(dy, into: y)
        }
    }

    public func nanToNum<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, nan: T, posInf: T, negInf: T, _ y: UnsafeMutableBufferPointer<T>) {
        precondition(x.count == y.count, "nanToNum: \(x.count) inputs, \(y.count) outputs")
        guard hasKernels(T.self) else {
            count("nanToNum", onDevice: false)
            return cpu.nanToNum(x, nan: nan, posInf: posInf, negInf: negInf, y)
        }
        guard x.count > 0 else { return }
        device("nanToNum", T.self) { call in
            let dx = try call.upload(x), dy = try call.scratch(y.count, of: T.self)
            try call.launchElementwise("nan_to_num", T.self, elements: x.count,
                                       [.int(x.count), .address(dx), .scalar(nan), .scalar(posInf), .scalar(negInf), .address(dy)])
            try call.download(dy, into: y)
        }
    }

    // MARK: Reductions

    public func sumAxis<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, outer: Int, reduced: Int, inner: Int, _ y: UnsafeMutableBufferPointer<T>) {
        precondition(x.count == outer * reduced * inner && y.count == outer * inner,
                     "sumAxis: buffers \(x.count)/\(y.count) do not match [\(outer), \(reduced), \(inner)]")
        guard hasKernels(T.self) else {
            count("sumAxis", onDevice: false)
            return cpu.sumAxis(x, outer: outer, reduced: reduced, inner: inner, y)
        }
        guard y.count > 0 else { return }
        device("sumAxis", T.self) { call in
            let dx = try call.upload(x), dy = try call.scratch(y.count, of: T.self)
            try call.launchElementwise("sum_axis", T.self, elements: y.count,
                                       [.int(outer), .int(reduced), .int(inner), .address(dx), .address(dy)])
            try call.download(dy, into: y)
        }
    }

    public func sum<T: TensorScalar>(_ x: UnsafeBufferPointer<T>) -> T {
        guard hasKernels(T.self) else { count("sum", onDevice: false); return cpu.sum(x) }
        guard x.count > 0 else { return 0 }
        var result: T = 0
        device("sum", T.self) { call in
            let dx = try call.upload(x), dy = try call.scratch(1, of: T.self)
            try call.launch("sum_all", T.self, grid: 1, [.int(x.count), .address(dx), .address(dy)])
            try withUnsafeMutablePointer(to: &result) { try call.download(dy, into: $0, count: 1) }
        }
        return result
    }

    public func dot<T: TensorScalar>(_ a: UnsafeBufferPointer<T>, _ b: UnsafeBufferPointer<T>) -> T {
        precondition(a.count == b.count, "dot: lengths \(a.count) and \(b.count) differ")
        guard hasKernels(T.self) else { count("dot", onDevice: false); return cpu.dot(a, b) }
        guard a.count > 0 else { return 0 }
        var result: T = 0
        device("dot", T.self) { call in
            let da = try call.upload(a), db = try call.upload(b), dy = try call.scratch(1, of: T.self)
            try call.launch("dot_all", T.self, grid: 1, [.int(a.count), .address(da), .address(db), .address(dy)])
            try withUnsafeMutablePointer(to: &result) { try call.download(dy, into: $0, count: 1) }
        }
        return result
    }

    // MARK: Layout

    public func permute<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, shape: [Int], permutation: [Int], _ y: UnsafeMutableBufferPointer<T>) {
        precondition(permutation.sorted() == Array(0..<shape.count), "permute: \(permutation) is not a permutation of \(shape.count) axes")
        guard hasKernels(T.self) else { count("permute", onDevice: false); return cpu.permute(x, shape: shape, permutation: permutation, y) }
        let inStrides = contiguousStrides(shape)
        stridedCopy("permute", x, outShape: permutation.map { shape[$0] }, srcStrides: permutation.map { inStrides[$0] }, y)
    }

    public func broadcast<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, shape: [Int], to outShape: [Int], _ y: UnsafeMutableBufferPointer<T>) {
        precondition(shape.count == outShape.count && zip(shape, outShape).allSatisfy { $0 == $1 || $0 == 1 },
                     "broadcast: cannot broadcast \(shape) to \(outShape)")
        guard hasKernels(T.self) else { count("broadcast", onDevice: false); return cpu.broadcast(x, shape: shape, to: outShape, y) }
        let strides = contiguousStrides(shape)
        stridedCopy("broadcast", x, outShape: outShape, srcStrides: (0..<shape.count).map { shape[$0] == 1 ? 0 : strides[$0] }, y)
    }

    /// y (contiguous, outShape) ← x read with `srcStrides` — permute and broadcast.
    private func stridedCopy<T: TensorScalar>(_ primitive: String, _ x: UnsafeBufferPointer<T>, outShape: [Int], srcStrides: [Int],
                                              _ y: UnsafeMutableBufferPointer<T>) {
        let total = outShape.elementCount
        precondition(y.count == total, "\(primitive): output holds \(y.count), shape \(outShape) needs \(total)")
        guard total > 0 else { return }
        device(primitive, T.self) { call in
            let meta = (outShape + srcStrides).map { Int64($0) }
            let dmeta = try meta.withUnsafeBufferPointer { try call.upload($0) }
            let dx = try call.upload(x), dy = try call.scratch(total, of: T.self)
            try call.launchElementwise("strided_copy", T.self, elements: total,
                                       [.int32(Int32(outShape.count)), .int(total), .address(dmeta), .address(dx), .address(dy)])
            try call.download(dy, into: y)
        }
    }

    public func copyRows<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, xStride: Int, xOffset: Int,
        _ y: UnsafeMutableBufferPointer<T>, yStride: Int, yOffset: Int, rows: Int, count n: Int
    ) {
        guard hasKernels(T.self) else {
            count("copyRows", onDevice: false)
            return cpu.copyRows(x, xStride: xStride, xOffset: xOffset, y, yStride: yStride, yOffset: yOffset, rows: rows, count: n)
        }
        guard rows > 0, n > 0 else { return }
        precondition(xOffset + (rows - 1) * xStride + n <= x.count && yOffset + (rows - 1) * yStride + n <= y.count,
                     "copyRows: rows exceed a buffer")
        device("copyRows", T.self) { call in
            // y goes up and comes back whole: the rows not copied keep their values.
            let dx = try call.upload(x), dy = try call.upload(UnsafeBufferPointer(y))
            try call.launchElementwise("copy_rows", T.self, elements: rows * n,
                                       [.int(rows), .int(n), .address(dx), .int(xStride), .int(xOffset),
                                        .address(dy), .int(yStride), .int(yOffset)])
            try call.download(dy, into: y)
        }
    }

    // MARK: Convolution lowering

    public func im2col<T: TensorScalar>(
        _ x: UnsafePointer<T>, C: Int, H: Int, W: Int, kernel k: Int, stride s: Int, padding p: Int,
        _ col: UnsafeMutablePointer<T>, ldcol: Int
    ) {
        guard hasKernels(T.self) else {
            count("im2col", onDevice: false)
            return cpu.im2col(x, C: C, H: H, W: W, kernel: k, stride: s, padding: p, col, ldcol: ldcol)
        }
        let Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1, L = Ho * Wo, rows = C * k * k
        precondition(ldcol >= L, "im2col: ldcol \(ldcol) < Ho·Wo = \(L)")
        guard rows > 0, L > 0 else { return }
        device("im2col", T.self) { call in
            let dx = try call.upload(x, count: C * H * W), dcol = try call.scratch(rows * L, of: T.self)
            try call.launchElementwise("im2col", T.self, elements: rows * L,
                                       [.int(C), .int(H), .int(W), .int(k), .int(s), .int(p), .int(Ho), .int(Wo),
                                        .address(dx), .address(dcol)])
            if ldcol == L {
                try call.download(dcol, into: col, count: rows * L)
            } else {
                // The kernel writes a compact [C·k·k, L]; its rows go to their places ldcol apart.
                var compact = [T](repeating: 0, count: rows * L)
                try compact.withUnsafeMutableBufferPointer { try call.download(dcol, into: $0) }
                compact.withUnsafeBufferPointer { src in
                    for r in 0..<rows { (col + r * ldcol).update(from: src.baseAddress! + r * L, count: L) }
                }
            }
        }
    }

    public func col2im<T: TensorScalar>(
        _ col: UnsafePointer<T>, ldcol: Int, C: Int, H: Int, W: Int, kernel k: Int, stride s: Int, padding p: Int,
        _ x: UnsafeMutablePointer<T>
    ) {
        guard hasKernels(T.self) else {
            count("col2im", onDevice: false)
            return cpu.col2im(col, ldcol: ldcol, C: C, H: H, W: W, kernel: k, stride: s, padding: p, x)
        }
        let Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1, L = Ho * Wo, rows = C * k * k
        precondition(ldcol >= L, "col2im: ldcol \(ldcol) < Ho·Wo = \(L)")
        guard C * H * W > 0 else { return }
        device("col2im", T.self) { call in
            let dcol: CUdeviceptr
            if ldcol == L || rows == 0 {
                dcol = try call.upload(col, count: rows * L)
            } else {
                var compact = [T](repeating: 0, count: rows * L)
                compact.withUnsafeMutableBufferPointer { dst in
                    for r in 0..<rows { (dst.baseAddress! + r * L).update(from: col + r * ldcol, count: L) }
                }
                dcol = try compact.withUnsafeBufferPointer { try call.upload($0) }
            }
            let dx = try call.upload(UnsafePointer(x), count: C * H * W)   // added into
            try call.launchElementwise("col2im", T.self, elements: C * H * W,
                                       [.int(C), .int(H), .int(W), .int(k), .int(s), .int(p), .int(Ho), .int(Wo),
                                        .address(dcol), .address(dx)])
            try call.download(dx, into: x, count: C * H * W)
        }
    }

    // MARK: Resampling

    public func avgPool2x2<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, planes P: Int, H: Int, W: Int, _ y: UnsafeMutableBufferPointer<T>) {
        precondition(H % 2 == 0 && W % 2 == 0, "avgPool2x2: extents \(H)×\(W) must be even")
        precondition(x.count == P * H * W && y.count == P * H * W / 4, "avgPool2x2: buffer sizes do not match [\(P), \(H), \(W)]")
        resample("avgPool2x2", kernel: "avg_pool", x, P: P, H: H, W: W, y) { cpu.avgPool2x2(x, planes: P, H: H, W: W, y) }
    }

    public func avgPool2x2Backward<T: TensorScalar>(_ dy: UnsafeBufferPointer<T>, planes P: Int, H: Int, W: Int, _ dx: UnsafeMutableBufferPointer<T>) {
        precondition(dx.count == P * H * W && dy.count == P * H * W / 4, "avgPool2x2Backward: buffer sizes do not match [\(P), \(H), \(W)]")
        resample("avgPool2x2Backward", kernel: "avg_pool_backward", dy, P: P, H: H, W: W, dx) {
            cpu.avgPool2x2Backward(dy, planes: P, H: H, W: W, dx)
        }
    }

    public func upsampleNearest2x<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, planes P: Int, H: Int, W: Int, _ y: UnsafeMutableBufferPointer<T>) {
        precondition(x.count == P * H * W && y.count == P * H * W * 4, "upsampleNearest2x: buffer sizes do not match [\(P), \(H), \(W)]")
        resample("upsampleNearest2x", kernel: "upsample", x, P: P, H: H, W: W, y) { cpu.upsampleNearest2x(x, planes: P, H: H, W: W, y) }
    }

    public func upsampleNearest2xBackward<T: TensorScalar>(_ dy: UnsafeBufferPointer<T>, planes P: Int, H: Int, W: Int, _ dx: UnsafeMutableBufferPointer<T>) {
        precondition(dx.count == P * H * W && dy.count == P * H * W * 4, "upsampleNearest2xBackward: buffer sizes do not match [\(P), \(H), \(W)]")
        resample("upsampleNearest2xBackward", kernel: "upsample_backward", dy, P: P, H: H, W: W, dx) {
            cpu.upsampleNearest2xBackward(dy, planes: P, H: H, W: W, dx)
        }
    }

    /// One resampling kernel: input up, one thread per output element, output back.
    private func resample<T: TensorScalar>(_ primitive: String, kernel: String, _ input: UnsafeBufferPointer<T>,
                                           P: Int, H: Int, W: Int, _ output: UnsafeMutableBufferPointer<T>,
                                           fallback: () -> Void) {
        guard hasKernels(T.self) else { count(primitive, onDevice: false); return fallback() }
        guard output.count > 0 else { return }
        device(primitive, T.self) { call in
            let din = try call.upload(input), dout = try call.scratch(output.count, of: T.self)
            try call.launchElementwise(kernel, T.self, elements: output.count, [.int(P), .int(H), .int(W), .address(din), .address(dout)])
            try call.download(dout, into: output)
        }
    }

    // MARK: Normalisation

    public func groupNorm<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int, eps: T,
        gamma: UnsafeBufferPointer<T>?, beta: UnsafeBufferPointer<T>?,
        _ y: UnsafeMutableBufferPointer<T>, mean: UnsafeMutableBufferPointer<T>, rstd: UnsafeMutableBufferPointer<T>
    ) {
        precondition(G > 0 && C % G == 0, "groupNorm: \(C) channels do not split into \(G) groups")
        precondition(x.count == N * C * L && y.count == x.count && mean.count == N * G && rstd.count == N * G,
                     "groupNorm: buffer sizes do not match [N \(N), C \(C), L \(L)], G \(G)")
        guard hasKernels(T.self) else {
            count("groupNorm", onDevice: false)
            return cpu.groupNorm(x, N: N, C: C, L: L, groups: G, eps: eps, gamma: gamma, beta: beta, y, mean: mean, rstd: rstd)
        }
        guard N * G > 0, C / G * L > 0 else { return }
        device("groupNorm", T.self) { call in
            let dx = try call.upload(x)
            let dg = try gamma.map { try call.upload($0) } ?? 0, db = try beta.map { try call.upload($0) } ?? 0
            let dy = try call.scratch(y.count, of: T.self)
            let dm = try call.scratch(N * G, of: T.self), dr = try call.scratch(N * G, of: T.self)
            try call.launch("group_norm", T.self, grid: N * G,
                            [.int(N), .int(C), .int(L), .int(G), .scalar(eps), .address(dx), .address(dg), .address(db),
                             .address(dy), .address(dm), .address(dr)])
            try call.download(dy, into: y)
            try call.download(dm, into: mean)
            try call.download(dr, into: rstd)
        }
    }

    public func groupNormBackward<T: TensorScalar>(
        _ x: UnsafeBufferPointer<T>, _ dy: UnsafeBufferPointer<T>, N: Int, C: Int, L: Int, groups G: Int,
        gamma: UnsafeBufferPointer<T>?, mean: UnsafeBufferPointer<T>, rstd: UnsafeBufferPointer<T>,
        _ dx: UnsafeMutableBufferPointer<T>,
        dGamma: UnsafeMutableBufferPointer<T>?, dBeta: UnsafeMutableBufferPointer<T>?
    ) {
        precondition(G > 0 && C % G == 0, "groupNormBackward: \(C) channels do not split into \(G) groups")
        precondition(x.count == N * C * L && dy.count == x.count && dx.count == x.count && mean.count == N * G && rstd.count == N * G,
                     "groupNormBackward: buffer sizes do not match [N \(N), C \(C), L \(L)], G \(G)")
        guard hasKernels(T.self) else {
            count("groupNormBackward", onDevice: false)
            return cpu.groupNormBackward(x, dy, N: N, C: C, L: L, groups: G, gamma: gamma, mean: mean, rstd: rstd,
                                         dx, dGamma: dGamma, dBeta: dBeta)
        }
        guard C > 0 else { return }
        device("groupNormBackward", T.self) { call in
            let dxIn = try call.upload(x), ddy = try call.upload(dy)
            let dg = try gamma.map { try call.upload($0) } ?? 0
            let dm = try call.upload(mean), dr = try call.upload(rstd)
            let ddx = try call.scratch(dx.count, of: T.self)
            if N * L > 0 {
                try call.launch("group_norm_backward_dx", T.self, grid: N * G,
                                [.int(N), .int(C), .int(L), .int(G), .address(dxIn), .address(ddy), .address(dg),
                                 .address(dm), .address(dr), .address(ddx)])
                try call.download(ddx, into: dx)
            }
            if dGamma != nil || dBeta != nil {
                let dgam = dGamma != nil ? try call.scratch(C, of: T.self) : 0
                let dbet = dBeta != nil ? try call.scratch(C, of: T.self) : 0
                try call.launchElementwise("group_norm_backward_affine", T.self, elements: C,
                                           [.int(N), .int(C), .int(L), .int(G), .address(dxIn), .address(ddy),
                                            .address(dm), .address(dr), .address(dgam), .address(dbet)])
                if let dGamma { try call.download(dgam, into: dGamma) }
                if let dBeta { try call.download(dbet, into: dBeta) }
            }
        }
    }

    // MARK: Softmax

    public func softmaxRows<T: TensorScalar>(_ x: UnsafeBufferPointer<T>, rows: Int, cols: Int, _ y: UnsafeMutableBufferPointer<T>) {
        precondition(x.count == rows * cols && y.count == x.count, "softmaxRows: buffers \(x.count)/\(y.count) for [\(rows), \(cols)]")
        guard hasKernels(T.self) else { count("softmaxRows", onDevice: false); return cpu.softmaxRows(x, rows: rows, cols: cols, y) }
        guard rows > 0, cols > 0 else { return }
        device("softmaxRows", T.self) { call in
            let dx = try call.upload(x), dy = try call.scratch(y.count, of: T.self)
            try call.launch("softmax_rows", T.self, grid: rows, [.int(rows), .int(cols), .address(dx), .address(dy)])
            try call.download(dy, into: y)
        }
    }

    public func softmaxRowsBackward<T: TensorScalar>(
        _ y: UnsafeBufferPointer<T>, _ dy: UnsafeBufferPointer<T>, rows: Int, cols: Int, _ dx: UnsafeMutableBufferPointer<T>
    ) {
        precondition(y.count == rows * cols && dy.count == y.count && dx.count == y.count,
                     "softmaxRowsBackward: buffers \(y.count)/\(dy.count)/\(dx.count) for [\(rows), \(cols)]")
        guard hasKernels(T.self) else {
            count("softmaxRowsBackward", onDevice: false)
            return cpu.softmaxRowsBackward(y, dy, rows: rows, cols: cols, dx)
        }
        guard rows > 0, cols > 0 else { return }
        device("softmaxRowsBackward", T.self) { call in
            let dyv = try call.upload(y), ddy = try call.upload(dy), ddx = try call.scratch(dx.count, of: T.self)
            try call.launch("softmax_rows_backward", T.self, grid: rows, [.int(rows), .int(cols), .address(dyv), .address(ddy), .address(ddx)])
            try call.download(ddx, into: dx)
        }
    }
}
