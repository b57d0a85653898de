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
