// `dmd2 info`: what this build runs on.
import ArgumentParser
import DMD2Core
import Foundation

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the backend, thread count and libraries in use.")
    @OptionGroup var common: CommonOptions

    func run() throws {
        common.apply()
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
}
