// swift-tools-version:6.0
// swift-dmd2: a CPU-first, readable reference implementation of DMD2 (Yin et al., NeurIPS 2024)
// and the EDM teacher it distils. The target graph is the architecture (scripts/check-package-graph.py
// fails when a declared dependency is not imported or an import is not declared):
//
//   CBLIS, CFFTW        system libraries (BLIS GEMM for the core, FFTW 2-D real FFTs for Metrics)
//   SafeTensors         the checkpoint / fixture file format (pure Swift)
//   DMD2Core            Tensor<T>, the Backend seam and registry (CPU backend: SIMD + BLIS), autograd tape
//   DMD2Ops             every differentiable op: forward and backward side by side, scalar formulas beside them
//   DMD2Train           AdamW, EMA, progress bar, JSON-lines log, non-finite checks, run folders
//                       (checkpoints both trainers share, lock)
//   DMD2Data            datasets (ImageNet-64 npz, EDM zip/folder, class folders), PNG, grids
//   DMD2Metrics         FID (Inception-v3), KID, precision/recall, class consistency, spectra (FFT), diagnostics
//   DMD2Plot            line plots to SVG and PNG for the docs
//   EDM                 the teacher: ADM UNet, preconditioning, loss, samplers, checkpoints
//   EDMConvert          official EDM/DMD2 checkpoints (torch.save zips) into ours, no Python
//   EDMTraining         training the teacher: EDM loss + AdamW + EMA, resumable run folders
//   DMD2                the method: DM loss, fake critic, GAN head, TTUR loop, few-step generator
//   DMD2Toy             DMD2 in the plane: a Gaussian mixture with a closed-form score, for the guide
//   DMD2CUDA            a GPU backend adapter, CUDA loaded at run time (dlopen)
//   DMD2MPI             Open MPI behind DMD2Train's ProcessGroup, loaded at run time (dlopen): data-parallel training
//   DMD2Checks          the checking library: reference and shadow backends, the tolerance table, primitive,
//                       op and golden cases; finite-difference (Richardson-bounded), adjoint, Float-vs-Double
//                       and CPU-vs-reference checks of ops, UNet layers, the UNet, DMD2's losses, AdamW
//   dmd2                the command-line tool, one subcommand per job
import PackageDescription

// Hot paths are SIMD code: the compiler must target AVX2/FMA or SIMD math turns into
// per-lane library calls (docs/PERFORMANCE-FACTS.md). `unsafeFlags` is allowed in a root package.
let simd: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", "haswell"]),
]

let package = Package(
    name: "swift-dmd2",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "DMD2Core", targets: ["DMD2Core"]),
        .library(name: "DMD2Ops", targets: ["DMD2Ops"]),
        .library(name: "SafeTensors", targets: ["SafeTensors"]),
        .library(name: "CBLIS", targets: ["CBLIS"]),
        .executable(name: "dmd2", targets: ["dmd2"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.1.1"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
    ],
    targets: [
        .systemLibrary(name: "CBLIS", path: "Sources/CBLIS"),
        .systemLibrary(name: "CFFTW", path: "Sources/CFFTW"),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG"),
        .systemLibrary(name: "CLAPACK", path: "Sources/CLAPACK"),
        .target(name: "SafeTensors"),
        .target(
            name: "DMD2Core",
            dependencies: [
                "CBLIS", "SafeTensors",
                .product(name: "RealModule", package: "swift-numerics"),
            ],
            swiftSettings: simd),
        .target(name: "DMD2Ops", dependencies: ["DMD2Core", .product(name: "RealModule", package: "swift-numerics")], swiftSettings: simd),
        .target(name: "DMD2Train", dependencies: ["DMD2Core", "SafeTensors"], swiftSettings: simd),
        .target(name: "EDM", dependencies: ["DMD2Core", "DMD2Ops", "SafeTensors"], swiftSettings: simd),
        .target(name: "EDMConvert", dependencies: ["DMD2Data", "EDM", "SafeTensors"], swiftSettings: simd),
        .target(name: "EDMTraining", dependencies: ["DMD2Core", "DMD2Ops", "DMD2Train", "DMD2Data", "EDM", "SafeTensors"], swiftSettings: simd),
        .target(
            name: "DMD2Data",
            dependencies: ["DMD2Core", "CPNG", .product(name: "ZIPFoundation", package: "ZIPFoundation")],
            swiftSettings: simd),
        .target(
            name: "DMD2Metrics",
            dependencies: ["DMD2Core", "DMD2Ops", "DMD2Data", "SafeTensors", "CLAPACK", "CFFTW",
                           .product(name: "ZIPFoundation", package: "ZIPFoundation")],
            resources: [.copy("Resources")],
            swiftSettings: simd),
        .target(name: "DMD2Plot", dependencies: ["DMD2Data"], swiftSettings: simd),
        .target(
            name: "DMD2",
            dependencies: ["DMD2Core", "DMD2Ops", "DMD2Train", "DMD2Data", "EDM", "SafeTensors"],
            swiftSettings: simd),
        .target(name: "DMD2CUDA", dependencies: ["DMD2Core"], swiftSettings: simd),
        .target(name: "DMD2MPI", dependencies: ["DMD2Train"], swiftSettings: simd),
        .target(name: "DMD2Toy", dependencies: ["DMD2Core", "DMD2Ops", "DMD2Train", "EDM"], swiftSettings: simd),
        .target(name: "DMD2Checks", dependencies: ["DMD2Core", "DMD2Ops", "DMD2Train", "EDM", "DMD2"], swiftSettings: simd),
        // Test support (not a product): CheckedTestCase, the base class that registers the checking
        // backends so DMD2_BACKEND works in the test targets that use it.
        .target(name: "DMD2TestSupport", dependencies: ["DMD2Checks"], swiftSettings: simd),
        .executableTarget(
            name: "dmd2",
            dependencies: [
                "EDMConvert", "DMD2Core", "DMD2Ops", "DMD2Checks", "EDM", "EDMTraining", "DMD2Data", "DMD2Metrics", "DMD2Train",
                "DMD2", "DMD2Plot", "DMD2CUDA", "DMD2MPI", "DMD2Toy", "SafeTensors",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: simd),
        .executableTarget(
            name: "dmd2-bench",
            dependencies: ["DMD2Core", "DMD2Ops", "DMD2Train", "EDM", "DMD2", "DMD2Checks", "CBLIS"],
            path: "Benchmarks/dmd2-bench",
            swiftSettings: simd),
        .testTarget(name: "DMD2ToyTests", dependencies: ["DMD2Toy", "DMD2Core", "DMD2Ops"], swiftSettings: simd),
        .testTarget(name: "DMD2PlotTests", dependencies: ["DMD2Plot", "DMD2Data"], swiftSettings: simd),
        // Docs that cannot go stale: citations stay inside the repo, links resolve, quoted source matches.
        .testTarget(name: "DocsTests"),
        .testTarget(name: "DMD2Tests", dependencies: ["DMD2TestSupport", "DMD2", "EDM", "DMD2Core", "DMD2Ops", "DMD2Train", "DMD2Data", "DMD2Checks", "SafeTensors"], resources: [.copy("Resources")], swiftSettings: simd),
        .testTarget(name: "DMD2BackendTests", dependencies: ["DMD2TestSupport", "DMD2Core", "DMD2Ops", "EDM", "DMD2", "DMD2Train", "DMD2Checks", "DMD2CUDA"], swiftSettings: simd),
        .testTarget(name: "DMD2TrainTests", dependencies: ["DMD2TestSupport", "DMD2Train", "DMD2Core", "DMD2Ops", "SafeTensors"], swiftSettings: simd),
        .testTarget(name: "EDMTests", dependencies: ["EDMConvert", "DMD2TestSupport", "EDM", "DMD2Core", "DMD2Ops", "DMD2Data", "DMD2Checks", "SafeTensors"],
                    resources: [.copy("Resources")], swiftSettings: simd),
        .testTarget(name: "EDMTrainingTests", dependencies: ["DMD2TestSupport", "EDMTraining", "EDM", "DMD2Core", "DMD2Train", "DMD2Data", "SafeTensors"],
                    swiftSettings: simd),
        .testTarget(name: "DMD2DataTests", dependencies: ["DMD2Data", "DMD2Core", "SafeTensors"],
                    resources: [.copy("Resources")], swiftSettings: simd),
        .testTarget(name: "DMD2MetricsTests", dependencies: ["DMD2Metrics", "DMD2Data", "DMD2Core", "DMD2Ops", "SafeTensors"],
                    resources: [.copy("Resources")], swiftSettings: simd),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors"],
                    resources: [.copy("Resources")]),
        .testTarget(name: "DMD2CoreTests", dependencies: ["DMD2TestSupport", "DMD2Core"], swiftSettings: simd),
        .testTarget(
            name: "DMD2OpsTests",
            dependencies: ["DMD2TestSupport", "DMD2Core", "DMD2Ops", "DMD2Checks", "SafeTensors"],
            resources: [.copy("Fixtures")],
            swiftSettings: simd),
    ],
    swiftLanguageModes: [.v6]
)
