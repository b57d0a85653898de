// `dmd2 train-classifier`: train the class-consistency classifier (DMD2Metrics' ImageClassifier)
// on a labelled dataset's training split with softmax cross-entropy and AdamW, measure its
// accuracy on the test split, and write a safetensors checkpoint with that in its metadata.
import ArgumentParser
import DMD2Core
import DMD2Data
import DMD2Metrics
import DMD2Ops
import DMD2Train
import Foundation

struct TrainClassifier: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-classifier",
        abstract: "Train the small CNN that measures class consistency (accuracy on generated images).",
        discussion: "Reads a folder prepared by `dmd2 prepare-data` (train/ for training, test/ for the reported accuracy) or an EDM dataset with --test. The checkpoint's metadata holds the test accuracy and the settings. The package ships one trained on the default data: Sources/DMD2Metrics/Resources/fashion64-classifier.safetensors.")

    @OptionGroup var common: CommonOptions
    @Option(name: .long, help: "A prepare-data folder (train/ and test/ inside) or an EDM training set.")
    var data: String = "data/fashion-mnist-64"
    @Option(name: .long, help: "Test set (default: <data>/test).")
    var test: String?
    @Option(name: .long, help: "Passes over the training set.")
    var epochs: Int = 2
    @Option(name: .long, help: "Images per step.")
    var batch: Int = 64
    @Option(name: .long, help: "AdamW learning rate (after warm-up).")
    var lr: Double = 2e-3
    @Option(name: .long, help: "Steps of linear warm-up.")
    var warmUp: Int = 100
    @Option(name: .long, help: "AdamW's decoupled weight decay.")
    var weightDecay: Double = 1e-4
    @Option(name: .long, help: "Channels of the stages, comma separated.")
    var widths: String = "16,32,64"
    @Option(name: .long, help: "Train on at most this many images (balanced over classes).")
    var maxItems: Int?
    @Option(name: .long, help: "Seed of the weights and the data order.")
    var seed: UInt64 = 0
    @Option(name: .long, help: "Output checkpoint (.safetensors).")
    var out: String = "runs/classifier/fashion64-classifier.safetensors"

    func validate() throws {
        guard epochs >= 1, batch >= 1, lr > 0, warmUp >= 0 else {
            throw ValidationError("--epochs and --batch must be ≥ 1, --lr > 0, --warm-up ≥ 0")
        }
        guard parsedWidths != nil else { throw ValidationError("--widths '\(widths)': expected positive integers such as 16,32,64") }
    }

    var parsedWidths: [Int]? {
        let w = widths.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !w.isEmpty, w.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        return w.map { $0! }
    }

    func run() throws {
        common.apply()
        let (trainURL, testURL) = try splits()
        let train = try EDMDataset(url: trainURL, channels: 1), testSet = try EDMDataset(url: testURL, channels: 1)
        guard train.classCount >= 2, testSet.classCount <= train.classCount, train.resolution == testSet.resolution else {
            throw CLIError("\(trainURL.path) (\(train.classCount) classes, \(train.resolution)px) and \(testURL.path) (\(testSet.classCount) classes, \(testSet.resolution)px) do not make a labelled train/test pair")
        }
        let config = ClassifierConfig(resolution: train.resolution, classCount: train.classCount, widths: parsedWidths!)
        try config.validate()
        var rng = RandomGenerator(seed: seed)
        let model = try ImageClassifier<Float>(config: config, rng: &rng)
        let optimizer = AdamW(parameters: model.parameters,
                              config: AdamWConfig(learningRate: lr, weightDecay: weightDecay, warmUpSteps: warmUp))
        var loader = DataLoader(dataset: train, batchSize: batch, seed: seed &+ 1, maxItems: maxItems)
        let steps = epochs * loader.batchesPerEpoch
        print("classifier: widths \(config.widths), \(model.scalarCount) parameters, input \(config.resolution)→\(config.resolution / 2) grey, \(config.classCount) classes")
        print("data: \(train.count) train (\(loader.count) used), \(testSet.count) test; \(epochs) epochs × \(loader.batchesPerEpoch) steps of \(batch), threads \(Threads.count)")

        let started = ProcessInfo.processInfo.systemUptime
        let bar = ProgressBar(total: steps, label: "train")
        var step = 0
        var history: [(epoch: Int, trainLoss: Double, trainAccuracy: Double, testAccuracy: Double)] = []
        for epoch in 1...epochs {
            var lossSum = 0.0, right = 0, seen = 0
            var recent: [Double] = []
            while let b = try loader.nextInEpoch() {
                let logits = model.logits(Variable(model.input(b.images)))
                let loss = softmaxCrossEntropy(logits: logits, labels: b.labels)
                guard loss.value.scalar.isFinite else { throw CLIError("non-finite loss at step \(step + 1)") }
                optimizer.zeroGrad()
                loss.backward()
                _ = optimizer.step()
                step += 1
                let K = config.classCount
                for n in b.labels.indices {
                    let row = logits.value.scalars[(n * K)..<((n + 1) * K)]
                    if row.indices.max(by: { row[$0] < row[$1] })! - n * K == b.labels[n] { right += 1 }
                }
                seen += b.labels.count
                lossSum += Double(loss.value.scalar) * Double(b.labels.count)
                recent = Array((recent + [Double(loss.value.scalar)]).suffix(50))
                let rate = Double(step) / (ProcessInfo.processInfo.systemUptime - started)
                bar.update(step, status: String(format: "epoch %d · loss %.4f (avg50 %.4f) · train acc %.3f · %.0f img/s",
                                                epoch, loss.value.scalar, recent.reduce(0, +) / Double(recent.count),
                                                Double(right) / Double(seen), rate * Double(batch)))
            }
            let testBar = ProgressBar(total: testSet.count, label: "test")
            let result = try ClassConsistency(classifier: model, dataset: testSet) { done, _ in testBar.update(done) }
            history.append((epoch, lossSum / Double(seen), Double(right) / Double(seen), result.accuracy))
            bar.message(String(format: "epoch %d: train loss %.4f, train accuracy %.4f, test accuracy %.4f",
                               epoch, lossSum / Double(seen), Double(right) / Double(seen), result.accuracy))
            if epoch == epochs {
                let perClass = result.perClass.enumerated().map { k, a in
                    "\(train.classNames?[k] ?? "\(k)") \(a.map { String(format: "%.3f", $0) } ?? "–")"
                }
                print("test accuracy per class: " + perClass.joined(separator: ", "))
            }
        }
        let seconds = ProcessInfo.processInfo.systemUptime - started
        let last = history.last!
        var metadata: [String: String] = [
            "test_accuracy": String(format: "%.4f", last.testAccuracy),
            "train_accuracy": String(format: "%.4f", last.trainAccuracy),
            "train_loss": String(format: "%.5f", last.trainLoss),
            "epochs": "\(epochs)", "steps": "\(step)", "batch": "\(batch)", "learning_rate": "\(lr)",
            "warm_up": "\(warmUp)", "weight_decay": "\(weightDecay)", "seed": "\(seed)",
            "train_items": "\(loader.count)", "test_items": "\(testSet.count)",
            "train_data": trainURL.standardizedFileURL.path, "test_data": testURL.standardizedFileURL.path,
            "train_seconds": String(format: "%.0f", seconds), "threads": "\(Threads.count)",
        ]
        if let names = train.classNames { metadata["class_names"] = String(decoding: try JSONEncoder().encode(names), as: UTF8.self) }
        let url = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try model.file(metadata: metadata).write(to: url)
        print(String(format: "wrote %@ (%d steps in %.0f s; test accuracy %.4f)", out, step, seconds, last.testAccuracy))
    }

    /// The training and test folders.
    func splits() throws -> (URL, URL) {
        let fm = FileManager.default
        var url = URL(fileURLWithPath: data)
        guard fm.fileExists(atPath: url.path) else {
            throw CLIError("no dataset at \(data): run `dmd2 prepare-data` first, or pass --data")
        }
        var testURL = test.map { URL(fileURLWithPath: $0) }
        if !fm.fileExists(atPath: url.appendingPathComponent("dataset.json").path),
           fm.fileExists(atPath: url.appendingPathComponent("train").path) {
            if testURL == nil { testURL = url.appendingPathComponent("test") }
            url = url.appendingPathComponent("train")
        }
        guard let testURL, fm.fileExists(atPath: testURL.path) else {
            throw CLIError("no test split: pass --test, or --data a prepare-data folder with test/ inside")
        }
        return (url, testURL)
    }
}
