// The three NVIDIA libraries the CUDA backend uses, loaded at run time with dlopen/dlsym:
//   libcuda.so.1     the driver API (device, context, memory, modules, kernel launches)
//   libnvrtc.so*     the run-time compiler (CUDA C → PTX or a cubin for this GPU)
//   libcublas.so*    GEMM (cublasSgemm_v2 / cublasDgemm_v2)
// No CUDA header is needed to build: the few functions used are declared below as C function
// types, from NVIDIA's documented signatures. Handles are opaque pointers, device addresses
// are 64-bit integers (CUdeviceptr), and sizes are size_t (Swift Int).
//
// Where the libraries are looked for: DMD2_CUDA_NVRTC / DMD2_CUDA_CUBLAS (a full path) if set,
// then the versioned names the loader finds on its own (LD_LIBRARY_PATH, ld.so.cache), then
// /usr/local/cuda*/lib64 and the CUDA pip wheels' folders under the Python site-packages.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An error from loading or calling a CUDA library, with the call and the library's own message.
public struct CUDAError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A library opened with dlopen; symbols are looked up by name.
final class DynamicLibrary: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    let path: String

    private init(handle: UnsafeMutableRawPointer, path: String) {
        self.handle = handle
        self.path = path
    }

    /// The first of `candidates` that dlopen accepts, or an error listing what each said.
    static func open(_ what: String, candidates: [String]) throws -> DynamicLibrary {
        var failures: [String] = []
        for path in candidates {
            if let h = dlopen(path, RTLD_NOW | RTLD_LOCAL) { return DynamicLibrary(handle: h, path: path) }
            failures.append(dlerror().map { String(cString: $0) } ?? path)
        }
        throw CUDAError("\(what) not found (tried \(candidates.joined(separator: ", "))): \(failures.first ?? "")")
    }

    /// The function `name` as the C function type `F`.
    func function<F>(_ name: String, as _: F.Type = F.self) throws -> F {
        guard let p = dlsym(handle, name) else {
            throw CUDAError("\(path): no symbol \(name) (library too old?)")
        }
        return unsafeBitCast(p, to: F.self)
    }

    /// The function `name`, or nil when this version of the library lacks it.
    func optionalFunction<F>(_ name: String, as _: F.Type = F.self) -> F? {
        dlsym(handle, name).map { unsafeBitCast($0, to: F.self) }
    }

    /// Candidate file names for a library: an override, versioned sonames, then the same
    /// names in the usual install folders.
    static func candidates(override variable: String, base: String, versions: [String]) -> [String] {
        var names: [String] = []
        if let path = ProcessInfo.processInfo.environment[variable], !path.isEmpty { names.append(path) }
        let sonames = [base] + versions.map { "\(base).\($0)" }
        names += sonames
        var folders = ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu"]
        let fm = FileManager.default
        if let entries = try? fm.contentsOfDirectory(atPath: "/usr/local") {
            folders += entries.filter { $0.hasPrefix("cuda-") }.sorted().reversed().map { "/usr/local/\($0)/lib64" }
        }
        // CUDA pip wheels (nvidia-cuda-nvrtc-cu12, nvidia-cublas-cu12): site-packages/nvidia/*/lib.
        for root in ["/usr/local/lib", "/usr/lib", "/opt/conda/lib"] {
            guard let pythons = try? fm.contentsOfDirectory(atPath: root) else { continue }
            for py in pythons where py.hasPrefix("python3") {
                for site in ["site-packages", "dist-packages"] {
                    let nvidia = "\(root)/\(py)/\(site)/nvidia"
                    guard let packages = try? fm.contentsOfDirectory(atPath: nvidia) else { continue }
                    folders += packages.sorted().map { "\(nvidia)/\($0)/lib" }
                }
            }
        }
        for folder in folders {
            for soname in sonames where fm.fileExists(atPath: "\(folder)/\(soname)") { names.append("\(folder)/\(soname)") }
        }
        return names
    }
}

// MARK: - The driver API

typealias CUresult = Int32
typealias CUdevice = Int32
typealias CUdeviceptr = UInt64

/// The driver API functions used (the `_v2` entry points where the plain names are macros).
struct DriverAPI: @unchecked Sendable {
    let library: DynamicLibrary
    let cuInit: @convention(c) (UInt32) -> CUresult
    let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<CUdevice>, Int32) -> CUresult
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, CUdevice) -> CUresult
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, CUdevice) -> CUresult
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, CUdevice) -> CUresult
    let cuCtxSetCurrent: @convention(c) (OpaquePointer?) -> CUresult
    let cuCtxSynchronize: @convention(c) () -> CUresult
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<CUdeviceptr>, Int) -> CUresult
    let cuMemFree: @convention(c) (CUdeviceptr) -> CUresult
    let cuMemcpyHtoD: @convention(c) (CUdeviceptr, UnsafeRawPointer, Int) -> CUresult
    let cuMemcpyDtoH: @convention(c) (UnsafeMutableRawPointer, CUdeviceptr, Int) -> CUresult
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafeRawPointer) -> CUresult
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UnsafePointer<CChar>) -> CUresult
    /// (function, grid x y z, block x y z, shared bytes, stream, kernel parameters, extra)
    let cuLaunchKernel: @convention(c) (
        OpaquePointer?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, OpaquePointer?,
        UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> CUresult
    let cuGetErrorName: @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> CUresult

    /// CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR.
    static let computeCapabilityMajor: Int32 = 75
    static let computeCapabilityMinor: Int32 = 76
    /// CUDA_ERROR_NO_DEVICE.
    static let errorNoDevice: CUresult = 100

    init() throws {
        library = try DynamicLibrary.open("the CUDA driver (libcuda.so.1)", candidates: ["libcuda.so.1", "libcuda.so"])
        cuInit = try library.function("cuInit")
        cuDriverGetVersion = try library.function("cuDriverGetVersion")
        cuDeviceGetCount = try library.function("cuDeviceGetCount")
        cuDeviceGet = try library.function("cuDeviceGet")
        cuDeviceGetName = try library.function("cuDeviceGetName")
        cuDeviceGetAttribute = try library.function("cuDeviceGetAttribute")
        cuDevicePrimaryCtxRetain = try library.function("cuDevicePrimaryCtxRetain")
        cuCtxSetCurrent = try library.function("cuCtxSetCurrent")
        cuCtxSynchronize = try library.function("cuCtxSynchronize")
        cuMemAlloc = try library.function("cuMemAlloc_v2")
        cuMemFree = try library.function("cuMemFree_v2")
        cuMemcpyHtoD = try library.function("cuMemcpyHtoD_v2")
        cuMemcpyDtoH = try library.function("cuMemcpyDtoH_v2")
        cuModuleLoadData = try library.function("cuModuleLoadData")
        cuModuleGetFunction = try library.function("cuModuleGetFunction")
        cuLaunchKernel = try library.function("cuLaunchKernel")
        cuGetErrorName = try library.function("cuGetErrorName")
    }

    /// Throws the error's name (CUDA_ERROR_…) and code unless `result` is CUDA_SUCCESS.
    func check(_ result: CUresult, _ call: @autoclosure () -> String) throws {
        guard result != 0 else { return }
        var name: UnsafePointer<CChar>?
        _ = cuGetErrorName(result, &name)
        throw CUDAError("\(call()) failed: \(name.map { String(cString: $0) } ?? "CUDA error") (\(result))")
    }
}

// MARK: - NVRTC

typealias NVRTCResult = Int32

struct NVRTCAPI: @unchecked Sendable {
    let library: DynamicLibrary
    let nvrtcVersion: @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> NVRTCResult
    /// (program, source, name, header count, headers, include names)
    let nvrtcCreateProgram: @convention(c) (
        UnsafeMutablePointer<OpaquePointer?>, UnsafePointer<CChar>, UnsafePointer<CChar>?, Int32,
        UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?) -> NVRTCResult
    let nvrtcCompileProgram: @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> NVRTCResult
    let nvrtcGetPTXSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> NVRTCResult
    let nvrtcGetPTX: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> NVRTCResult
    /// Cubin output (NVRTC ≥ 11.1); nil in older versions, which only give PTX.
    let nvrtcGetCUBINSize: (@convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> NVRTCResult)?
    let nvrtcGetCUBIN: (@convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> NVRTCResult)?
    let nvrtcGetProgramLogSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> NVRTCResult
    let nvrtcGetProgramLog: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> NVRTCResult
    let nvrtcDestroyProgram: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> NVRTCResult
    let nvrtcGetErrorString: @convention(c) (NVRTCResult) -> UnsafePointer<CChar>?

    init() throws {
        library = try DynamicLibrary.open(
            "NVRTC (libnvrtc.so)",
            candidates: DynamicLibrary.candidates(override: "DMD2_CUDA_NVRTC", base: "libnvrtc.so",
                                                  versions: ["13", "12", "11.2", "11.1", "11.0"]))
        nvrtcVersion = try library.function("nvrtcVersion")
        nvrtcCreateProgram = try library.function("nvrtcCreateProgram")
        nvrtcCompileProgram = try library.function("nvrtcCompileProgram")
        nvrtcGetPTXSize = try library.function("nvrtcGetPTXSize")
        nvrtcGetPTX = try library.function("nvrtcGetPTX")
        nvrtcGetCUBINSize = library.optionalFunction("nvrtcGetCUBINSize")
        nvrtcGetCUBIN = library.optionalFunction("nvrtcGetCUBIN")
        nvrtcGetProgramLogSize = try library.function("nvrtcGetProgramLogSize")
        nvrtcGetProgramLog = try library.function("nvrtcGetProgramLog")
        nvrtcDestroyProgram = try library.function("nvrtcDestroyProgram")
        nvrtcGetErrorString = try library.function("nvrtcGetErrorString")
    }

    var version: String {
        var major: Int32 = 0, minor: Int32 = 0
        _ = nvrtcVersion(&major, &minor)
        return "\(major).\(minor)"
    }

    func check(_ result: NVRTCResult, _ call: @autoclosure () -> String) throws {
        guard result != 0 else { return }
        throw CUDAError("\(call()) failed: \(nvrtcGetErrorString(result).map { String(cString: $0) } ?? "NVRTC error") (\(result))")
    }

    /// Compile `source` for compute capability `major.minor`: a cubin for sm_XY when this NVRTC
    /// can make one, else PTX for compute_XY (the driver finishes it). Returns the image and
    /// its kind ("cubin sm_90" / "PTX compute_90").
    func compile(_ source: String, name: String, major: Int32, minor: Int32) throws -> (image: [CChar], kind: String) {
        var attempts: [(arch: String, cubin: Bool)] = []
        if nvrtcGetCUBIN != nil { attempts.append(("sm_\(major)\(minor)", true)) }
        attempts.append(("compute_\(major)\(minor)", false))
        var lastError = CUDAError("NVRTC: nothing tried")
        for attempt in attempts {
            do {
                return (try compile(source, name: name, arch: attempt.arch, cubin: attempt.cubin),
                        (attempt.cubin ? "cubin " : "PTX ") + attempt.arch)
            } catch let error as CUDAError {
                lastError = error
            }
        }
        throw lastError
    }

    private func compile(_ source: String, name: String, arch: String, cubin: Bool) throws -> [CChar] {
        var program: OpaquePointer?
        try check(source.withCString { src in name.withCString { nvrtcCreateProgram(&program, src, $0, 0, nil, nil) } },
                  "nvrtcCreateProgram")
        defer { _ = nvrtcDestroyProgram(&program) }
        // --fmad=false: a·b + c rounds twice, as the Swift reference does.
        let options = ["--gpu-architecture=\(arch)", "--fmad=false", "--std=c++14"]
        let cOptions = options.map { strdup($0) }
        defer { cOptions.forEach { free($0) } }
        let result = cOptions.map { UnsafePointer($0) }.withUnsafeBufferPointer { opts in
            nvrtcCompileProgram(program, Int32(opts.count), opts.baseAddress)
        }
        if result != 0 {
            var logSize = 0
            _ = nvrtcGetProgramLogSize(program, &logSize)
            var log = [CChar](repeating: 0, count: max(1, logSize))
            _ = nvrtcGetProgramLog(program, &log)
            let text = String(decoding: log.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw CUDAError("NVRTC could not compile the kernels for \(arch) (\(nvrtcGetErrorString(result).map { String(cString: $0) } ?? "\(result)")):\n\(text)")
        }
        var size = 0
        var image: [CChar]
        if cubin, let getSize = nvrtcGetCUBINSize, let get = nvrtcGetCUBIN {
            try check(getSize(program, &size), "nvrtcGetCUBINSize")
            image = [CChar](repeating: 0, count: size)
            try check(get(program, &image), "nvrtcGetCUBIN")
        } else {
            try check(nvrtcGetPTXSize(program, &size), "nvrtcGetPTXSize")
            image = [CChar](repeating: 0, count: size)
            try check(nvrtcGetPTX(program, &image), "nvrtcGetPTX")
        }
        return image
    }
}

// MARK: - cuBLAS

typealias CUBLASStatus = Int32

struct CUBLASAPI: @unchecked Sendable {
    let library: DynamicLibrary
    let cublasCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> CUBLASStatus
    let cublasGetVersion: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>) -> CUBLASStatus
    /// (handle, mode); CUBLAS_PEDANTIC_MATH = 2 keeps FP32 GEMMs in FP32 (no TF32), where present.
    let cublasSetMathMode: (@convention(c) (OpaquePointer?, Int32) -> CUBLASStatus)?
    /// Column-major C ← α·op(A)·op(B) + β·C: (handle, transa, transb, m, n, k, α*, A, lda, B, ldb, β*, C, ldc);
    /// op 0 = N, 1 = T; α, β are host pointers (the default pointer mode); A, B, C device addresses.
    let cublasSgemm: @convention(c) (
        OpaquePointer?, Int32, Int32, Int32, Int32, Int32, UnsafePointer<Float>, CUdeviceptr, Int32,
        CUdeviceptr, Int32, UnsafePointer<Float>, CUdeviceptr, Int32) -> CUBLASStatus
    let cublasDgemm: @convention(c) (
        OpaquePointer?, Int32, Int32, Int32, Int32, Int32, UnsafePointer<Double>, CUdeviceptr, Int32,
        CUdeviceptr, Int32, UnsafePointer<Double>, CUdeviceptr, Int32) -> CUBLASStatus

    static let pedanticMath: Int32 = 2

    init() throws {
        library = try DynamicLibrary.open(
            "cuBLAS (libcublas.so)",
            candidates: DynamicLibrary.candidates(override: "DMD2_CUDA_CUBLAS", base: "libcublas.so",
                                                  versions: ["13", "12", "11"]))
        cublasCreate = try library.function("cublasCreate_v2")
        cublasGetVersion = try library.function("cublasGetVersion_v2")
        cublasSetMathMode = library.optionalFunction("cublasSetMathMode")
        cublasSgemm = try library.function("cublasSgemm_v2")
        cublasDgemm = try library.function("cublasDgemm_v2")
    }

    func check(_ status: CUBLASStatus, _ call: @autoclosure () -> String) throws {
        guard status != 0 else { return }
        throw CUDAError("\(call()) failed: cuBLAS status \(status)")
    }
}
