// How much memory a batch needs, at least, so a command can refuse a batch that cannot fit
// before it allocates (issue 16, part 5: `--batch 100000000000` used to trap in the allocator).
//
// The estimate is a lower bound, never an overestimate, so it refuses only batches that certainly
// do not fit: training keeps, per image, at least the two convolution outputs of every residual
// block for the backward pass (c_ℓ·r_ℓ² Float values each, numBlocks blocks per level on the way
// down and numBlocks + 1 on the way up); sampling keeps at least the noisy image, the denoised one
// and the first level's feature map. Attention, normalisation, gradients and optimizer state come
// on top (docs/DATA.md).
import Foundation

extension UNetConfig {
    /// Bytes of Float activations one image needs, at least, in a training step (forward kept
    /// for the backward pass).
    public var trainingBytesPerImageLowerBound: Double {
        var values = 0.0
        for (level, mult) in channelMult.enumerated() {
            let r = Double(resolution >> level), c = Double(modelChannels * mult)
            values += Double(2 * numBlocks + 1) * 2 * c * r * r
        }
        return 4 * values
    }

    /// Bytes one image needs, at least, while sampling (no backward pass).
    public var samplingBytesPerImageLowerBound: Double {
        let r = Double(resolution)
        return 4 * (2 * Double(inChannels) + Double(modelChannels * (channelMult.first ?? 1))) * r * r
    }
}

public enum SystemMemory {
    /// Bytes the system can give this process now: MemAvailable of /proc/meminfo on Linux, the
    /// physical memory elsewhere (or when /proc cannot be read).
    public static func available() -> Double {
        if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) {
            for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
                let parts = line.split(separator: " ")
                if parts.count >= 2, let kB = Double(parts[1]) { return kB * 1024 }
            }
        }
        return Double(ProcessInfo.processInfo.physicalMemory)
    }

    /// Throws a message naming the option when `bytes` exceeds what is available.
    public static func check(_ bytes: Double, for what: String, option: String) throws {
        let free = available()
        guard bytes <= free else {
            throw MemoryEstimateError(description:
                "\(what) needs at least \(format(bytes)) of memory, this machine has \(format(free)) available: lower \(option)")
        }
    }

    public static func format(_ bytes: Double) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var v = bytes, i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(Int(v)) bytes" : String(format: "%.1f %@", v, units[i])
    }
}

public struct MemoryEstimateError: Error, CustomStringConvertible {
    public var description: String
}
