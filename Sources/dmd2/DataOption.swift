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
func openTrainingData(_ path: String, format: DataFormat?, channels: Int?, resumedRun: String?,
                      why: String? = nil) throws -> (dataset: any ImageDataset, note: String?) {
    let dataset = try openData(path, format: format, split: .train, channels: channels, why: why)
    guard let resumedRun, dataset.name.hasSuffix(ValidationSplit.trainingNameSuffix),
          !resumedRun.hasSuffix(ValidationSplit.trainingNameSuffix) else { return (dataset, nil) }
    let all = try openData(path, format: format, split: .trainIncludingValidation, channels: channels, why: why)
    return (all, "note: this run started before the validation split existed (docs/DATA.md): it goes on reading all \(all.count) training images, the \(all.count - dataset.count) validation images included, so its numbers on --split validation are not held out")
}
