// PNG decode and encode through libpng's *simplified* API (libpng ≥ 1.6, png.h "SIMPLIFIED API").
//
// Why the simplified API: libpng's classic API reports errors by longjmp out of a callback,
// which Swift cannot survive (frames would be skipped without cleanup). The simplified API
// (`png_image_begin_read_from_memory` → `png_image_finish_read`, `png_image_write_to_memory`)
// catches that longjmp inside libpng and returns 0, leaving the reason in `png_image.message`.
//
// Input: any PNG — grey, grey+alpha, RGB, RGBA, palette, 1–16 bits, interlaced. libpng converts to
// the 8-bit layout asked for: palettes are expanded, 16-bit samples are reduced to 8 bits.
// By default libpng assumes a 16-bit file without gAMA/sRGB chunks holds *linear* values and
// gamma-encodes them; we set PNG_IMAGE_FLAG_16BIT_sRGB so that such files are read as sRGB
// like 8-bit ones, i.e. v16 → round(v16·255/65535), which is what image tools write.
// Removing alpha (reading RGBA as RGB) composites onto black.
// Output: 8-bit grey, grey+alpha, RGB or RGBA.
import CPNG
import Foundation

public enum PNG {
    /// Decode PNG bytes into an 8-bit image.
    /// - Parameters:
    ///   - channels: the layout wanted (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA); nil keeps the
    ///     file's own (palette → RGB or RGBA, by whether it has transparency).
    ///   - name: the file (and entry) named in errors.
    public static func decode(_ data: Data, channels: Int? = nil, name: String = "<memory>", entry: String? = nil) throws -> Image8 {
        if let channels {
            precondition((1...4).contains(channels), "PNG.decode: \(channels) channels; expected 1…4")
        }
        guard !data.isEmpty else { throw DataError(file: name, entry: entry, "not a readable PNG (empty file)") }
        // libpng keeps the pointer from begin_read until finish_read: both run inside one scope.
        return try data.withUnsafeBytes { raw in
            try decode(raw, channels: channels, name: name, entry: entry)
        }
    }

    private static func decode(_ raw: UnsafeRawBufferPointer, channels: Int?, name: String, entry: String?) throws -> Image8 {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_memory(&image, raw.baseAddress, raw.count) != 0 else {
            let message = messageOf(image)
            png_image_free(&image)
            throw DataError(file: name, entry: entry, "not a readable PNG (\(message))")
        }
        // The flag must be set after begin_read, which initialises `flags`.
        image.flags |= UInt32(PNG_IMAGE_FLAG_16BIT_sRGB)

        let file = image.format
        let fileChannels = (file & UInt32(PNG_FORMAT_FLAG_COLOR) != 0 ? 3 : 1)
            + (file & UInt32(PNG_FORMAT_FLAG_ALPHA) != 0 ? 1 : 0)
        let C = channels ?? fileChannels
        image.format = format(channels: C)
        let W = Int(image.width), H = Int(image.height)
        // Zero-filled: alpha removal composites "directly onto the buffer", i.e. onto black.
        var pixels = [UInt8](repeating: 0, count: W * H * C)
        let finished = pixels.withUnsafeMutableBytes { out in
            png_image_finish_read(&image, nil, out.baseAddress, Int32(W * C), nil)
        }
        guard finished != 0 else {
            let message = messageOf(image)
            png_image_free(&image)
            throw DataError(file: name, entry: entry, "corrupt or truncated PNG (\(message))")
        }
        return Image8(width: W, height: H, channels: C, pixels: pixels)
    }

    /// Read and decode a PNG file.
    public static func read(_ url: URL, channels: Int? = nil) throws -> Image8 {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw DataError(file: url, "cannot read file (\(error.localizedDescription))")
        }
        return try decode(data, channels: channels, name: url.path)
    }

    /// Encode an 8-bit image as PNG bytes (zlib's default compression, with an sRGB chunk).
    public static func encode(_ image: Image8) throws -> Data {
        var png = png_image()
        png.version = UInt32(PNG_IMAGE_VERSION)
        png.width = UInt32(image.width)
        png.height = UInt32(image.height)
        png.format = format(channels: image.channels)
        let stride = Int32(image.width * image.channels)
        return try image.pixels.withUnsafeBytes { pixels -> Data in
            var size: png_alloc_size_t = 0
            // First call: measure. Second call: write into a buffer of that size.
            guard png_image_write_to_memory(&png, nil, &size, 0, pixels.baseAddress, stride, nil) != 0 else {
                throw DataError(file: "<memory>", "PNG encoding failed (\(messageOf(png)))")
            }
            var out = Data(count: Int(size))
            let ok = out.withUnsafeMutableBytes { buffer in
                png_image_write_to_memory(&png, buffer.baseAddress, &size, 0, pixels.baseAddress, stride, nil)
            }
            guard ok != 0 else { throw DataError(file: "<memory>", "PNG encoding failed (\(messageOf(png)))") }
            return out.prefix(Int(size))
        }
    }

    /// Encode and write a PNG file (atomically: a crash never leaves half a file).
    public static func write(_ image: Image8, to url: URL) throws {
        let data = try encode(image)
        do { try data.write(to: url, options: .atomic) } catch {
            throw DataError(file: url, "cannot write file (\(error.localizedDescription))")
        }
    }

    /// The simplified API's format code for 8-bit data with `channels` channels.
    private static func format(channels: Int) -> UInt32 {
        switch channels {
        case 1: return UInt32(PNG_FORMAT_GRAY)
        case 2: return UInt32(PNG_FORMAT_GA)
        case 3: return UInt32(PNG_FORMAT_RGB)
        default: return UInt32(PNG_FORMAT_RGB) | UInt32(PNG_FORMAT_FLAG_ALPHA)   // PNG_FORMAT_RGBA
        }
    }

    /// The NUL-terminated `message` field libpng fills in on failure.
    private static func messageOf(_ image: png_image) -> String {
        var message = image.message
        let text = withUnsafeBytes(of: &message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return text.isEmpty ? "no message from libpng" : text
    }
}
