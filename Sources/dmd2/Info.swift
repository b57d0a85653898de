// `dmd2 info`: what this build runs on.
import ArgumentParser
import DMD2
import DMD2Core
import DMD2MPI
import EDM
import Foundation

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the backend, thread count and libraries in use.")
    @OptionGroup var common: CommonOptions
    @Flag(name: .long, help: "Print the data-parallel traffic table of docs/MPI.md (bytes all-reduced per iteration per preset, and their time on 10/25/100 Gbit/s links) and whether Open MPI can be loaded.")
    var dataParallel = false

    func run() throws {
        common.apply()
        if dataParallel { return printDataParallel() }
        print("backend: \(Compute.backend.name)")
        print("threads: \(Threads.count) (DMD2_NUM_THREADS=\(ProcessInfo.processInfo.environment["DMD2_NUM_THREADS"] ?? "unset"))")
        // procfs files report size 0, so read to the end rather than by size.
        let data = FileHandle(forReadingAtPath: "/proc/self/maps")?.readDataToEndOfFile() ?? Data()
        let maps = String(decoding: data, as: UTF8.self)
        let libs = Set(maps.split(separator: "\n").compactMap { line -> String? in
            guard let path = line.split(separator: " ").last, path.contains("blis") || path.contains("fftw") else { return nil }
            return String(path)
        })
        for lib in libs.sorted() {
            let real = (try? FileManager.default.destinationOfSymbolicLink(atPath: lib)).map { " → \($0)" } ?? ""
            print("library: \(lib)\(real)")
        }
    }

    /// The table in docs/MPI.md, computed from the presets: a teacher step all-reduces the
    /// network's gradient; a DMD2 iteration the critic's (μ_fake + head) every iteration and G's
    /// on generator iterations (1 in 5 at TTUR ratio 5). Float gradients, 4 bytes each. The ordered
    /// reduction (like a ring all-reduce) moves 2·(N−1)/N of the bytes in and out of every rank,
    /// so the link time per iteration is at most 2·bytes/bandwidth, whatever N.
    func printDataParallel() {
        if MPIProcessGroup.launchedByMPI {
            print("started by an MPI launcher")
        }
        print("| network | parameters | teacher step: MB all-reduced | DMD2 iteration (TTUR 5), mean: MB | GFLOP per image per teacher step | link time per teacher step at 10 / 25 / 100 Gbit/s (s) | per DMD2 iteration (s) |")
        print("|---|---|---|---|---|---|---|")
        for name in ["cpu64Tiny", "cpu64Small", "imagenet64"] {
            let config = UNetConfig.presets[name]!
            let p = Double(config.parameterCount)
            let head = Double(GANHead<Float>.parameterTable(channels: DMD2Networks<Float>.bottleneckChannels(config))
                .map { $0.shape.reduce(1, *) }.reduce(0, +))
            let teacher = 4 * p, distill = 4 * (p / 5 + p + head)
            let times = { (bytes: Double) in [10.0, 25, 100].map { String(format: "%.3g", 2 * bytes * 8 / ($0 * 1e9)) }.joined(separator: " / ") }
            print(String(format: "| %@ | %@ (+ head %@) | %.1f | %.1f | %.1f | %@ | %@ |", name, Int(p).formatted(), Int(head).formatted(),
                         teacher / 1e6, distill / 1e6, 3 * config.forwardCost().total / 1e9, times(teacher), times(distill)))
        }
    }
}
