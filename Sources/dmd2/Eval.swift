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
            Labels are balanced over the classes (image i gets class i mod K). Every number is measured at --seeds seeds \
            and reported as mean ± sd, beside a real-vs-real floor: --count real training images (the validation split \
            left out) drawn afresh per seed and measured against the same reference. The reference is the test split of \
            --data (--split validation: the validation split held out of the training files, for choosing checkpoints). \
            Inception features of the reference and of the floor's images are cached next to the data \
            (<split>-reference-<count>-c<channels>.safetensors, floor-train-<count>-seed<s>-c<channels>.safetensors, keyed \
            by the images' content) so they are computed once. Without the FID weights (scripts/fetch-inception.sh) FID, \
            KID and precision/recall are skipped and the rest is still computed. The Inception network runs at a few \
            images/s per core (docs/METRICS.md has the timings).
            """)

    @OptionGroup var common: CommonOptions
    @OptionGroup var sampling: SamplerOptions
    @Option(name: .long, help: "A teacher run folder (its newest checkpoint), a checkpoint folder, or a network .safetensors file.")
    var checkpoint: String = "runs/teacher"
    @Option(name: .long, help: "Evaluate a DMD2 generator instead of a teacher: a distill run folder (its newest checkpoint), a checkpoint folder or a generator .safetensors (the sampler options are ignored).")
    var generator: String?
    @Option(name: .long, parsing: .unconditional, help: "Images to generate and measure per seed (and real training images for the floor).")
    var count: Int = 1000
    @Option(name: .long, parsing: .unconditional, help: "Images per sampler call.")
    var batch: Int = 16
    @Option(name: .long, help: "The first evaluation seed: seed s draws the generated images' noise, the floor's real images and KID's subsets.")
    var seed: UInt64 = 0
    @Option(name: .long, parsing: .unconditional, help: "Evaluation seeds: --seed, --seed + 1, … (every number is reported as mean ± sd over them).")
    var seeds: Int = 3
    @Option(name: .long, help: "The reference: test (for the numbers you report) or validation (held out of the training files, for choosing checkpoints and settings).")
    var split: ReferenceSplit = .test
    @Flag(name: .long, help: "Skip the real-vs-real floor (real training images measured against the reference at the same counts).")
    var noFloor = false
    @Flag(name: .long, help: "Measure only the floor (no sampling): what real images score at these counts, for the channels and classes of --checkpoint or --generator.")
    var floorOnly = false
    @Option(name: .long, help: "Reference images: a prepare-data folder (its test/ or validation split), an EDM dataset folder/zip, a downsampled-ImageNet .npz or folder of parts (its val files), or a class-folder tree.")
    var data: String = "data/fashion-mnist-64"
    @Option(name: .long, help: dataFormatHelp)
    var dataFormat: DataFormat?
    @Option(name: .long, parsing: .unconditional, help: "Reference images: the first N of the reference split (0: all).")
    var referenceCount: Int = 0
    @Option(name: .long, help: "Class-consistency classifier (default: the one bundled with the package).")
    var classifier: String?
    @Flag(name: .long, help: "Skip the Inception metrics even when the weights are present.")
    var noFID = false
    @Option(name: .long, parsing: .unconditional, help: "KID: random subsets and their size (capped at the set sizes).")
    var kidSubsets: Int = 100
    @Option(name: .long, parsing: .unconditional) var kidSubsetSize: Int = 1000
    @Option(name: .long, help: "Output folder: metrics.json, metrics.md, grid.png (+ grid.txt), spectrum.svg, spectrum.png.")
    var out: String = "runs/eval"

    enum ReferenceSplit: String, ExpressibleByArgument, CaseIterable {
        case test, validation
        var dataSplit: DataSplit { self == .test ? .test : .validation }
    }

    func validate() throws {
        for (flag, value, least) in [("--count", count, 2), ("--batch", batch, 1), ("--reference-count", referenceCount, 0),
                                     ("--kid-subsets", kidSubsets, 1), ("--kid-subset-size", kidSubsetSize, 2), ("--seeds", seeds, 1)] where value < least {
            throw ValidationError("\(flag) must be ≥ \(least), got \(value)")
        }
        guard seed <= UInt64.max - UInt64(seeds - 1) else { throw ValidationError("--seed \(seed) + --seeds \(seeds) overflows") }
        if floorOnly && noFloor { throw ValidationError("--floor-only and --no-floor exclude each other") }
    }

    func run() throws {
        common.apply()
        try RunFolder.checkWritable(URL(fileURLWithPath: out), what: "output folder (--out)")
        let started = ProcessInfo.processInfo.systemUptime
        let source = try generator.map { try generatorSource(URL(fileURLWithPath: $0)) } ?? teacherSource()
        let outURL = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: outURL, withIntermediateDirectories: true)

        // The reference set, read with the generator's channel count; caches next to the data.
        let channels = source.channels
        let (cacheFolder, cacheStem) = try cacheLocation()
        let referenceSet = try openData(data, format: dataFormat, split: split.dataSplit, channels: channels)
        let inception = try loadInception()
        let classifierModel = try loadClassifier()
        let nRef = referenceCount == 0 ? referenceSet.count : min(referenceCount, referenceSet.count)
        let cacheURL = cacheFolder.appendingPathComponent("\(cacheStem)-reference-\(nRef)-c\(channels).safetensors")
        print("reference: \(referenceSet.name) (\(split.rawValue)), \(nRef) of \(referenceSet.count) images\(inception == nil ? "" : ", features cached in \(cacheURL.path)")")
        // The floor's real images: the training images (the validation split left out), never the reference's.
        var floorSet = noFloor ? nil : try openData(data, format: dataFormat, split: .train, channels: channels)
        if let training = floorSet, split == .test, ((training as? SubsetDataset)?.base.name ?? training.name) == referenceSet.name {
            // One set of files for training and test (a lone zip or class-folder tree): the floor
            // would draw the reference's own images.
            guard !floorOnly else { throw CLIError("--floor-only: \(data) has no test split apart from its training images; use --split validation") }
            print("note: \(data) has no test split apart from its training images: no floor (use --split validation for one)")
            floorSet = nil
        }
        if let floorSet { print("floor: \(count) real images per seed from \(floorSet.name) (\(floorSet.count) images)") }
        let seedList = (0..<seeds).map { seed + UInt64($0) }

        var bars: [String: ProgressBar] = [:]
        let progress = { (stage: String, done: Int, total: Int) in
            let bar = bars[stage] ?? ProgressBar(total: total, label: stage)
            bars[stage] = bar
            bar.update(done)
            if done == total { bars[stage] = nil }
        }

        // 1. Reference (features computed once, then read from the cache).
        var t = ProcessInfo.processInfo.systemUptime
        let reference = try EvaluationReference.prepare(
            dataset: referenceSet, count: nRef, inception: inception, cacheURL: writable(cacheURL),
            shipped: EvaluationReference.bundledFeatureFiles, progress: progress)
        let referenceSeconds = ProcessInfo.processInfo.systemUptime - t

        var runs: [EvaluationReport] = [], floor: [EvaluationReport] = []
        var firstImages: Tensor<Float>?, firstLabels: [Int]?
        var seconds: [String: Double] = ["reference": referenceSeconds, "sampling": 0, "inception": 0, "floor": 0]
        for s in seedList {
            print("seed \(s):")
            var options = Evaluation.Options()
            options.kidSubsets = kidSubsets
            options.kidSubsetSize = kidSubsetSize
            options.seed = s
            // 2. Sample and measure.
            var report: EvaluationReport?
            if !floorOnly {
                t = ProcessInfo.processInfo.systemUptime
                let (images, labels) = Evaluation.sample(source, count: count, batchSize: batch, seed: s) { progress("sample (seed \(s))", $0, $1) }
                let sampleSeconds = ProcessInfo.processInfo.systemUptime - t
                var description = source.description
                description["seed"] = "\(s)"
                var r = Evaluation.run(images: images, labels: labels, reference: reference, inception: inception,
                                       classifier: classifierModel, options: options, source: description, progress: progress)
                r.seconds["sampling"] = sampleSeconds
                seconds["sampling"]! += sampleSeconds
                seconds["inception"]! += r.seconds["inception"] ?? 0
                runs.append(r)
                report = r
                if firstImages == nil { (firstImages, firstLabels) = (images, labels) }
            }

            // 3. The floor: real training images at the same count, their features cached by content.
            if let floorSet {
                t = ProcessInfo.processInfo.systemUptime
                let indices = try Evaluation.drawReal(from: floorSet, count: count, classCount: source.classCount, seed: s)
                let drawn = SubsetDataset(floorSet, indices: indices, name: "\(floorSet.name), \(count) drawn with seed \(s)")
                let floorCache = cacheFolder.appendingPathComponent("floor-train-\(count)-seed\(s)-c\(channels).safetensors")
                let real = try EvaluationReference.prepare(dataset: drawn, inception: inception, cacheURL: writable(floorCache), progress: progress)
                let items = try (0..<drawn.count).map { try drawn.item($0) }
                let realLabels = source.classCount > 0 ? items.map(\.label) : nil
                var floorReport = Evaluation.run(images: Image8.batch(items.map(\.image)), labels: realLabels, reference: reference,
                                                 inception: nil, classifier: classifierModel, options: options,
                                                 source: ["kind": "real training images", "dataset": floorSet.name, "seed": "\(s)"],
                                                 features: real.features)
                let floorSeconds = ProcessInfo.processInfo.systemUptime - t
                floorReport.seconds["total"] = floorSeconds
                seconds["floor"]! += floorSeconds
                floor.append(floorReport)
                print(String(format: "  FID %@ (floor %@), class consistency %@ (floor %@)",
                             report?.fid.map { String(format: "%.2f", $0) } ?? "–", floorReport.fid.map { String(format: "%.2f", $0) } ?? "–",
                             report?.classConsistency.map { String(format: "%.3f", $0.accuracy) } ?? "–",
                             floorReport.classConsistency.map { String(format: "%.3f", $0.accuracy) } ?? "–"))
            } else if let report {
                print(String(format: "  FID %@, class consistency %@", report.fid.map { String(format: "%.2f", $0) } ?? "–",
                             report.classConsistency.map { String(format: "%.3f", $0.accuracy) } ?? "–"))
            }
        }
        seconds["total"] = ProcessInfo.processInfo.systemUptime - started
        if floorOnly {
            // The floor alone: its reports stand in the runs' place (the source says what they are).
            let summary = EvaluationSummary(seeds: seedList, split: split.rawValue, runs: floor, floor: nil,
                                            source: ["kind": "real training images (floor only)", "dataset": floorSet!.name], seconds: seconds)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(summary).write(to: outURL.appendingPathComponent("metrics.json"), options: .atomic)
            let markdown = summary.markdown()
            try markdown.write(to: outURL.appendingPathComponent("metrics.md"), atomically: true, encoding: .utf8)
            print("\nfloor only (the \"generated\" column holds the real training images):\n" + markdown, terminator: "")
            print(String(format: "time: reference %.0f s, floor %.0f s, total %.0f s", referenceSeconds, seconds["floor"]!, seconds["total"]!))
            return print("wrote \(out)/metrics.json, metrics.md")
        }
        let summary = EvaluationSummary(seeds: seedList, split: split.rawValue, runs: runs, floor: floorSet == nil ? nil : floor,
                                        source: source.description.filter { $0.key != "seed" }, seconds: seconds)

        // 4. Files.
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(summary).write(to: outURL.appendingPathComponent("metrics.json"), options: .atomic)
        let markdown = summary.markdown()
        try markdown.write(to: outURL.appendingPathComponent("metrics.md"), atomically: true, encoding: .utf8)
        let images = firstImages!
        let grid = Self.gridLayout(images, labels: firstLabels, classCount: source.classCount)
        try writeGrid(grid.images, columns: grid.columns, to: outURL.appendingPathComponent("grid.png"),
                      labels: grid.labels, classNames: referenceSet.classNames)
        let plot = spectrumPlot(runs[0])
        try plot.writeSVG(to: outURL.appendingPathComponent("spectrum.svg"))
        try plot.writePNG(to: outURL.appendingPathComponent("spectrum.png"))

        print("")
        print("seed \(seedList[0]):")
        print(runs[0].table(), terminator: "")
        print("")
        print(markdown, terminator: "")
        print(String(format: "time: reference %.0f s, sampling %.0f s, Inception %.0f s, floor %.0f s, total %.0f s",
                     referenceSeconds, seconds["sampling"]!, seconds["inception"]!, seconds["floor"]!, seconds["total"]!))
        print("wrote \(out)/metrics.json, metrics.md, grid.png, spectrum.svg, spectrum.png (grid and spectrum: seed \(seedList[0]))")
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

    /// Where the feature caches go and the reference cache's name stem: next to the test split
    /// (a prepare-data folder's test/ → the folder itself, stem "test"); the validation split's
    /// stem is "validation" (or "<name>-validation" for another dataset).
    func cacheLocation() throws -> (folder: URL, stem: String) {
        let testURL = try testSplit(of: data)
        let folder = testURL.deletingLastPathComponent(), name = testURL.deletingPathExtension().lastPathComponent
        switch split {
        case .test: return (folder, name)
        case .validation: return (folder, name == "test" ? "validation" : "\(name)-validation")
        }
    }

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
