// `--data` in every command that reads images: an EDM zip or folder (or a prepare-data folder's
// split), a downsampled-ImageNet .npz or folder of .npz parts, or a class-folder tree, detected
// by DMD2Data's `DataSource` (`--data-format` overrides the detection).
import ArgumentParser
import DMD2Data
import Foundation

extension DataFormat: ExpressibleByArgument {}

/// The help text of `--data-format`.
let dataFormatHelp = ArgumentHelp(
    "What --data holds: \(DataFormat.allCases.map(\.rawValue).joined(separator: ", ")) (default: detected).")

/// Open `--data` for `split`, read with `channels` (nil: the data's own). A missing path names
/// the prepare-data command; every other problem is DMD2Data's error naming the file and entry.
func openData(_ path: String, format: DataFormat?, split: DataSplit, channels: Int?, why: String? = nil) throws -> any ImageDataset {
    guard FileManager.default.fileExists(atPath: path) else {
        throw CLIError("no dataset at \(path): run `dmd2 prepare-data` first (it writes data/fashion-mnist-64), or pass --data"
            + (why.map { " (\($0))" } ?? ""))
    }
    return try DataSource.open(URL(fileURLWithPath: path), format: format, split: split, channels: channels)
}

/// The training images of `--data` for a trainer: the train split without the validation split.
/// `resumedRun` is the dataset name a resumed run's manifest records: a run started before the
/// validation split existed (its name lacks `ValidationSplit.trainingNameSuffix`) resumes on every
/// training image, as it was trained, and the returned note says so.
/// A run capped with `maxItems` (the first item of each class in turn, DataLoader) reads no
/// validation image when the cap stops short of every class's held-out tail; the note says which.
func openTrainingData(_ path: String, format: DataFormat?, channels: Int?, resumedRun: String?,
                      maxItems: Int? = nil, why: String? = nil) throws -> (dataset: any ImageDataset, note: String?) {
    let dataset = try openData(path, format: format, split: .train, channels: channels, why: why)
    guard let resumedRun, dataset.name.hasSuffix(ValidationSplit.trainingNameSuffix),
          !resumedRun.hasSuffix(ValidationSplit.trainingNameSuffix) else { return (dataset, nil) }
    let all = try openData(path, format: format, split: .trainIncludingValidation, channels: channels, why: why)
    let held = all.count - dataset.count
    if let maxItems, cappedRunSkipsValidation(all, maxItems: maxItems) {
        return (all, "note: this run started before the validation split existed (docs/DATA.md); it goes on reading --max-items \(maxItems) of the \(all.count) training images, the first of each class, which leave out all \(held) validation images (each class's last), so its numbers on --split validation are held out")
    }
    return (all, "note: this run started before the validation split existed (docs/DATA.md): it goes on reading all \(all.count) training images, the \(held) validation images included, so its numbers on --split validation are not held out")
}

/// Whether DataLoader's balanced cap (the first item of each class, then the second of each, …)
/// keeps, of every class, no more than the images before that class's validation tail.
func cappedRunSkipsValidation(_ all: any ImageDataset, maxItems: Int) -> Bool {
    let labels = (0..<all.count).map { all.label($0) }
    let split = ValidationSplit(labels: labels, classCount: all.classCount)
    var counts: [Int: Int] = [:], heldOut: [Int: Int] = [:]
    for l in labels { counts[l, default: 0] += 1 }
    for i in split.validation { heldOut[labels[i], default: 0] += 1 }
    let classes = counts.keys.sorted()
    var kept = [Int: Int](), chosen = 0, round = 0
    while chosen < min(maxItems, all.count) {
        for c in classes where round < counts[c]! && chosen < maxItems { kept[c, default: 0] += 1; chosen += 1 }
        round += 1
    }
    return classes.allSatisfy { kept[$0, default: 0] <= counts[$0]! - heldOut[$0, default: 0] }
}
