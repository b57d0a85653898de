// Which kernel set BLIS runs: its AVX-512 (`skx`) kernels on CPUs that have AVX-512.
//
// BLIS picks its kernels (its "arch") once, when it initialises. Debian's BLIS 0.9 picks
// `haswell` (AVX2) on this project's AVX-512 Xeon; with `skx` forced, the conv GEMMs ran
// 1.4–1.7× faster on one thread (`dmd2-bench conv`, 2026-11-28) and every test passes. BLIS reads
// the choice from the environment variable BLIS_ARCH_TYPE (an `arch_t` id; skx is 0 in BLIS 0.9)
// when it initialises, so `BLISRuntime.prepare()` sets it before DMD2Core's first BLIS call
// (`Threads`' start-up and `CPUBackend.init` call it), and only when
//   - the environment holds no BLIS_ARCH_TYPE already: a user's choice wins (BLIS_ARCH_TYPE=3
//     keeps haswell);
//   - /proc/cpuinfo lists avx512f, avx512dq, avx512bw and avx512vl, the subsets the skx
//     kernels use;
//   - the BLIS loaded names arch 0 "skx" (`bli_arch_string`, a table lookup that does not start
//     BLIS), so a BLIS with other ids is left alone.
// It assumes the BLIS build contains the skx configuration, as the x86_64 family build that
// Debian and other distributions ship does; with a build that lacks it, BLIS would stop at
// start-up — set BLIS_ARCH_TYPE yourself there.
//
// Kernel sets round differently: results are bitwise reproducible for a fixed machine, thread
// count and BLIS_ARCH_TYPE, not across them (a run resumed on another CPU, or with another
// BLIS_ARCH_TYPE, continues with different rounding).
import Foundation

public enum BLISRuntime {
    /// BLIS 0.9's `arch_t` id of its Skylake-X (AVX-512) configuration.
    static let skxID: Int32 = 0
    /// The AVX-512 subsets the skx kernels use.
    static let requiredCPUFlags = ["avx512f", "avx512dq", "avx512bw", "avx512vl"]

    /// What `prepare()` did, for reports.
    public static let decision: String = choose()

    /// Choose BLIS's kernels if the user has not. Call before any BLIS call; later calls do nothing.
    public static func prepare() { _ = decision }

    private static func choose() -> String {
        if let own = ProcessInfo.processInfo.environment["BLIS_ARCH_TYPE"] {
            return "BLIS_ARCH_TYPE=\(own) from the environment"
        }
        let flags = cpuFlags()
        let missing = requiredCPUFlags.filter { !flags.contains($0) }
        guard missing.isEmpty else { return "BLIS chooses its kernels (the CPU lacks \(missing.joined(separator: ", ")))" }
        guard archName(skxID) == "skx" else { return "BLIS chooses its kernels (its arch \(skxID) is not skx)" }
        setenv("BLIS_ARCH_TYPE", "\(skxID)", 0)
        return "BLIS_ARCH_TYPE=\(skxID) (skx kernels): AVX-512 CPU"
    }

    /// The flags of the first processor in /proc/cpuinfo (empty where there is none).
    static func cpuFlags() -> Set<String> {
        guard let handle = FileHandle(forReadingAtPath: "/proc/cpuinfo") else { return [] }
        defer { try? handle.close() }
        let info = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        guard let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let list = line.split(separator: ":", maxSplits: 1).last else { return [] }
        return Set(list.split(separator: " ").map(String.init))
    }

    /// `bli_arch_string(id)`, found with dlsym (the CBLIS shim does not declare it).
    static func archName(_ id: Int32) -> String? {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "bli_arch_string") else { return nil }
        let name = unsafeBitCast(symbol, to: (@convention(c) (Int32) -> UnsafePointer<CChar>?).self)(id)
        return name.map { String(cString: $0) }
    }
}
