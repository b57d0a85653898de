// `dmd2 make-pairs`: the original DMD's regression pairs — noise z and the teacher's Heun sample
// from the same z — for `dmd2 distill --regression-pairs` (the paper's ablation).
import ArgumentParser
import DMD2
import DMD2Core
import EDM
import Foundation

struct MakePairs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "make-pairs",
        abstract: "Make regression pairs (z, teacher Heun sample from σ_max·z) for the original DMD's regression loss.",
        discussion: "Writes a safetensors file with latents [N, C, R, R], labels [N] (i mod classes) and samples [N, C, R, R]. Each image costs 2·steps − 1 teacher evaluations.")

    @OptionGroup var common: CommonOptions
    @Option(name: .long, help: "The teacher: a network .safetensors file, or a train-teacher run or checkpoint folder (its EMA weights unless --raw-teacher).")
    var teacher: String = "runs/teacher"
    @Flag(name: .long, help: "Use the raw (non-EMA) weights of a train-teacher folder.")
    var rawTeacher = false
    @Option(name: .long, help: "Number of pairs.")
    var count: Int = 256
    @Option(name: .long, help: "Heun steps of the teacher's deterministic sampler.")
    var steps: Int = 18
    @Option(name: .long, help: "Images per teacher batch.")
    var batch: Int = 16
    @Option(name: .long, help: "Seed of the latents.")
    var seed: UInt64 = 0
    @Option(name: .long, help: "Output safetensors file.")
    var out: String

    func validate() throws {
        guard count > 0, steps > 0, batch > 0 else { throw ValidationError("--count, --steps and --batch must be positive") }
    }

    func run() throws {
        common.apply()
        let loaded = try loadTeacherNetwork(teacher, raw: rawTeacher)
        let c = loaded.net.config
        // The pairs are held in memory (latents and samples) while a batch is sampled.
        try SystemMemory.check(Double(batch) * c.samplingBytesPerImageLowerBound
                                + 2 * 4 * Double(count) * Double(c.inChannels * c.resolution * c.resolution),
                               for: "\(count) pairs sampled \(batch) at a time", option: "--count or --batch")
        print("teacher: \(teacher), \(c.resolution)×\(c.resolution)×\(c.inChannels), \(c.labelDim) classes")
        print("pairs: \(count), Heun \(steps) steps (NFE \(2 * steps - 1) per image), batch \(batch), seed \(seed), threads \(Threads.count)")
        let started = ProcessInfo.processInfo.systemUptime
        let pairs = RegressionPairs.make(teacher: Denoiser(net: loaded.net), count: count, steps: steps, seed: seed, batch: batch,
                                         metadata: ["teacher": teacher]) { done, total in
            let elapsed = ProcessInfo.processInfo.systemUptime - started
            print(String(format: "  %d/%d pairs, %.1f s (%.2f img/s)", done, total, elapsed, Double(done) / max(elapsed, 1e-9)))
            fflush(nil)  // reach a redirected log as it happens
        }
        let outURL = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: outURL.deletingLastPathComponent(), withIntermediateDirectories: true)
        try pairs.write(to: outURL)
        print("wrote \(out): use it with `dmd2 distill --regression-pairs \(out)`")
    }
}
