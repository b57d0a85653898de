// `dmd2 eval`: sample N images from a teacher checkpoint (any sampler, any steps), measure them
// against the real test split with DMD2Metrics' `Evaluation` (FID, KID, precision/recall, class
// consistency, diagnostics), print a table and write metrics.json, grid.png and the spectrum plot.
//
// The images come from an `ImageSource` (a closure labels, rng → images); `teacherSource` builds
// the EDM one. Another generator (a one- or few-step DMD2 student) plugs in by building its own
// ImageSource; everything after sampling is shared.
import ArgumentParser
import DMD2
import DMD2Core
import DMD2Data
import DMD2Metrics
import DMD2Plot
import DMD2Train
import EDM
import EDMTraining
import Foundation

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Sample from a teacher and measure FID, KID, precision/recall, class consistency and image diagnostics.",
        discussion: """
            Labels are balanced over the classes (image i gets class i mod K). The reference is the test split of --data; \
            its Inception features are cached next to it (<split>-reference-<count>-c<channels>.safetensors) so they are \
            computed once. Without the FID weights (scripts/fetch-inception.sh) FID, KID and precision/recall are skipped \
            and the rest is still computed. The Inception network runs at a few images/s per core: keep --count and \
            --reference-count small on a CPU, and use --threads 1 on a busy machine.
            """)

    @OptionGroup var common: CommonOptions
    @OptionGroup var sampling: SamplerOptions
    @Option(name: .long, help: "A teacher run folder (its newest checkpoint), a checkpoint folder, or a network .safetensors file.")
    var checkpoint: String = "runs/teacher"
    @Option(name: .long, help: "Evaluate a DMD2 generator instead of a teacher: a distill run folder (its newest checkpoint), a checkpoint folder or a generator .safetensors (the sampler options are ignored).")
    var generator: String?
    @Option(name: .long, parsing: .unconditional, help: "Images to generate and measure.")
    var count: Int = 100
    @Option(name: .long, parsing: .unconditional, help: "Images per sampler call.")
    var batch: Int = 16
    @Option(name: .long, help: "Seed of the noise.")
    var seed: UInt64 = 0
    @Option(name: .long, help: "Reference images: a prepare-data folder (its test/), an EDM dataset folder/zip, a downsampled-ImageNet .npz or folder of parts (its val files), or a class-folder tree.")
    var data: String = "data/fashion-mnist-64"
    @Option(name: .long, help: dataFormatHelp)
    var dataFormat: DataFormat?
    @Option(name: .long, parsing: .unconditional, help: "Reference images: the first N of the reference set (0: all).")
    var referenceCount: Int = 1000
    @Option(name: .long, parsing: .unconditional, help: "Skip the reference set's first K images (e.g. 1000: a validation split after the 1000 test images the tables use, for choosing checkpoints).")
    var referenceOffset: Int = 0
    @Option(name: .long, help: "Class-consistency classifier (default: the one bundled with the package).")
    var classifier: String?
    @Flag(name: .long, help: "Skip the Inception metrics even when the weights are present.")
    var noFID = false
    @Option(name: .long, parsing: .unconditional, help: "KID: random subsets and their size (capped at the set sizes).")
    var kidSubsets: Int = 100
    @Option(name: .long, parsing: .unconditional) var kidSubsetSize: Int = 1000
    @Option(name: .long, help: "Output folder: metrics.json, grid.png (+ grid.txt), spectrum.svg, spectrum.png.")
    var out: String = "runs/eval"

    func validate() throws {
        for (flag, value, least) in [("--count", count, 2), ("--batch", batch, 1), ("--reference-count", referenceCount, 0), ("--reference-offset", referenceOffset, 0),
                                     ("--kid-subsets", kidSubsets, 1), ("--kid-subset-size", kidSubsetSize, 2)] where value < least {
            throw ValidationError("\(flag) must be ≥ \(least), got \(value)")
        }
    }

    func run() throws {
        common.apply()
        try RunFolder.checkWritable(URL(fileURLWithPath: out), what: "output folder (--out)")
        let started = ProcessInfo.processInfo.systemUptime
        let source = try generator.map { try generatorSource(URL(fileURLWithPath: $0)) } ?? teacherSource()
        let outURL = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: outURL, withIntermediateDirectories: true)

        // The reference set, read with the generator's channel count.
        let channels = source.channels
        let referenceURL = try referenceSplit()
        let fullReference = try openData(data, format: dataFormat, split: .test, channels: channels)
        let referenceSet: any ImageDataset = referenceOffset == 0 ? fullReference
            : try ImageSubset(fullReference, start: referenceOffset)
        let inception = try loadInception()
        let classifierModel = try loadClassifier()
        let nRef = referenceCount == 0 ? referenceSet.count : min(referenceCount, referenceSet.count)
        let cacheURL = referenceURL.deletingLastPathComponent()
            .appendingPathComponent("\(referenceURL.deletingPathExtension().lastPathComponent)-reference-\(referenceOffset == 0 ? "" : "from\(referenceOffset)-")\(nRef)-c\(channels).safetensors")
        print("reference: \(referenceURL.path), \(nRef) of \(referenceSet.count) images\(referenceOffset == 0 ? "" : " after the first \(referenceOffset)")\(inception == nil ? "" : ", features cached in \(cacheURL.path)")")

        // 1. Sample.
        var bars: [String: ProgressBar] = [:]
        let progress = { (stage: String, done: Int, total: Int) in
            let bar = bars[stage] ?? ProgressBar(total: total, label: stage)
            bars[stage] = bar
            bar.update(done)
        }
        var t = ProcessInfo.processInfo.systemUptime
        let (images, labels) = Evaluation.sample(source, count: count, batchSize: batch, seed: seed) { progress("sample", $0, $1) }
        let sampleSeconds = ProcessInfo.processInfo.systemUptime - t

        // 2. Reference (features computed once, then read from the cache).
        t = ProcessInfo.processInfo.systemUptime
        let reference = try EvaluationReference.prepare(
            dataset: referenceSet, count: nRef, inception: inception, cacheURL: writable(cacheURL), progress: progress)
        let referenceSeconds = ProcessInfo.processInfo.systemUptime - t

        // 3. Metrics.
        var options = Evaluation.Options()
        options.kidSubsets = kidSubsets
        options.kidSubsetSize = kidSubsetSize
        options.seed = seed
        var report = Evaluation.run(images: images, labels: labels, reference: reference, inception: inception,
                                    classifier: classifierModel, options: options, source: source.description, progress: progress)
        report.seconds["sampling"] = sampleSeconds
        report.seconds["reference"] = referenceSeconds
        report.seconds["total"] = ProcessInfo.processInfo.systemUptime - started

        // 4. Files.
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(report).write(to: outURL.appendingPathComponent("metrics.json"), options: .atomic)
        let grid = Self.gridLayout(images, labels: labels, classCount: source.classCount)
        try writeGrid(grid.images, columns: grid.columns, to: outURL.appendingPathComponent("grid.png"),
                      labels: grid.labels, classNames: referenceSet.classNames)
        let plot = spectrumPlot(report)
        try plot.writeSVG(to: outURL.appendingPathComponent("spectrum.svg"))
        try plot.writePNG(to: outURL.appendingPathComponent("spectrum.png"))

        print("")
        print(report.table(), terminator: "")
        print(String(format: "time: sampling %.0f s, reference %.0f s, Inception %.0f s, total %.0f s",
                     sampleSeconds, referenceSeconds, report.seconds["inception"] ?? 0, report.seconds["total"] ?? 0))
        print("wrote \(out)/metrics.json, grid.png, spectrum.svg, spectrum.png")
    }

    /// The images of grid.png: one row per class, up to 10 images each, like `dmd2 sample` (the
    /// guide's one convention); an unconditional source's first images in a square-ish block.
    static func gridLayout(_ images: Tensor<Float>, labels: [Int]?, classCount: Int) -> (images: Tensor<Float>, labels: [Int]?, columns: Int) {
        let count = images.shape[0], per = images.count / Swift.max(count, 1)
        guard let labels, classCount > 0 else {
            let columns = Int(Double(count).squareRoot().rounded(.up)), shown = Swift.min(count, columns * 10)
            return (Tensor(shape: [shown] + images.shape.dropFirst(), scalars: Array(images.scalars.prefix(shown * per))), nil, columns)
        }
        // Balanced labels (image i has class i mod K) give every class ⌊N/K⌋ or more images.
        let perRow = Swift.max(1, Swift.min(10, count / classCount))
        let order = (0..<classCount).flatMap { c in labels.indices.filter { labels[$0] == c }.prefix(perRow) }
        var scalars: [Float] = []
        scalars.reserveCapacity(order.count * per)
        for i in order { scalars += images.scalars[(i * per)..<((i + 1) * per)] }
        return (Tensor(shape: [order.count] + images.shape.dropFirst(), scalars: scalars), order.map { labels[$0] }, perRow)
    }

    // MARK: The image source

    /// The EDM teacher as an ImageSource: class labels → one-hot, the chosen sampler from σ_max.
    func teacherSource() throws -> ImageSource {
        let file = try TeacherCheckpoint.networkFile(at: URL(fileURLWithPath: checkpoint), ema: sampling.weights == .ema)
        let loaded: LoadedCheckpoint<Float>
        do { loaded = try EDMCheckpoint.load(from: file) } catch {
            throw CLIError("cannot load the network from", path: file.path, error)
        }
        let net = loaded.net, config = net.config
        if sampling.guidance != nil && config.labelDim == 0 { throw CLIError("--guidance needs a class-conditional network") }
        let edm = sampling.edmSampler
        let denoiser = Denoiser(net: net)
        print("teacher: \(file.path) (step \(loaded.step.map(String.init) ?? "?")), \(config.resolution)×\(config.resolution)×\(config.inChannels), \(config.labelDim) classes")
        print("sampler: \(sampling.sampler.rawValue), \(sampling.steps) steps, NFE \(edm.nfe) per image\(sampling.guidance.map { ", guidance \($0)" } ?? ""); \(count) images in batches of \(batch), threads \(Threads.count)")
        var description = [
            "kind": "edm-teacher", "checkpoint": file.path, "step": loaded.step.map(String.init) ?? "?",
            "weights": sampling.weights.rawValue, "sampler": sampling.sampler.rawValue, "steps": "\(sampling.steps)", "nfe": "\(edm.nfe)",
            "seed": "\(seed)",
        ]
        if let guidance = sampling.guidance { description["guidance"] = "\(guidance)" }
        let shape = [config.inChannels, config.resolution, config.resolution]
        return ImageSource(description: description, classCount: config.labelDim, channels: config.inChannels,
                           resolution: config.resolution) { labels, rng in
            var onehot: Tensor<Float>?
            if config.labelDim > 0 {
                var y = Tensor<Float>.zeros([labels.count, config.labelDim])
                for (n, c) in labels.enumerated() { y[n, c] = 1 }
                onehot = y
            }
            let result = edm.sample(shape: [labels.count] + shape, rng: &rng,
                                    denoise: denoiser.samplingFunction(classLabels: onehot, guidance: sampling.guidance))
            return result.x.converted(to: Float.self)
        }
    }

    /// A DMD2 generator as an ImageSource: G's steps from fresh noise per image (one for a
    /// one-step generator), `--raw` for the raw weights where the run kept an EMA.
    func generatorSource(_ url: URL) throws -> ImageSource {
        let g = try DMD2Generator(contentsOf: url, ema: sampling.weights == .raw ? false : nil)
        let config = g.config
        print("generator: \(url.path) (step \(g.step.map(String.init) ?? "?")), \(config.resolution)×\(config.resolution)×\(config.inChannels), \(config.labelDim) classes")
        print("sampler: DMD2 generator, NFE \(g.nfe) per image; \(count) images in batches of \(batch), threads \(Threads.count)")
        let description = ["kind": "dmd2-generator", "checkpoint": url.path, "step": g.step.map(String.init) ?? "?", "nfe": "\(g.nfe)", "seed": "\(seed)"]
        return ImageSource(description: description, classCount: config.labelDim, channels: config.inChannels,
                           resolution: config.resolution) { labels, rng in
            g.generate(labels: labels, rng: &rng)
        }
    }

    // MARK: Inputs

    /// The reference split: <data>/test for a prepare-data folder, else <data> itself.
    func referenceSplit() throws -> URL { try testSplit(of: data) }

    func loadInception() throws -> InceptionV3FID? {
        if noFID { return nil }
        let url = InceptionV3FID.defaultWeightsURL
        guard FileManager.default.fileExists(atPath: url.path) else {
            print("FID weights not found at \(url.path): FID, KID and precision/recall are skipped (fetch them with scripts/fetch-inception.sh)")
            return nil
        }
        return try InceptionV3FID(weightsURL: url)
    }

    func loadClassifier() throws -> ImageClassifier<Float>? {
        guard let url = classifier.map({ URL(fileURLWithPath: $0) }) ?? ClassConsistency.bundledClassifierURL else {
            print("no class-consistency classifier bundled: class consistency is skipped (train one with `dmd2 train-classifier`)")
            return nil
        }
        let (model, metadata) = try ImageClassifier<Float>.load(from: url)
        print("classifier: \(url.lastPathComponent), test accuracy \(metadata["test_accuracy"] ?? "?")")
        return model
    }

    /// `url` if its folder can be written (the cache is optional), else nil with a note.
    func writable(_ url: URL) -> URL? {
        if FileManager.default.isWritableFile(atPath: url.deletingLastPathComponent().path) { return url }
        print("note: cannot write \(url.deletingLastPathComponent().path); reference features will not be cached")
        return nil
    }

    /// Radially averaged power spectra of the samples and the reference, log y.
    func spectrumPlot(_ report: EvaluationReport) -> LinePlot {
        let g = report.diagnostics.spectrum, r = report.referenceDiagnostics.spectrum
        // Bins 1 … S/2 (the full rings; DC is removed and the corners are partial rings).
        let bins = Array(1...(g.size / 2))
        return LinePlot(
            title: "Radially averaged power spectrum", xLabel: "spatial frequency (cycles per image)", yLabel: "power",
            logY: true,
            series: [LineSeries("generated (\(report.sampleCount))", x: bins.map(Double.init), y: bins.map { g.power[$0] }),
                     LineSeries("real (\(report.referenceCount))", x: bins.map(Double.init), y: bins.map { r.power[$0] })],
            xRange: 0...Double(g.size / 2))
    }
}

/// The images a command measures against: `data` itself when it is a dataset (zip, or a folder
/// with dataset.json), else its test/ split (a `dmd2 prepare-data` folder).
func testSplit(of data: String) throws -> URL {
    let url = URL(fileURLWithPath: data), fm = FileManager.default
    guard fm.fileExists(atPath: url.path) else {
        throw CLIError("no dataset at \(data): run `dmd2 prepare-data` first (it writes data/fashion-mnist-64), or pass --data")
    }
    if !fm.fileExists(atPath: url.appendingPathComponent("dataset.json").path),
       fm.fileExists(atPath: url.appendingPathComponent("test").path) {
        return url.appendingPathComponent("test")
    }
    return url
}
