// A GPU as a KernelDevice: the driver API's primary context on one device, the kernels of
// CUDAKernels.swift compiled by NVRTC for that device's compute capability and loaded as one
// module, and a cuBLAS handle for GEMM.
//
// Everything runs on the default stream: uploads and downloads are synchronous copies from
// pageable host memory, and `synchronize()` after each primitive makes a kernel's asynchronous
// error surface at the primitive that caused it.
import DMD2Core
import Foundation

final class CUDADriverDevice: KernelDevice {
    let driver: DriverAPI
    let nvrtc: NVRTCAPI
    let cublas: CUBLASAPI
    let ordinal: Int32
    let device: CUdevice
    let context: OpaquePointer?
    let module: OpaquePointer?
    let functions: [String: OpaquePointer]
    let blasHandle: OpaquePointer?
    let deviceName: String
    let summary: String

    /// Opens device `ordinal` (DMD2_CUDA_DEVICE, default 0), compiles and loads the kernels, and
    /// makes a cuBLAS handle. Throws with the step that failed: no driver, no device, a
    /// missing library, a compile error (with NVRTC's log), …
    init(ordinal requested: Int32? = nil) throws {
        let ordinal = requested ?? ProcessInfo.processInfo.environment["DMD2_CUDA_DEVICE"].flatMap { Int32($0) } ?? 0
        self.ordinal = ordinal
        let driver = try DriverAPI()
        self.driver = driver
        let initResult = driver.cuInit(0)
        if initResult == DriverAPI.errorNoDevice { throw CUDAError("no CUDA device (cuInit: CUDA_ERROR_NO_DEVICE)") }
        try driver.check(initResult, "cuInit")
        var count: Int32 = 0
        try driver.check(driver.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard count > 0 else { throw CUDAError("no CUDA device (the driver sees 0 devices)") }
        guard ordinal >= 0 && ordinal < count else {
            throw CUDAError("CUDA device \(ordinal) requested (DMD2_CUDA_DEVICE), but the driver sees \(count)")
        }
        var device: CUdevice = 0
        try driver.check(driver.cuDeviceGet(&device, ordinal), "cuDeviceGet(\(ordinal))")
        self.device = device
        var nameBuffer = [CChar](repeating: 0, count: 256)
        try driver.check(driver.cuDeviceGetName(&nameBuffer, 256, device), "cuDeviceGetName")
        deviceName = String(decoding: nameBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var major: Int32 = 0, minor: Int32 = 0
        try driver.check(driver.cuDeviceGetAttribute(&major, DriverAPI.computeCapabilityMajor, device), "cuDeviceGetAttribute(major)")
        try driver.check(driver.cuDeviceGetAttribute(&minor, DriverAPI.computeCapabilityMinor, device), "cuDeviceGetAttribute(minor)")
        var driverVersion: Int32 = 0
        _ = driver.cuDriverGetVersion(&driverVersion)
        var context: OpaquePointer?
        try driver.check(driver.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain")
        self.context = context
        try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")

        nvrtc = try NVRTCAPI()
        cublas = try CUBLASAPI()
        let (image, kind) = try nvrtc.compile(CUDAKernels.source, name: "dmd2_kernels.cu", major: major, minor: minor)
        var module: OpaquePointer?
        try driver.check(image.withUnsafeBytes { driver.cuModuleLoadData(&module, $0.baseAddress!) }, "cuModuleLoadData (\(kind))")
        self.module = module
        var functions: [String: OpaquePointer] = [:]
        for (base, _) in CUDAKernels.kernels {
            for suffix in ["f32", "f64"] {
                let name = "\(base)_\(suffix)"
                var function: OpaquePointer?
                try driver.check(name.withCString { driver.cuModuleGetFunction(&function, module, $0) }, "cuModuleGetFunction(\(name))")
                functions[name] = function
            }
        }
        self.functions = functions
        var handle: OpaquePointer?
        try cublas.check(cublas.cublasCreate(&handle), "cublasCreate_v2")
        if let setMathMode = cublas.cublasSetMathMode {
            try cublas.check(setMathMode(handle, CUBLASAPI.pedanticMath), "cublasSetMathMode(CUBLAS_PEDANTIC_MATH)")
        }
        blasHandle = handle
        var blasVersion: Int32 = 0
        _ = cublas.cublasGetVersion(handle, &blasVersion)
        summary = "\(deviceName) (device \(ordinal), sm_\(major)\(minor)), driver \(driverVersion / 1000).\(driverVersion % 1000 / 10), "
            + "NVRTC \(nvrtc.version) → \(kind), cuBLAS \(blasVersion) (\(cublas.library.path))"
    }

    func makeCurrent() throws { try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent") }

    func allocate(bytes: Int) throws -> CUdeviceptr {
        var address: CUdeviceptr = 0
        try driver.check(driver.cuMemAlloc(&address, bytes), "cuMemAlloc(\(bytes) bytes)")
        return address
    }

    func free(_ address: CUdeviceptr) { _ = driver.cuMemFree(address) }

    func upload(_ source: UnsafeRawPointer, to address: CUdeviceptr, bytes: Int) throws {
        try driver.check(driver.cuMemcpyHtoD(address, source, bytes), "cuMemcpyHtoD(\(bytes) bytes)")
    }

    func download(_ address: CUdeviceptr, to destination: UnsafeMutableRawPointer, bytes: Int) throws {
        try driver.check(driver.cuMemcpyDtoH(destination, address, bytes), "cuMemcpyDtoH(\(bytes) bytes)")
    }

    func launch(_ kernel: String, grid: Int, block: Int, cooperative: Bool,
                parameters: UnsafeMutablePointer<UnsafeMutableRawPointer?>) throws {
        guard let function = functions[kernel] else { throw CUDAError("no kernel \(kernel) in the compiled module") }
        try driver.check(driver.cuLaunchKernel(function, UInt32(grid), 1, 1, UInt32(block), 1, 1, 0, nil, parameters, nil),
                         "cuLaunchKernel(\(kernel), grid \(grid), block \(block))")
    }

    func gemmColumnMajor(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                         alpha: Double, a: CUdeviceptr, lda: Int, b: CUdeviceptr, ldb: Int,
                         beta: Double, c: CUdeviceptr, ldc: Int, double: Bool) throws {
        let ta: Int32 = transA ? 1 : 0, tb: Int32 = transB ? 1 : 0
        if double {
            var al = alpha, be = beta
            try cublas.check(cublas.cublasDgemm(blasHandle, ta, tb, Int32(m), Int32(n), Int32(k), &al, a, Int32(lda),
                                                b, Int32(ldb), &be, c, Int32(ldc)),
                             "cublasDgemm_v2(m \(m), n \(n), k \(k))")
        } else {
            var al = Float(alpha), be = Float(beta)
            try cublas.check(cublas.cublasSgemm(blasHandle, ta, tb, Int32(m), Int32(n), Int32(k), &al, a, Int32(lda),
                                                b, Int32(ldb), &be, c, Int32(ldc)),
                             "cublasSgemm_v2(m \(m), n \(n), k \(k))")
        }
    }

    func synchronize() throws { try driver.check(driver.cuCtxSynchronize(), "cuCtxSynchronize") }
}
