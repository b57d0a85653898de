// Image8: an 8-bit image, H×W×C interleaved (HWC), and its conversion to model tensors.
//
// Files and datasets speak bytes; models speak Tensor<Float> [C, H, W] in [−1, 1]. The map is
// EDM's:   x = p/127.5 − 1            (p ∈ {0…255} → x ∈ [−1, 1])
// and back: p = clamp(round((x + 1)·127.5), 0, 255)   (NaN → 0),
// which equals EDM's `(x·127.5 + 128).clip(0, 255)` truncated to uint8. A byte survives the round
// trip exactly. Letters: N images, C channels (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA), H rows, W columns.
import DMD2Core

/// An 8-bit image stored row by row, each pixel's channels adjacent (HWC interleaved).
public struct Image8: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).
    public let channels: Int
    /// `height · width · channels` bytes; pixel (y, x), channel c is at `(y·width + x)·channels + c`.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0, "Image8: size \(width)×\(height) must be positive")
        precondition((1...4).contains(channels), "Image8: \(channels) channels; expected 1…4")
        precondition(pixels.count == width * height * channels,
                     "Image8: \(pixels.count) bytes for \(width)×\(height)×\(channels) (expected \(width * height * channels))")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// An image filled with one byte value.
    public init(width: Int, height: Int, channels: Int, filledWith value: UInt8 = 0) {
        self.init(width: width, height: height, channels: channels,
                  pixels: [UInt8](repeating: value, count: width * height * channels))
    }

    /// The byte at row y, column x, channel c.
    @inlinable
    public subscript(y: Int, x: Int, c: Int) -> UInt8 {
        get { pixels[(y * width + x) * channels + c] }
        set { pixels[(y * width + x) * channels + c] = newValue }
    }

    /// The image mirrored left–right (the "x-flip" augmentation).
    public func flippedHorizontally() -> Image8 {
        var out = self
        let C = channels, W = width
        for y in 0..<height {
            let row = y * W * C
            for x in 0..<W {
                let src = row + x * C, dst = row + (W - 1 - x) * C
                for c in 0..<C { out.pixels[dst + c] = pixels[src + c] }
            }
        }
        return out
    }

    /// The same picture with `target` channels: grey is replicated to RGB, RGB becomes grey by
    /// the Rec. 601 luma weights (0.299, 0.587, 0.114), alpha is dropped or added as opaque.
    public func converted(toChannels target: Int) -> Image8 {
        precondition((1...4).contains(target), "Image8.converted: \(target) channels; expected 1…4")
        if target == channels { return self }
        let n = width * height
        var out = [UInt8](repeating: 0, count: n * target)
        let hasAlpha = channels == 2 || channels == 4, isColor = channels >= 3
        for i in 0..<n {
            let p = i * channels
            let r = pixels[p], g = pixels[p + (isColor ? 1 : 0)], b = pixels[p + (isColor ? 2 : 0)]
            let a = hasAlpha ? pixels[p + channels - 1] : 255
            let q = i * target
            switch target {
            case 1, 2:
                out[q] = isColor ? Image8.luma(r, g, b) : r
                if target == 2 { out[q + 1] = a }
            default:
                out[q] = r; out[q + 1] = g; out[q + 2] = b
                if target == 4 { out[q + 3] = a }
            }
        }
        return Image8(width: width, height: height, channels: target, pixels: out)
    }

    /// Rec. 601 luma 0.299·R + 0.587·G + 0.114·B, rounded.
    static func luma(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt8 {
        let y: Double = 0.299 * Double(r) + 0.587 * Double(g) + 0.114 * Double(b)
        return UInt8(y.rounded())
    }

    // MARK: Tensors

    /// The image as a Tensor<Float> [C, H, W] with values p/127.5 − 1 ∈ [−1, 1].
    public func tensor() -> Tensor<Float> {
        Tensor(shape: [channels, height, width]) { out in write(intoCHW: out.baseAddress!) }
    }

    /// Writes the image as C·H·W floats p/127.5 − 1, channel-planar, starting at `out`.
    /// Used to fill one slot of a batch without an intermediate tensor.
    func write(intoCHW out: UnsafeMutablePointer<Float>) {
        let C = channels, plane = width * height
        pixels.withUnsafeBufferPointer { p in
            for i in 0..<plane {
                for c in 0..<C { out[c * plane + i] = Float(p[i * C + c]) / 127.5 - 1 }
            }
        }
    }

    /// The image held by a tensor [C, H, W] in [−1, 1] (rounded, clamped; NaN becomes 0).
    public init(tensor: Tensor<Float>) {
        precondition(tensor.rank == 3, "Image8(tensor:): expected [C, H, W], got shape \(tensor.shape)")
        let C = tensor.shape[0], H = tensor.shape[1], W = tensor.shape[2]
        precondition((1...4).contains(C), "Image8(tensor:): \(C) channels in shape \(tensor.shape); expected 1…4")
        self.init(chw: tensor.scalars[...], channels: C, height: H, width: W)
    }

    /// Build from C·H·W channel-planar floats in [−1, 1].
    init(chw values: ArraySlice<Float>, channels C: Int, height H: Int, width W: Int) {
        let plane = H * W
        var pixels = [UInt8](repeating: 0, count: plane * C)
        let base = values.startIndex
        for c in 0..<C {
            for i in 0..<plane { pixels[i * C + c] = Image8.byte(values[base + c * plane + i]) }
        }
        self.init(width: W, height: H, channels: C, pixels: pixels)
    }

    /// clamp(round((x + 1)·127.5), 0, 255), with NaN → 0.
    @inlinable
    public static func byte(_ x: Float) -> UInt8 {
        let v = ((x + 1) * 127.5).rounded()
        if !(v > 0) { return 0 }             // also catches NaN
        return v >= 255 ? 255 : UInt8(v)
    }

    /// Stack images of one size into a batch Tensor<Float> [N, C, H, W] in [−1, 1].
    public static func batch(_ images: [Image8]) -> Tensor<Float> {
        precondition(!images.isEmpty, "Image8.batch: no images")
        let first = images[0]
        let C = first.channels, H = first.height, W = first.width, size = C * H * W
        for (i, image) in images.enumerated() {
            precondition(image.channels == C && image.height == H && image.width == W,
                         "Image8.batch: image \(i) is \(image.width)×\(image.height)×\(image.channels), image 0 is \(W)×\(H)×\(C)")
        }
        return Tensor(shape: [images.count, C, H, W]) { out in
            for (n, image) in images.enumerated() { image.write(intoCHW: out.baseAddress! + n * size) }
        }
    }

    /// Split a batch [N, C, H, W] in [−1, 1] into N images.
    public static func images(fromBatch batch: Tensor<Float>) -> [Image8] {
        precondition(batch.rank == 4, "Image8.images(fromBatch:): expected [N, C, H, W], got shape \(batch.shape)")
        let N = batch.shape[0], C = batch.shape[1], H = batch.shape[2], W = batch.shape[3], size = C * H * W
        precondition((1...4).contains(C), "Image8.images(fromBatch:): \(C) channels in shape \(batch.shape); expected 1…4")
        return (0..<N).map { n in
            Image8(chw: batch.scalars[(n * size)..<((n + 1) * size)], channels: C, height: H, width: W)
        }
    }
}
