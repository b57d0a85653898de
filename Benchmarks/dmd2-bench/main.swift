// dmd2-bench: on-demand performance figures for swift-dmd2 (never run in CI; reports, never asserts).
//
//   swift run -c release dmd2-bench <gemm|conv|elementwise|all> [options]
//
// See Benchmarks/README.md for what each suite measures and the figures so far.
import CBLIS
import DMD2Checks
import DMD2Core
import Foundation

// `--neighbour` starts this executable with `--spin` as the busy neighbour: one thread of
// floating-point work forever, until the bench kills it (Neighbour.swift).
if CommandLine.arguments.dropFirst().first == "--spin" { spinForever() }

let usage = """
    usage: dmd2-bench <suite> [options]

    suites:
      gemm          sgemm GFLOP/s: core (Compute.backend.gemm) vs cblas_sgemm, packing off and on
      conv          conv2d 3x3 forward and forward+backward at the ADM shapes, vs PyTorch if installed
      elementwise   GB/s of add, affine, SiLU and sum over 16M Floats
      edm           the ADM UNet: imagenet64 forward and forward+backward, small-preset training
                    steps; time, GFLOP/s, img/s and peak memory, vs reference/bench_edm.py
      dmd2          one DMD2 iteration on the small presets, phase by phase (G forward, μ_real/μ_fake
                    forwards, GAN, backward, critic, optimizers), peak memory, vs reference/bench_dmd2.py
      all           gemm, conv and elementwise (edm takes minutes: run it on its own)

    options:
      --threads N   threads of our pool: parallel loops and GEMM blocks (default 2; BLIS runs single-threaded)
      --repeats N   timed samples per figure (default 5)
      --warmup N    untimed runs first (default 1)
      --sizes A,B,…   square GEMM sizes (default 64,128,256,512,1024,2048)
      --shapes MxNxK,…  GEMM shapes (no transposes) to time instead of the default list
      --python P    Python used for the PyTorch comparison (default python3)
      --no-torch    skip the PyTorch comparison
      --case A,B,…  edm, dmd2: only these cases
      --neighbour   edm, dmd2: run one CPU-bound process of our own beside each measured child
                    (Swift and PyTorch alike), started before it and killed after it
    """

/// The command line, parsed by hand (this target has no argument-parser dependency).
struct Options {
    var suite = ""
    var threads = 2
    var settings = RunSettings()
    var squareSizes = [64, 128, 256, 512, 1024, 2048]
    /// Custom GEMM shapes (m, n, k); when given, they replace the squares and conv shapes.
    var gemmShapes: [(m: Int, n: Int, k: Int)]? = nil
    var python: String? = "python3"
    /// edm cases to run; with exactly one and no other suite work, it runs in this process.
    var edmCases: [String]? = nil
    /// Set by the edm suite on the processes it starts (`--child`): run the case, print JSON only.
    var isChild = false
    /// Run a busy neighbour process beside every measured child process (edm, dmd2).
    var neighbour = false

    init(_ args: [String]) {
        var rest = args[...]
        func value(_ flag: String) -> String {
            guard let v = rest.popFirst() else { fail("\(flag) needs a value") }
            return v
        }
        func positive(_ flag: String, allowZero: Bool = false) -> Int {
            let v = value(flag)
            guard let n = Int(v), n > 0 || (allowZero && n == 0) else { fail("\(flag): bad count '\(v)'") }
            return n
        }
        while let arg = rest.popFirst() {
            switch arg {
            case "--threads": threads = positive(arg)
            case "--repeats": settings.repeats = positive(arg)
            case "--warmup": settings.warmup = positive(arg, allowZero: true)
            case "--sizes":
                let v = value(arg)
                let sizes = v.split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
                guard !sizes.isEmpty, sizes.count == v.split(separator: ",").count else { fail("--sizes: bad list '\(v)'") }
                squareSizes = sizes
            case "--shapes":
                let v = value(arg)
                gemmShapes = v.split(separator: ",").map { item in
                    let d = item.split(separator: "x").compactMap { Int($0) }
                    guard d.count == 3, d.allSatisfy({ $0 > 0 }) else { fail("--shapes: '\(item)' is not MxNxK") }
                    return (d[0], d[1], d[2])
                }
            case "--python": python = value(arg)
            case "--no-torch": python = nil
            case "--neighbour", "--neighbor": neighbour = true
            case "--child": isChild = true
            case "--case": edmCases = value(arg).split(separator: ",").map(String.init)
            case "-h", "--help": print(usage); exit(0)
            case _ where arg.hasPrefix("-"): fail("unknown option \(arg)")
            default:
                guard suite.isEmpty else { fail("more than one suite given: \(suite), \(arg)") }
                suite = arg
            }
        }
        guard ["gemm", "conv", "elementwise", "edm", "dmd2", "all"].contains(suite) else {
            fail(suite.isEmpty ? "no suite given" : "unknown suite '\(suite)'")
        }
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("dmd2-bench: \(message)\n\n\(usage)\n".utf8))
    exit(2)
}

/// The text of a /proc file ("" if unreadable). /proc files report size 0, so read to the end.
func readProcFile(_ path: String) -> String {
    guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
    defer { try? handle.close() }
    return String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
}

/// Where the running process loaded BLIS (and OpenMP) from, read from /proc/self/maps.
func loadedLibraries(matching names: [String]) -> [String] {
    let maps = readProcFile("/proc/self/maps")
    var paths: [String] = []
    for line in maps.split(separator: "\n") {
        guard let path = line.split(separator: " ", omittingEmptySubsequences: true).last.map(String.init),
              path.hasPrefix("/"), names.contains(where: { path.contains($0) }), !paths.contains(path)
        else { continue }
        paths.append(path)
    }
    return paths
}

/// The kernel set BLIS chose at start-up, `bli_arch_string(bli_arch_query_id())` (found with
/// dlsym: the CBLIS shim does not declare them). `BLIS_ARCH_TYPE=<id>` in the environment
/// overrides BLIS's choice (BLIS 0.9 ids: 0 skx (AVX-512), 3 haswell, 6 zen3).
func blisArchitecture() -> String {
    let process = dlopen(nil, RTLD_NOW)
    guard let queryID = dlsym(process, "bli_arch_query_id"), let nameOf = dlsym(process, "bli_arch_string") else {
        return "unknown"
    }
    let id = unsafeBitCast(queryID, to: (@convention(c) () -> Int32).self)()
    let name = unsafeBitCast(nameOf, to: (@convention(c) (Int32) -> UnsafePointer<CChar>?).self)(id)
    let override = ProcessInfo.processInfo.environment["BLIS_ARCH_TYPE"].map { ", BLIS_ARCH_TYPE=\($0)" } ?? ""
    return (name.map { String(cString: $0) } ?? "?") + " (id \(id)\(override))"
}

/// The first "model name" of /proc/cpuinfo.
func cpuModel() -> String {
    let info = readProcFile("/proc/cpuinfo")
    let line = info.split(separator: "\n").first { $0.hasPrefix("model name") }
    return line.map { $0.split(separator: ":", maxSplits: 1).last!.trimmingCharacters(in: .whitespaces) } ?? "unknown"
}

func loadAverage() -> String {
    readProcFile("/proc/loadavg")
        .split(separator: " ").prefix(3).joined(separator: " ")
}

let options = Options(Array(CommandLine.arguments.dropFirst()))
// Before the first use of Compute.backend, so DMD2_BACKEND=reference or shadow[:NAME] works here.
CheckBackends.register()
Neighbour.enabled = options.neighbour && !options.isChild
Threads.count = options.threads          // our pool's threads; BLIS itself always runs one
bli_init()

// A child process of the edm suite: one case, one JSON line, nothing else.
if options.suite == "edm", options.isChild, let cases = options.edmCases, cases.count == 1 {
    runEDMCase(cases[0], repeats: options.settings.repeats)
    exit(0)
}
if options.suite == "dmd2", options.isChild, let cases = options.edmCases, cases.count == 1 {
    runDMD2Case(cases[0], repeats: options.settings.repeats, warmup: options.settings.warmup)
    exit(0)
}

print("""
    dmd2-bench \(options.suite)
      date      \(Date().formatted(.iso8601))
      command   \(CommandLine.arguments.joined(separator: " "))
      threads   \(Threads.count) (our pool: parallel loops and GEMM blocks; BLIS single-threaded); \(ProcessInfo.processInfo.activeProcessorCount) cores online
      cpu       \(cpuModel())
      load avg  \(loadAverage()) (1, 5, 15 min)
      backend   \(Compute.backend.name)
      blis arch \(blisArchitecture())
      omp wait  \(ProcessInfo.processInfo.environment["OMP_WAIT_POLICY"] ?? "(default)")
      neighbour \(options.neighbour ? "yes: one busy process (`dmd2-bench --spin`) beside each measured child" : "none")
      libraries \(loadedLibraries(matching: ["libblis", "libgomp", "libomp"]).joined(separator: ", "))

    """)

if let load = Double(loadAverage().split(separator: " ").first ?? ""),
   load > 0.75 * Double(ProcessInfo.processInfo.activeProcessorCount) {
    print("NOTE: the machine is busy (1-min load \(load)); figures will be noisy: compare ratios",
          "measured side by side in one run, not absolute times.\n")
}

let suites = options.suite == "all" ? ["gemm", "conv", "elementwise"] : [options.suite]
for suite in suites {
    switch suite {
    case "gemm":
        let shapes = options.gemmShapes.map { $0.map { GEMMShape(label: "\($0.m)x\($0.n)x\($0.k)", m: $0.m, n: $0.n, k: $0.k) } }
            ?? GEMMShape.squares(options.squareSizes) + GEMMShape.admConvShapes
        runGEMMSuite(options.settings, shapes: shapes)
    case "conv": runConvSuite(options.settings, python: options.python)
    case "edm": runEDMSuite(options.settings, threads: options.threads, python: options.python, only: options.edmCases)
    case "dmd2": runDMD2Suite(options.settings, threads: options.threads, python: options.python, only: options.edmCases)
    default: runElementwiseSuite(options.settings)
    }
    print("")
}
print("load avg at end: \(loadAverage())")
