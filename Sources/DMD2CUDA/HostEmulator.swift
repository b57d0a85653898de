// The CUDA kernels without a GPU: CUDAKernels.source compiled for the host by the system C++
// compiler, behind a prelude that stands in for CUDA's built-ins, and run block by block.
//
// What it checks: the kernels' index arithmetic, bounds, reductions and block synchronisation,
// the argument marshalling (the same kernelParams array the driver gets), the backend's
// upload/download/scatter code and its row-major → column-major GEMM mapping (the emulated
// "cuBLAS" below takes cuBLAS's column-major arguments). What it cannot check: NVRTC's dialect
// (g++/clang++ compile the source instead), the driver calls, and real concurrency.
//
// Execution model: blocks run one after another. A kernel that never calls __syncthreads runs
// its threads as plain calls in thread order; a cooperative one (CUDAKernels.kernels marks
// them) runs each thread as a fiber (ucontext) that yields at every __syncthreads, so all of a
// block's threads reach a barrier before any passes it. `__shared__` becomes `static`, shared by
// the block's threads, which is right because only one block runs at a time. A barrier reached
// by some threads of a block while others have returned is reported and aborts (it would hang
// or misbehave on a GPU).
//
// Device memory is host memory with 64-byte guard zones on both sides, filled with a pattern
// and checked at `synchronize()`: an out-of-bounds write by a kernel fails the primitive.
import DMD2Core
import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class HostEmulatedDevice: KernelDevice {
    typealias Entry = @convention(c) (UInt32, UInt32, Int32, UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Void

    let library: DynamicLibrary
    let entries: [String: Entry]
    let summary: String
    /// Live allocations: user address → (raw base, user bytes).
    private var allocations: [CUdeviceptr: (base: UnsafeMutableRawPointer, bytes: Int)] = [:]
    static let guardBytes = 64
    static let guardByte: UInt8 = 0xA5

    /// Compiles the kernels with the host C++ compiler (CXX, else c++, clang++ or g++) into a
    /// shared library cached under the temporary folder by the source's hash, and loads it.
    init() throws {
        let source = Self.prelude + CUDAKernels.source + "\n"
            + CUDAKernels.kernels.flatMap { k in ["f32", "f64"].map { "EMU_ENTRY(\(k.name)_\($0))" } }.joined(separator: "\n") + "\n"
        let hash = String(Self.fnv1a(source), radix: 16)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dmd2-cuda-emulator-\(hash)")
        let libraryURL = folder.appendingPathComponent("libdmd2kernels.so")
        let compiler = try Self.findCompiler()
        if !FileManager.default.fileExists(atPath: libraryURL.path) {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let sourceURL = folder.appendingPathComponent("kernels.cpp")
            try source.write(to: sourceURL, atomically: true, encoding: .utf8)
            // Build into a process-specific name, then rename: concurrent test processes never
            // load a half-written library.
            let partial = folder.appendingPathComponent("libdmd2kernels.\(getpid()).so")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: compiler)
            process.arguments = ["-std=c++17", "-O2", "-ffp-contract=off", "-fPIC", "-shared", "-w",
                                 "-o", partial.path, sourceURL.path]
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = errors
            try process.run()
            let log = errors.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw CUDAError("host emulator: \(compiler) could not compile the kernels (\(sourceURL.path)):\n"
                                + String(decoding: log, as: UTF8.self))
            }
            if rename(partial.path, libraryURL.path) != 0 {
                throw CUDAError("host emulator: could not move \(partial.path) to \(libraryURL.path)")
            }
        }
        library = try DynamicLibrary.open("the host-compiled kernels", candidates: [libraryURL.path])
        var entries: [String: Entry] = [:]
        for (base, _) in CUDAKernels.kernels {
            for suffix in ["f32", "f64"] {
                entries["\(base)_\(suffix)"] = try library.function("emu_\(base)_\(suffix)")
            }
        }
        self.entries = entries
        summary = "host emulator (kernels compiled by \(compiler), \(libraryURL.path))"
    }

    /// The C++ compiler to use, or an error saying none was found.
    static func findCompiler() throws -> String {
        var names: [String] = []
        if let cxx = ProcessInfo.processInfo.environment["CXX"], !cxx.isEmpty { names.append(cxx) }
        names += ["c++", "clang++", "g++"]
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init)
        for name in names {
            if name.hasPrefix("/") { if FileManager.default.isExecutableFile(atPath: name) { return name } else { continue } }
            for folder in path where FileManager.default.isExecutableFile(atPath: "\(folder)/\(name)") { return "\(folder)/\(name)" }
        }
        throw CUDAError("host emulator: no C++ compiler found (CXX, c++, clang++, g++)")
    }

    static func fnv1a(_ text: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return h
    }

    func makeCurrent() throws {}

    func allocate(bytes: Int) throws -> CUdeviceptr {
        let g = Self.guardBytes
        guard let base = malloc(bytes + 2 * g) else { throw CUDAError("host emulator: out of memory (\(bytes) bytes)") }
        memset(base, Int32(Self.guardByte), g)
        memset(base + g + bytes, Int32(Self.guardByte), g)
        let address = CUdeviceptr(UInt(bitPattern: base + g))
        allocations[address] = (base, bytes)
        return address
    }

    func free(_ address: CUdeviceptr) {
        guard let a = allocations.removeValue(forKey: address) else { return }
        Glibc.free(a.base)
    }

    func upload(_ source: UnsafeRawPointer, to address: CUdeviceptr, bytes: Int) throws {
        guard let dst = UnsafeMutableRawPointer(bitPattern: UInt(address)) else { throw CUDAError("host emulator: upload to address 0") }
        dst.copyMemory(from: source, byteCount: bytes)
    }

    func download(_ address: CUdeviceptr, to destination: UnsafeMutableRawPointer, bytes: Int) throws {
        guard let src = UnsafeRawPointer(bitPattern: UInt(address)) else { throw CUDAError("host emulator: download from address 0") }
        destination.copyMemory(from: src, byteCount: bytes)
    }

    func launch(_ kernel: String, grid: Int, block: Int, cooperative: Bool,
                parameters: UnsafeMutablePointer<UnsafeMutableRawPointer?>) throws {
        guard let entry = entries[kernel] else { throw CUDAError("host emulator: no kernel \(kernel)") }
        entry(UInt32(grid), UInt32(block), cooperative ? 1 : 0, parameters)
    }

    /// cuBLAS's column-major GEMM, written out: C[i + j·ldc] ← α·Σ_p op(A)[i, p]·op(B)[p, j] + β·C
    /// (β = 0: C is not read, as in BLAS).
    func gemmColumnMajor(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                         alpha: Double, a: CUdeviceptr, lda: Int, b: CUdeviceptr, ldb: Int,
                         beta: Double, c: CUdeviceptr, ldc: Int, double: Bool) throws {
        if double {
            columnMajorGemm(Double.self, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        } else {
            columnMajorGemm(Float.self, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        }
    }

    private func columnMajorGemm<T: TensorScalar>(
        _: T.Type, _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Double,
        _ a: CUdeviceptr, _ lda: Int, _ b: CUdeviceptr, _ ldb: Int, _ beta: Double, _ c: CUdeviceptr, _ ldc: Int
    ) {
        guard m > 0, n > 0, let C = UnsafeMutablePointer<T>(bitPattern: UInt(c)) else { return }
        let A = UnsafePointer<T>(bitPattern: UInt(a)), B = UnsafePointer<T>(bitPattern: UInt(b))
        let al = T(alpha), be = T(beta)
        for j in 0..<n {
            for i in 0..<m {
                var s: T = 0
                for p in 0..<k {
                    let aip = transA ? A![p + i * lda] : A![i + p * lda]
                    let bpj = transB ? B![j + p * ldb] : B![p + j * ldb]
                    s += aip * bpj
                }
                C[i + j * ldc] = al * s + (be == 0 ? 0 : be * C[i + j * ldc])
            }
        }
    }

    func synchronize() throws {
        for (address, a) in allocations {
            let g = Self.guardBytes
            let before = UnsafeRawBufferPointer(start: a.base, count: g)
            let after = UnsafeRawBufferPointer(start: a.base + g + a.bytes, count: g)
            if let i = before.firstIndex(where: { $0 != Self.guardByte }) {
                throw CUDAError("host emulator: a kernel wrote \(g - i) bytes before the buffer at 0x\(String(address, radix: 16)) (\(a.bytes) bytes)")
            }
            if let i = after.firstIndex(where: { $0 != Self.guardByte }) {
                throw CUDAError("host emulator: a kernel wrote past the end of the buffer at 0x\(String(address, radix: 16)) (\(a.bytes) bytes), at byte \(a.bytes + i)")
            }
        }
    }

    /// Stand-ins for the CUDA built-ins the kernels use (see the file comment).
    static let prelude = #"""
// Host emulation of the CUDA built-ins used by the swift-dmd2 kernels (HostEmulator.swift).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>
#include <type_traits>
#include <utility>
#include <vector>

struct uint3 { unsigned x, y, z; };
static uint3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

namespace emu {
struct Fiber { ucontext_t context; bool done; };
static ucontext_t scheduler;
static Fiber* current = nullptr;
static bool cooperative = false;
static void (*body)(void*) = nullptr;
static void* body_argument = nullptr;
static void trampoline() { body(body_argument); current->done = true; }
}

inline void __syncthreads() {
    if (!emu::cooperative) {
        fprintf(stderr, "host emulator: __syncthreads in a kernel not marked cooperative in CUDAKernels.kernels\n");
        abort();
    }
    swapcontext(&emu::current->context, &emu::scheduler);
}

template <typename... A, size_t... I>
void emu_call(void (*kernel)(A...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<typename std::remove_reference<A>::type*>(args[I])...);
}

template <typename... A>
void emu_launch(void (*kernel)(A...), unsigned grid, unsigned block, int cooperative, void** args) {
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    struct Launch { void (*kernel)(A...); void** args; } launch{kernel, args};
    void (*run)(void*) = [](void* p) {
        Launch* l = static_cast<Launch*>(p);
        emu_call(l->kernel, l->args, std::index_sequence_for<A...>{});
    };
    if (!cooperative) {
        emu::cooperative = false;
        for (unsigned b = 0; b < grid; b++) {
            blockIdx = {b, 0, 0};
            for (unsigned t = 0; t < block; t++) { threadIdx = {t, 0, 0}; run(&launch); }
        }
        return;
    }
    emu::cooperative = true;
    emu::body = run;
    emu::body_argument = &launch;
    const size_t stack = 64 * 1024;
    static std::vector<emu::Fiber> fibers;
    static std::vector<char> stacks;
    if (fibers.size() < block) { fibers.resize(block); stacks.resize(block * stack); }
    for (unsigned b = 0; b < grid; b++) {
        blockIdx = {b, 0, 0};
        for (unsigned t = 0; t < block; t++) {
            emu::Fiber& f = fibers[t];
            getcontext(&f.context);
            f.context.uc_stack.ss_sp = &stacks[t * stack];
            f.context.uc_stack.ss_size = stack;
            f.context.uc_link = &emu::scheduler;
            makecontext(&f.context, emu::trampoline, 0);
            f.done = false;
        }
        // Rounds: every live thread runs to its next barrier or to its end.
        for (;;) {
            unsigned waiting = 0, finished = 0;
            for (unsigned t = 0; t < block; t++) {
                emu::Fiber& f = fibers[t];
                if (f.done) continue;
                emu::current = &f;
                threadIdx = {t, 0, 0};
                swapcontext(&emu::scheduler, &f.context);
                if (f.done) finished++; else waiting++;
            }
            if (waiting == 0) break;
            if (finished > 0) {
                fprintf(stderr, "host emulator: block %u: %u threads wait at __syncthreads while %u returned\n", b, waiting, finished);
                abort();
            }
        }
    }
    emu::cooperative = false;
}

#define EMU_ENTRY(name) \
    extern "C" void emu_##name(unsigned grid, unsigned block, int cooperative, void** args) { \
        emu_launch(name, grid, block, cooperative, args); }

"""#
}
