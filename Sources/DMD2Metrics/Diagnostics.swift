// Image diagnostics: cheap statistics that show what FID only hints at — a brightness drift,
// over-saturation, values piling up at the clip limits, over-smoothing (too little
// high-frequency energy) or blocking/noise (too much).
//
// Images x [N, C, H, W] in [−1, 1] (Float or Double). Every statistic except the clipped
// fraction is measured on the image as displayed: values clamped to [−1, 1] and mapped to
// v = (x + 1)/2 ∈ [0, 1].
//
//   brightness_c   = mean over n, h, w of v[n, c, h, w]                       (per channel)
//   saturation     = mean over n, h, w of S = (max_c v − min_c v)/max_c v      (HSV saturation,
//                    0 where max_c v = 0; RGB only — nil for grey, C ≠ 3)
//   clipped        = fraction of all values with |x| ≥ 1                       (raw x)
//
// Radially averaged power spectrum (square images, side S). Per image n and channel c, with
// the plane's mean removed, X = DFT₂(v − mean v) (RealFFT2D.swift beside it, half spectrum), and for
// the full set of frequencies (u, w), u, w ∈ (−S/2, S/2] cycles per image:
//   r(u, w) = √(u² + w²),  bin k = round(r),  k = 0 … round(S/√2)
//   P_k = mean over n, c and over the frequencies of bin k of |X(u, w)|²/S²
// Normalised so that white noise of variance σ² has P_k = σ² in every bin k ≥ 1, and
// Parseval reads Σ_k count_k·P_k = mean over (n, c) of Σ_{h,w} (v − mean v)².
// (The half spectrum holds each conjugate pair (u, w), (−u, −w) once: entries with
// 0 < w < S/2 stand for two frequencies, w = 0 and w = S/2 for one.)
//
// High-frequency ratio: energy in the bins above half the Nyquist radius (k > S/4) over the
// total, Σ_{k > S/4} count_k·P_k / Σ_k count_k·P_k (0 for a constant set). Generated against
// real: ratio_gen / ratio_real — below 1 over-smoothed, above 1 noisy or blocky.
import DMD2Core
import Foundation

/// The radially averaged power spectrum of a set of square images (see the file header).
public struct RadialSpectrum: Codable, Sendable, Equatable {
    /// Image side S.
    public var size: Int
    /// P_k for bins k = 0 … round(S/√2): mean |X|²/S² over the frequencies with round(r) = k.
    public var power: [Double]
    /// Frequencies (of the full S×S spectrum) in each bin.
    public var counts: [Int]
    /// Planes averaged (images × channels).
    public var planes: Int

    public init(size: Int, power: [Double], counts: [Int], planes: Int) {
        precondition(power.count == counts.count, "RadialSpectrum: \(power.count) powers for \(counts.count) bins")
        self.size = size
        self.power = power
        self.counts = counts
        self.planes = planes
    }

    /// The radius of the Nyquist frequency, S/2 cycles per image.
    public var nyquistRadius: Double { Double(size) / 2 }

    /// Σ_k count_k·P_k: the mean (over planes) energy Σ (v − mean v)² of one plane.
    public var totalEnergy: Double { zip(counts, power).reduce(0) { $0 + Double($1.0) * $1.1 } }

    /// Energy in bins k > S/4 (above half the Nyquist radius) over the total; 0 when the total is 0.
    public var highFrequencyRatio: Double {
        let total = totalEnergy
        guard total > 0 else { return 0 }
        var high = 0.0
        for k in power.indices where 4 * k > size { high += Double(counts[k]) * power[k] }
        return high / total
    }

    /// The bin of each half-spectrum entry [S, S/2 + 1] and how many full-spectrum frequencies
    /// it stands for (2 for 0 < w < S/2, else 1).
    static func binning(size S: Int) -> (bins: [Int], multiplicity: [Int], binCount: Int) {
        let Wc = S / 2 + 1
        var bins = [Int](repeating: 0, count: S * Wc), multiplicity = [Int](repeating: 1, count: S * Wc)
        for u in 0..<S {
            let fu = Double(u <= S / 2 ? u : u - S)            // signed frequency, (−S/2, S/2]
            for w in 0..<Wc {
                bins[u * Wc + w] = Int((fu * fu + Double(w * w)).squareRoot().rounded())
                multiplicity[u * Wc + w] = (w == 0 || 2 * w == S) ? 1 : 2
            }
        }
        return (bins, multiplicity, Int((Double(S) / 2.0.squareRoot()).rounded()) + 1)
    }
}

/// Brightness, saturation, clipping and the radial power spectrum of a set of images.
public struct ImageDiagnostics: Codable, Sendable, Equatable {
    /// Images measured.
    public var count: Int
    /// Channels C.
    public var channels: Int
    /// Mean displayed value (x clamped, (x + 1)/2 ∈ [0, 1]) of each channel.
    public var meanBrightness: [Double]
    /// Mean HSV saturation (max − min)/max over RGB in [0, 1]; nil unless C = 3.
    public var saturation: Double?
    /// Fraction of values with |x| ≥ 1 (before clamping).
    public var clippedFraction: Double
    /// Radially averaged power spectrum of the displayed images, mean over images and channels.
    public var spectrum: RadialSpectrum

    /// Mean brightness over channels.
    public var brightness: Double { meanBrightness.reduce(0, +) / Double(max(1, meanBrightness.count)) }
    /// The spectrum's energy fraction above half the Nyquist radius.
    public var highFrequencyRatio: Double { spectrum.highFrequencyRatio }

    /// This set's high-frequency ratio over a reference set's (e.g. real data): < 1 smoother,
    /// > 1 noisier or blockier than the reference; nil when the reference has none.
    public func highFrequencyRatio(relativeTo reference: ImageDiagnostics) -> Double? {
        let r = reference.highFrequencyRatio
        return r > 0 ? highFrequencyRatio / r : nil
    }

    /// Diagnostics of a batch [N, C, S, S] in [−1, 1].
    public init<T: TensorScalar>(images: Tensor<T>) {
        var acc = Accumulator()
        acc.add(images)
        self = acc.result
    }

    public init(count: Int, channels: Int, meanBrightness: [Double], saturation: Double?,
                clippedFraction: Double, spectrum: RadialSpectrum) {
        self.count = count
        self.channels = channels
        self.meanBrightness = meanBrightness
        self.saturation = saturation
        self.clippedFraction = clippedFraction
        self.spectrum = spectrum
    }

    /// Adds batches one at a time (e.g. as a sampler produces them) without keeping them.
    public struct Accumulator: Sendable {
        private var count = 0, channels = 0, size = 0
        private var brightnessSum: [Double] = []
        private var saturationSum = 0.0
        private var clipped = 0
        private var powerSum: [Double] = []
        private var counts: [Int] = []
        private var bins: [Int] = [], multiplicity: [Int] = []

        public init() {}

        /// Images added so far.
        public var imageCount: Int { count }

        /// Add a batch [N, C, S, S] in [−1, 1]; every batch must have the first one's C and S.
        public mutating func add<T: TensorScalar>(_ images: Tensor<T>) {
            precondition(images.rank == 4 && images.shape[2] == images.shape[3] && images.shape[2] >= 2,
                         "ImageDiagnostics: expected square images [N, C, S, S] with S ≥ 2, got \(images.shape)")
            let N = images.shape[0], C = images.shape[1], S = images.shape[2]
            if count == 0 && channels == 0 {
                channels = C
                size = S
                brightnessSum = [Double](repeating: 0, count: C)
                let binning = RadialSpectrum.binning(size: S)
                (bins, multiplicity) = (binning.bins, binning.multiplicity)
                let binCount = binning.binCount
                powerSum = [Double](repeating: 0, count: binCount)
                counts = [Int](repeating: 0, count: binCount)
                for (b, m) in zip(bins, multiplicity) { counts[b] += m }
            }
            precondition(C == channels && S == size,
                         "ImageDiagnostics: batch \(images.shape) differs from the first batch's C = \(channels), S = \(size)")
            let plane = S * S
            images.withUnsafeBufferPointer { x in
                var v = [Double](repeating: 0, count: plane)
                for n in 0..<N {
                    for c in 0..<C {
                        let base = (n * C + c) * plane
                        var sum = 0.0
                        for i in 0..<plane {
                            let raw = Double(x[base + i])
                            if Swift.abs(raw) >= 1 { clipped += 1 }
                            let d = (Swift.min(1, Swift.max(-1, raw)) + 1) / 2
                            v[i] = d
                            sum += d
                        }
                        brightnessSum[c] += sum / Double(plane)
                        let mean = sum / Double(plane)
                        for i in 0..<plane { v[i] -= mean }
                        let power = RealFFT2D.power(v, height: S, width: S)
                        for (j, p) in power.enumerated() { powerSum[bins[j]] += Double(multiplicity[j]) * p / Double(plane) }
                    }
                    if C == 3 {
                        var s = 0.0
                        let display = { (i: Int) in (Swift.min(1, Swift.max(-1, Double(x[i]))) + 1) / 2 }
                        for i in 0..<plane {
                            let r = display(n * 3 * plane + i), g = display((n * 3 + 1) * plane + i)
                            let b = display((n * 3 + 2) * plane + i)
                            let hi = Swift.max(r, g, b), lo = Swift.min(r, g, b)
                            if hi > 0 { s += (hi - lo) / hi }
                        }
                        saturationSum += s / Double(plane)
                    }
                }
            }
            count += N
        }

        /// The diagnostics of everything added (precondition: at least one image).
        public var result: ImageDiagnostics {
            precondition(count > 0, "ImageDiagnostics: no images added")
            let planes = count * channels
            let power = zip(powerSum, counts).map { $1 > 0 ? $0 / Double(planes * $1) : 0 }
            return ImageDiagnostics(
                count: count, channels: channels,
                meanBrightness: brightnessSum.map { $0 / Double(count) },
                saturation: channels == 3 ? saturationSum / Double(count) : nil,
                clippedFraction: Double(clipped) / Double(planes * size * size),
                spectrum: RadialSpectrum(size: size, power: power, counts: counts, planes: planes))
        }
    }
}
