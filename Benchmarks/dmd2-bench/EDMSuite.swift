// `edm`: whole-network timings of the ADM UNet, the Swift side of reference/bench_edm.py.
//
// Cases (the same names, work and inputs as the PyTorch script, so the two can be compared):
//   imagenet64-forward          batch 1, no gradient: D(80·x; σ = 80, y), preconditioning + F
//   imagenet64-fwdbwd           batch 1, the EDM loss with fixed draws, dropout 0.1, backward
//                               into every parameter
//   cpu64Tiny-train-16/32,      one teacher training step: EDM loss with label dropout,
//   cpu64Small-train-16/32      backward, global gradient norm, AdamW, EMA update
//
// Every case runs in its own process (this executable, `edm --child --case NAME`), so the peak resident
// set (VmHWM) belongs to that case alone; `base` is the same process before the model is built.
// Swift and PyTorch run alternately, case by case, so machine-load drift falls on both. GFLOP
// counts 2 per multiply-add of convolutions, linear layers and attention (`forwardCost`);
// backward passes count 2× the forward.
import DMD2Core
import DMD2Ops
import DMD2Train
import EDM
import Foundation

let edmCases = ["imagenet64-forward", "imagenet64-fwdbwd",
                "cpu64Tiny-train-16", "cpu64Tiny-train-32", "cpu64Small-train-16", "cpu64Small-train-32"]

/// One case's figures, as both implementations print them (one JSON object).
struct EDMCaseResult: Codable {
    var `case`: String
    var batch: Int
    var median_s: Double
    var runs_s: [Double]
    var gflop: Double
    var gflops_per_s: Double
    var base_rss_mb: Double
    var peak_rss_mb: Double
    var images_per_s: Double?
}

/// A /proc/self/status field in MiB ("VmHWM", "VmRSS").
func procStatusMiB(_ field: String) -> Double {
    for line in readProcFile("/proc/self/status").split(separator: "\n") where line.hasPrefix(field + ":") {
        // "VmHWM:\t  473840 kB", but "VmHWM:\t12457316 kB" from 10⁷ kB on: split on tabs too.
        let kB = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap { Double($0) }
        return (kB ?? 0) / 1024
    }
    return 0
}

/// Run one case in this process and print its JSON line.
func runEDMCase(_ name: String, repeats: Int) {
    let parts = name.split(separator: "-").map(String.init)
    guard edmCases.contains(name), let preset = UNetConfig.presets[parts[0]] else {
        fail("unknown edm case '\(name)' (cases: \(edmCases.joined(separator: ", ")))")
    }
    let base = procStatusMiB("VmRSS")
    var rng = RandomGenerator(seed: 0)
    let denoiser = Denoiser<Float>(net: UNet(config: preset, rng: &rng))
    let c = preset
    func inputs(_ batch: Int) -> (Variable<Float>, Tensor<Float>?) {
        let x: Tensor<Float> = rng.uniform([batch, c.inChannels, c.resolution, c.resolution], low: -1, high: 1)
        var y = Tensor<Float>.zeros([batch, c.labelDim])
        y.withUnsafeMutableBufferPointer { ys in for n in 0..<batch { ys[n * c.labelDim + rng.int(in: 0...(c.labelDim - 1))] = 1 } }
        return (Variable(x), c.labelDim > 0 ? y : nil)
    }
    let forward = c.forwardCost().total / 1e9
    let step: () -> Void
    let batch: Int
    let work: Double
    switch parts[1] {
    case "forward":
        batch = 1
        let (x, y) = inputs(batch)
        let scaled = x * Variable(Tensor<Float>(shape: [1, 1, 1, 1], scalars: [80]))
        step = { _ = NoGrad.run { denoiser(scaled, sigma: 80, classLabels: y) } }
        work = forward
    case "fwdbwd":
        batch = 1
        let (x, y) = inputs(batch)
        let loss = EDMLoss(pMean: -1.2, pStd: 1.2, labelDropout: 0)
        let draws: EDMLoss.Draws<Float> = loss.draw(shape: x.shape, rng: &rng)
        step = {
            denoiser.parameters.zeroGrad()
            var dropoutRNG = RandomGenerator(seed: 1)
            let masks = denoiser.net.trainingDropout(rng: &dropoutRNG)
            loss(denoiser, images: x, classLabels: y, draws: draws, dropout: masks).backward()
        }
        work = 3 * forward
    default:
        batch = Int(parts[2])!
        let (x, y) = inputs(batch)
        let loss = EDMLoss(config: c)
        let variables = denoiser.parameters.variables
        let optimizer = AdamW(parameters: Array(zip(denoiser.parameters.names, variables)).map { ($0, $1) },
                              config: AdamWConfig(learningRate: 1e-4, weightDecay: 0))
        var ema = EMA(variables, schedule: .decay(0.999))
        var seen = 0
        step = {
            optimizer.zeroGrad()
            let masks = denoiser.net.trainingDropout(rng: &rng)
            loss(denoiser, images: x, classLabels: y, rng: &rng, dropout: masks).backward()
            _ = clipGradNorm(variables, maxNorm: .greatestFiniteMagnitude)     // the logged global norm
            _ = optimizer.step()
            seen += batch
            ema.update(variables, batchImages: batch, imagesSeen: seen)
        }
        work = 3 * forward * Double(batch)
    }
    step()                                                    // warm-up
    var runs: [Double] = []
    for _ in 0..<repeats { runs.append(secondsToRun(step)) }
    let median = Timing(samples: runs).median
    let result = EDMCaseResult(
        case: name, batch: batch, median_s: median, runs_s: runs, gflop: work, gflops_per_s: work / median,
        base_rss_mb: base, peak_rss_mb: procStatusMiB("VmHWM"),
        images_per_s: parts[1] == "train" ? Double(batch) / median : nil)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    print(String(decoding: try! encoder.encode(result), as: UTF8.self))
}

/// The last JSON line a child process printed, decoded; nil (with the reason on stderr) when it failed.
func runChild<Result: Decodable>(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                                   as: Result.Type = EDMCaseResult.self) -> Result? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let pipe = Pipe()
    process.standardOutput = pipe
    // With `--neighbour`, a busy process of our own runs beside the child (Neighbour.swift).
    let started: String? = Neighbour.around {
        do { try process.run() } catch {
            FileHandle.standardError.write(Data("  could not start \(executable): \(error)\n".utf8))
            return nil
        }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return output
    }
    guard let output = started else { return nil }
    guard process.terminationStatus == 0,
          let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
          let result = try? JSONDecoder().decode(Result.self, from: Data(line.utf8))
    else {
        FileHandle.standardError.write(Data("  \(executable) \(arguments.joined(separator: " ")) failed (status \(process.terminationStatus))\n".utf8))
        return nil
    }
    return result
}

/// Every case (or `only`), Swift then PyTorch, one process each; prints a side-by-side table.
func runEDMSuite(_ settings: RunSettings, threads: Int, python: String?, only: [String]?) {
    let cases = only ?? edmCases
    let me = CommandLine.arguments[0]
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../reference/bench_edm.py").standardizedFileURL.path
    let torch = python.flatMap { p in FileManager.default.fileExists(atPath: script) ? p : nil }
    print("""
        == edm: the ADM UNet, whole network, one process per case (median of \(settings.repeats) after 1 warm-up)
           Swift: this executable `edm --child --case NAME`; PyTorch: \(torch.map { "\($0) reference/bench_edm.py --case NAME" } ?? "skipped")
           ms per call; GFLOP/s from forwardCost (backward = 2× forward); peak = VmHWM (Swift) / ru_maxrss (PyTorch), MiB
        """)
    var table = Table(["case", "batch", "GFLOP", "swift ms", "GFLOP/s", "img/s", "peak MiB",
                       "torch ms", "GFLOP/s", "img/s", "peak MiB", "swift/torch time"])
    for name in cases {
        let swift = runChild(me, ["edm", "--child", "--case", name, "--threads", "\(threads)", "--repeats", "\(settings.repeats)"])
        let py = torch.flatMap { p in
            runChild("/usr/bin/env", [p, script, "--case", name, "--threads", "\(threads)", "--repeats", "\(settings.repeats)"])
        }
        func cells(_ r: EDMCaseResult?) -> [String] {
            guard let r else { return ["–", "–", "–", "–"] }
            return [fmt(r.median_s * 1e3, 0), fmt(r.gflops_per_s, 1), r.images_per_s.map { fmt($0, 2) } ?? "–", fmt(r.peak_rss_mb, 0)]
        }
        let ratio = (swift != nil && py != nil) ? fmt(swift!.median_s / py!.median_s, 2) : "–"
        table.add([name, "\((swift ?? py)?.batch ?? 0)", (swift ?? py).map { fmt($0.gflop, 1) } ?? "–"]
                  + cells(swift) + cells(py) + [ratio])
    }
    print(table.render())
}
