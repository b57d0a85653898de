// Sample grids: a batch [N, C, H, W] in [−1, 1] tiled into one PNG, rows × columns.
//
// Image n goes to row n / columns, column n % columns; `padding` pixels of `background` surround
// every tile (so a grid is columns·W + (columns+1)·padding wide). The last row may be partly
// empty. Labels are not drawn (there is no font here): an optional sidecar text file next to
// the PNG lists each row's class indices (and names), so a class-conditional grid can be read.
import DMD2Core
import Foundation

public enum SampleGrid {
    /// The grid as an image. C must be 1 (grey) or 3 (RGB); 2 and 4 keep their alpha channel.
    public static func image(_ images: Tensor<Float>, columns: Int, padding: Int = 2, background: UInt8 = 255) -> Image8 {
        precondition(images.rank == 4 && images.shape[0] > 0,
                     "SampleGrid: expected a non-empty batch [N, C, H, W], got shape \(images.shape)")
        precondition(columns > 0 && padding >= 0, "SampleGrid: columns \(columns) must be > 0, padding \(padding) ≥ 0")
        let tiles = Image8.images(fromBatch: images)
        let N = tiles.count, C = images.shape[1], H = images.shape[2], W = images.shape[3]
        let cols = min(columns, N), rows = (N + cols - 1) / cols
        var grid = Image8(width: cols * W + (cols + 1) * padding, height: rows * H + (rows + 1) * padding,
                          channels: C, filledWith: background)
        for (n, tile) in tiles.enumerated() {
            let top = padding + (n / cols) * (H + padding), left = padding + (n % cols) * (W + padding)
            for y in 0..<H {
                let src = y * W * C, dst = ((top + y) * grid.width + left) * C
                grid.pixels.replaceSubrange(dst..<(dst + W * C), with: tile.pixels[src..<(src + W * C)])
            }
        }
        return grid
    }

    /// The sidecar text: one line per grid row, `row r: l0 l1 …` (with names when given).
    public static func labelText(_ labels: [Int], columns: Int, classNames: [String]? = nil) -> String {
        precondition(columns > 0, "SampleGrid.labelText: columns \(columns) must be > 0")
        var lines: [String] = []
        for (r, start) in stride(from: 0, to: labels.count, by: columns).enumerated() {
            let row = labels[start..<min(start + columns, labels.count)].map { label -> String in
                if let classNames, classNames.indices.contains(label) { return "\(label) (\(classNames[label]))" }
                return "\(label)"
            }
            lines.append("row \(r): " + row.joined(separator: " "))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Write a batch [N, C, H, W] in [−1, 1] as a PNG grid with `columns` tiles per row.
///
/// With `labels` (one class index per image) a sidecar `<name>.txt` lists each row's labels.
public func writeGrid(_ images: Tensor<Float>, columns: Int, to url: URL, padding: Int = 2, background: UInt8 = 255,
                      labels: [Int]? = nil, classNames: [String]? = nil) throws {
    if let labels {
        precondition(images.rank == 4 && labels.count == images.shape[0],
                     "writeGrid: \(labels.count) labels for a batch of shape \(images.shape)")
    }
    try PNG.write(SampleGrid.image(images, columns: columns, padding: padding, background: background), to: url)
    if let labels {
        let sidecar = url.deletingPathExtension().appendingPathExtension("txt")
        do {
            try SampleGrid.labelText(labels, columns: min(columns, labels.count), classNames: classNames)
                .write(to: sidecar, atomically: true, encoding: .utf8)
        } catch {
            throw DataError(file: sidecar, "cannot write file (\(error.localizedDescription))")
        }
    }
}
