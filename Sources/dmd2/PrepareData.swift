// `dmd2 prepare-data`: the embedded default dataset, Fashion-MNIST at 64×64 (docs/DATA.md).
import ArgumentParser
import DMD2Data
import Foundation

struct PrepareData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare-data",
        abstract: "Convert Debian's Fashion-MNIST (apt-get install dataset-fashion-mnist) to 64×64 EDM dataset folders train/ and test/.")

    @OptionGroup var common: CommonOptions
    @Option(name: .long, help: "Output folder.")
    var out: String = "data/fashion-mnist-64"
    @Option(name: .long, help: "3: grey replicated to RGB (the default, see docs/DATA.md); 1: grey PNGs. A 1-channel teacher reads either.")
    var channels: Int = 3
    @Option(name: .long, help: "Keep only the first N images of each class in each split (small runs).")
    var limitPerClass: Int?
    @Option(name: .long, help: "Folder with Fashion-MNIST's four .gz idx files.")
    var source: String = FashionMNIST.defaultSourceDirectory.path
    @Flag(name: .long, help: "Replace output prepared with other settings.")
    var overwrite = false

    func validate() throws {
        guard channels == 1 || channels == 3 else { throw ValidationError("--channels must be 1 or 3, got \(channels)") }
        if let limitPerClass, limitPerClass <= 0 { throw ValidationError("--limit-per-class must be positive, got \(limitPerClass)") }
    }

    func run() throws {
        common.apply()
        let sourceURL = URL(fileURLWithPath: source)
        guard FileManager.default.fileExists(atPath: sourceURL.appendingPathComponent("train-images-idx3-ubyte.gz").path) else {
            throw CLIError("Fashion-MNIST not found in \(source): install it with `apt-get install dataset-fashion-mnist` or pass --source")
        }
        try prepareFashionMNIST(outputDirectory: URL(fileURLWithPath: out), channels: channels, limitPerClass: limitPerClass,
                                sourceDirectory: sourceURL, overwrite: overwrite)
        print("done: train with `dmd2 train-teacher --data \(out)`")
    }
}

/// A message for the user, printed by ArgumentParser as "Error: <message>".
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }

    /// "<what> <path>: <error>", naming the path once: errors that already start with it
    /// (SafeTensorsError, DataError) are not prefixed again ("…from X: X: …" was the old message).
    init(_ what: String, path: String, _ error: Error) {
        let text = "\(error)"
        self.description = text.hasPrefix(path + ":") ? "\(what) \(text)" : "\(what) \(path): \(text)"
    }
}
