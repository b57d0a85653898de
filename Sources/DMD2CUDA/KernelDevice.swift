// The device underneath the CUDA backend: memory, copies, kernel launches and GEMM.
//
// Two devices implement it: `CUDADriverDevice` (a GPU through the driver API, NVRTC and cuBLAS)
// and `HostEmulatedDevice` (the same kernel source compiled for the host and run thread by
// thread, to check the kernels where there is no GPU). `DeviceRuntime` wraps one device with a
// caching allocator and a lock: primitives run one at a time, each taking buffers from the
// cache and giving them back when it ends.
import DMD2Core
import Foundation

/// What the CUDA backend asks of a device. Addresses are device addresses (CUdeviceptr).
protocol KernelDevice: AnyObject {
    /// "NVIDIA H200 (sm_90), driver 12.4, …", for reports.
    var summary: String { get }
    /// Make the device usable from the calling thread (the driver's current context).
    func makeCurrent() throws
    func allocate(bytes: Int) throws -> CUdeviceptr
    func free(_ address: CUdeviceptr)
    func upload(_ source: UnsafeRawPointer, to address: CUdeviceptr, bytes: Int) throws
    func download(_ address: CUdeviceptr, to destination: UnsafeMutableRawPointer, bytes: Int) throws
    /// Launch `kernel` (the full name, e.g. "unary_f32") on `grid` blocks of `block` threads;
    /// `parameters[i]` points at the i-th argument's value (the driver's kernelParams).
    func launch(_ kernel: String, grid: Int, block: Int, cooperative: Bool,
                parameters: UnsafeMutablePointer<UnsafeMutableRawPointer?>) throws
    /// cuBLAS's column-major GEMM: C[m×n] ← α·op(A)·op(B) + β·C, all column-major, device addresses.
    func gemmColumnMajor(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                         alpha: Double, a: CUdeviceptr, lda: Int, b: CUdeviceptr, ldb: Int,
                         beta: Double, c: CUdeviceptr, ldc: Int, double: Bool) throws
    /// Wait for every launch to finish, reporting the first asynchronous error.
    func synchronize() throws
}

/// One kernel argument, stored by value in an 8-byte slot.
enum KernelArgument {
    case int32(Int32)
    case int64(Int64)
    case address(CUdeviceptr)
    case float(Float)
    case double(Double)

    static func int(_ v: Int) -> KernelArgument { .int64(Int64(v)) }

    /// A T-typed scalar (a `float` argument of an _f32 kernel, a `double` of an _f64 one).
    static func scalar<T: TensorScalar>(_ v: T) -> KernelArgument {
        T.self == Float.self ? .float(Float(Double(v))) : .double(Double(v))
    }
}

/// Run `body` with the driver's kernelParams array for `arguments`.
func withKernelParameters<R>(_ arguments: [KernelArgument],
                             _ body: (UnsafeMutablePointer<UnsafeMutableRawPointer?>) throws -> R) rethrows -> R {
    let count = max(1, arguments.count)
    let storage = UnsafeMutableRawPointer.allocate(byteCount: 8 * count, alignment: 8)
    let pointers = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: count)
    defer {
        storage.deallocate()
        pointers.deallocate()
    }
    for (i, argument) in arguments.enumerated() {
        let slot = storage + 8 * i
        switch argument {
        case .int32(let v): slot.storeBytes(of: v, as: Int32.self)
        case .int64(let v): slot.storeBytes(of: v, as: Int64.self)
        case .address(let v): slot.storeBytes(of: v, as: UInt64.self)
        case .float(let v): slot.storeBytes(of: v, as: Float.self)
        case .double(let v): slot.storeBytes(of: v, as: Double.self)
        }
        pointers[i] = slot
    }
    return try body(pointers)
}

/// A device with a caching allocator and a lock.
///
/// Buffers are kept by size class (powers of two from 256 bytes) and reused: a primitive takes
/// what it needs and returns it when it ends, so a training step's repeated shapes stop
/// allocating after the first step. Nothing is ever given back to the driver before `trim()`.
final class DeviceRuntime: @unchecked Sendable {
    let device: any KernelDevice
    private let lock = NSLock()
    private var pool: [Int: [CUdeviceptr]] = [:]
    private(set) var cachedBytes = 0

    init(device: any KernelDevice) { self.device = device }

    /// Run one primitive's device work: exclusive use of the device, buffers returned at the end.
    func run<R>(_ body: (DeviceCall) throws -> R) throws -> R {
        lock.lock()
        defer { lock.unlock() }
        try device.makeCurrent()
        let call = DeviceCall(runtime: self)
        defer { for (address, size) in call.taken { pool[size, default: []].append(address) } }
        let result = try body(call)
        try device.synchronize()
        return result
    }

    /// Give every cached buffer back to the driver.
    func trim() {
        lock.lock()
        defer { lock.unlock() }
        for (_, addresses) in pool { for a in addresses { device.free(a) } }
        pool = [:]
        cachedBytes = 0
    }

    /// A buffer of at least `bytes` (size class = next power of two ≥ 256); called under the lock.
    fileprivate func take(_ bytes: Int) throws -> (CUdeviceptr, Int) {
        var size = 256
        while size < bytes { size *= 2 }
        if let address = pool[size]?.popLast() { return (address, size) }
        let address = try device.allocate(bytes: size)
        cachedBytes += size
        return (address, size)
    }
}

/// The device work of one primitive call: uploads, scratch buffers, launches, downloads.
final class DeviceCall {
    unowned let runtime: DeviceRuntime
    fileprivate(set) var taken: [(CUdeviceptr, Int)] = []
    var device: any KernelDevice { runtime.device }

    fileprivate init(runtime: DeviceRuntime) { self.runtime = runtime }

    /// A device buffer for `count` elements of T (address 0 for an empty one).
    func scratch<T>(_ count: Int, of _: T.Type) throws -> CUdeviceptr {
        guard count > 0 else { return 0 }
        let buffer = try runtime.take(count * MemoryLayout<T>.stride)
        taken.append(buffer)
        return buffer.0
    }

    /// A device copy of `count` elements at `source`.
    func upload<T>(_ source: UnsafePointer<T>?, count: Int) throws -> CUdeviceptr {
        guard count > 0, let source else { return 0 }
        let address = try scratch(count, of: T.self)
        try device.upload(UnsafeRawPointer(source), to: address, bytes: count * MemoryLayout<T>.stride)
        return address
    }

    func upload<T>(_ source: UnsafeBufferPointer<T>) throws -> CUdeviceptr {
        try upload(source.baseAddress, count: source.count)
    }

    /// Copy `count` elements back from the device.
    func download<T>(_ address: CUdeviceptr, into destination: UnsafeMutablePointer<T>?, count: Int) throws {
        guard count > 0, let destination else { return }
        try device.download(address, to: UnsafeMutableRawPointer(destination), bytes: count * MemoryLayout<T>.stride)
    }

    func download<T>(_ address: CUdeviceptr, into destination: UnsafeMutableBufferPointer<T>) throws {
        try download(address, into: destination.baseAddress, count: destination.count)
    }

    /// Launch kernel `base` for element type T ("unary" → "unary_f32") on `grid` blocks.
    func launch<T: TensorScalar>(_ base: String, _: T.Type, grid: Int, _ arguments: [KernelArgument]) throws {
        guard grid > 0 else { return }
        let name = base + (T.self == Float.self ? "_f32" : "_f64")
        let cooperative = CUDAKernels.kernels.first { $0.name == base }?.cooperative ?? false
        try withKernelParameters(arguments) { parameters in
            try device.launch(name, grid: grid, block: CUDAKernels.blockThreads, cooperative: cooperative, parameters: parameters)
        }
    }

    /// Launch a grid-stride kernel over `elements` items: enough blocks to give each thread one,
    /// capped (the loop covers the rest).
    func launchElementwise<T: TensorScalar>(_ base: String, _ type: T.Type, elements: Int, _ arguments: [KernelArgument]) throws {
        guard elements > 0 else { return }
        let blocks = min((elements + CUDAKernels.blockThreads - 1) / CUDAKernels.blockThreads, 4096)
        try launch(base, type, grid: blocks, arguments)
    }
}
