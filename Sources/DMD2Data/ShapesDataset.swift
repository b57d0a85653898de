// A procedural dataset of coloured shapes, one shape and colour per class, made in memory.
//
// For unit tests and smoke runs that must not touch disk. Item i has class i mod classCount
// (balanced); its centre, size and brightness are drawn from a RandomGenerator seeded by
// (seed, i), so `item(i)` is the same every time, in any order. Class c draws shape c:
//   0 disk  1 square  2 triangle  3 ring  4 cross  5 diamond  6 horizontal stripes  7 X
// in colour c of a fixed palette, on a dark background. Grey (channels 1) uses the Rec. 601 luma.
import DMD2Core

public final class ShapesDataset: ImageDataset {
    public static let shapeNames = ["disk", "square", "triangle", "ring", "cross", "diamond", "stripes", "x"]
    private static let palette: [(UInt8, UInt8, UInt8)] = [
        (230, 60, 50), (60, 180, 75), (60, 110, 230), (240, 200, 40),
        (200, 80, 220), (70, 210, 220), (245, 130, 40), (235, 235, 235),
    ]

    public let name: String
    public let count: Int
    public let classCount: Int
    public let resolution: Int
    public let channels: Int
    public let seed: UInt64
    public var classNames: [String]? { Array(Self.shapeNames.prefix(classCount)) }

    public init(count: Int, classCount: Int = 4, resolution: Int = 16, channels: Int = 3, seed: UInt64 = 0) {
        precondition(count > 0, "ShapesDataset: count \(count) must be positive")
        precondition((1...8).contains(classCount), "ShapesDataset: classCount \(classCount); expected 1…8")
        precondition(resolution >= 8, "ShapesDataset: resolution \(resolution) must be ≥ 8")
        precondition(channels == 1 || channels == 3, "ShapesDataset: channels \(channels); expected 1 or 3")
        self.count = count
        self.classCount = classCount
        self.resolution = resolution
        self.channels = channels
        self.seed = seed
        name = "shapes(\(count)×\(resolution)×\(resolution)×\(channels), \(classCount) classes, seed \(seed))"
    }

    public func label(_ index: Int) -> Int {
        checkIndex(index)
        return index % classCount
    }

    public func item(_ index: Int) throws -> (image: Image8, label: Int) {
        checkIndex(index)
        let c = index % classCount
        var rng = RandomGenerator(seed: seed ^ (UInt64(index) &* 0xD1B5_4A32_D192_ED03))
        let R = Double(resolution)
        let radius = R * (0.22 + 0.12 * rng.nextUniform())
        let cx = R / 2 + (rng.nextUniform() - 0.5) * (R - 2 * radius) * 0.8
        let cy = R / 2 + (rng.nextUniform() - 0.5) * (R - 2 * radius) * 0.8
        let brightness = 0.7 + 0.3 * rng.nextUniform()
        let (r, g, b) = Self.palette[c]
        let colour = [r, g, b].map { UInt8((Double($0) * brightness).rounded()) }
        let background: [UInt8] = [20, 20, 28]

        var image = Image8(width: resolution, height: resolution, channels: 3)
        for y in 0..<resolution {
            for x in 0..<resolution {
                // Pixel centre in the shape's frame, scaled so the shape spans [−1, 1].
                let u = (Double(x) + 0.5 - cx) / radius, v = (Double(y) + 0.5 - cy) / radius
                let inside = Self.contains(shape: c, u: u, v: v)
                for k in 0..<3 { image[y, x, k] = inside ? colour[k] : background[k] }
            }
        }
        return (channels == 3 ? image : image.converted(toChannels: 1), c)
    }

    /// Whether (u, v), in units of the shape's radius around its centre, lies inside shape `c`.
    private static func contains(shape c: Int, u: Double, v: Double) -> Bool {
        let r2 = u * u + v * v
        switch c {
        case 0: return r2 <= 1
        case 1: return abs(u) <= 0.8 && abs(v) <= 0.8
        case 2: return v <= 0.8 && v >= -1 + 2 * abs(u) * 0.9        // apex up
        case 3: return r2 <= 1 && r2 >= 0.36
        case 4: return (abs(u) <= 0.3 && abs(v) <= 1) || (abs(v) <= 0.3 && abs(u) <= 1)
        case 5: return abs(u) + abs(v) <= 1
        case 6: return abs(u) <= 1 && abs(v) <= 1 && Int(((v + 1) * 2.5).rounded(.down)) % 2 == 0
        default: return abs(u) <= 1 && abs(v) <= 1 && (abs(u - v) <= 0.35 || abs(u + v) <= 0.35)
        }
    }
}
