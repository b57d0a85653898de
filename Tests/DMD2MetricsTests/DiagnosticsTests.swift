// Image diagnostics against closed forms: constant images, a pure cosine, white noise, Parseval.
import DMD2Core
import DMD2Metrics
import Foundation
import XCTest

final class DiagnosticsTests: XCTestCase {
    override func setUp() { Threads.count = 2 }

    /// A batch [N, C, S, S] from a function of (n, c, h, w).
    func images<T: TensorScalar>(_ N: Int, _ C: Int, _ S: Int, as: T.Type = T.self,
                                 _ f: (Int, Int, Int, Int) -> Double) -> Tensor<T> {
        var scalars: [T] = []
        for n in 0..<N { for c in 0..<C { for h in 0..<S { for w in 0..<S { scalars.append(T(f(n, c, h, w))) } } } }
        return Tensor(shape: [N, C, S, S], scalars: scalars)
    }

    func testConstantImages() {
        // RGB (0.5, −1, 1) → displayed (0.75, 0, 1): HSV saturation (1 − 0)/1 = 1; the −1 and 1
        // planes count as clipped (2 of 3 values); a constant has no spectrum.
        let values = [0.5, -1, 1]
        let d = ImageDiagnostics(images: images(2, 3, 8, as: Float.self) { _, c, _, _ in values[c] })
        XCTAssertEqual(d.count, 2)
        XCTAssertEqual(d.meanBrightness, [0.75, 0, 1])
        XCTAssertEqual(d.brightness, 1.75 / 3, accuracy: 1e-15)
        XCTAssertEqual(d.saturation, 1)
        XCTAssertEqual(d.clippedFraction, 2.0 / 3, accuracy: 1e-15)
        XCTAssertEqual(d.spectrum.totalEnergy, 0)
        XCTAssertEqual(d.highFrequencyRatio, 0)
        // Grey RGB (all channels equal) has saturation 0; (0.6, 0.3, 0.3) in [0,1] has 0.5.
        let grey = ImageDiagnostics(images: images(1, 3, 4, as: Double.self) { _, _, _, _ in 0.2 })
        XCTAssertEqual(grey.saturation, 0)
        XCTAssertEqual(grey.clippedFraction, 0)
        let pink = ImageDiagnostics(images: images(1, 3, 4, as: Double.self) { _, c, _, _ in c == 0 ? 0.2 : -0.4 })
        XCTAssertEqual(pink.saturation!, 0.5, accuracy: 1e-15)
        // One channel: no saturation; out-of-range values are clamped for brightness.
        let single = ImageDiagnostics(images: images(1, 1, 4, as: Double.self) { _, _, h, _ in h < 2 ? 3 : -0.5 })
        XCTAssertNil(single.saturation)
        XCTAssertEqual(single.meanBrightness, [(1 + 0.25) / 2])
        XCTAssertEqual(single.clippedFraction, 0.5)
    }

    func testCosineLandsInItsRadialBin() {
        // v = 0.5 + a·cos(2π(3h + 4w)/S): |(3, 4)| = 5, so all energy is in bin 5:
        // |X|² = (a·S²/2)² at (3, 4) and (−3, −4); Σ count·P = 2·(a S²/2)²/S² = a²S²/2 = Σ (v − v̄)².
        let S = 32, a = 0.25
        let x = images(2, 1, S, as: Double.self) { _, _, h, w in
            2 * (0.5 + a * cos(2 * Double.pi * Double(3 * h + 4 * w) / Double(S))) - 1
        }
        let spectrum = ImageDiagnostics(images: x).spectrum
        XCTAssertEqual(spectrum.size, S)
        XCTAssertEqual(spectrum.power.count, Int((Double(S) / 2.0.squareRoot()).rounded()) + 1)
        let energy = a * a * Double(S * S) / 2
        XCTAssertEqual(Double(spectrum.counts[5]) * spectrum.power[5], energy, accuracy: 1e-10 * energy)
        for k in spectrum.power.indices where k != 5 {
            XCTAssertLessThan(spectrum.power[k], 1e-20, "bin \(k) should be empty")
        }
        XCTAssertEqual(spectrum.totalEnergy, energy, accuracy: 1e-10 * energy)
        XCTAssertEqual(spectrum.highFrequencyRatio, 0, accuracy: 1e-12)    // 5 ≤ S/4 = 8
        // Same at (0, 12): radius 12 > 8, so all the energy is high-frequency; Float input.
        let high = images(1, 1, S, as: Float.self) { _, _, h, _ in 0.5 * cos(2 * Double.pi * Double(12 * h) / Double(S)) }
        let hs = ImageDiagnostics(images: high).spectrum
        XCTAssertEqual(hs.highFrequencyRatio, 1, accuracy: 1e-6)
        XCTAssertEqual(hs.power.indices.max { hs.power[$0] < hs.power[$1] }, 12)
    }

    func testBinCountsCoverTheFullSpectrum() {
        // Every one of the S² frequencies is in exactly one bin; bin 0 is DC alone, bin 1
        // (radius in [0.5, 1.5)) holds (±1, 0), (0, ±1) and the diagonals (±1, ±1), r = √2.
        for S in [8, 9, 16] {                      // odd S: no Nyquist column
            let x = images(1, 1, S, as: Double.self) { _, _, h, w in Double((h * 7 + w * 3) % 5) / 5 }
            let counts = ImageDiagnostics(images: x).spectrum.counts
            XCTAssertEqual(counts.reduce(0, +), S * S)
            XCTAssertEqual(counts[0], 1)
            XCTAssertEqual(counts[1], 8)
        }
    }

    func testWhiteNoiseIsFlatAndParsevalHolds() {
        // Displayed values v = 0.5 + σ·z (well inside [0, 1]): E P_k = σ² for every k ≥ 1. Bin k
        // averages ≈ count_k/2 independent |X|² (conjugate pairs) over 32 images, each an
        // exponential variable, so its relative spread is 1/√(16·count_k); allow 5 of those.
        let S = 32, N = 32, σ = 0.05
        var rng = RandomGenerator(seed: 7)
        let z: Tensor<Double> = rng.normal([N, 1, S, S])
        let x = Tensor(shape: z.shape, scalars: z.scalars.map { 2 * (0.5 + σ * $0) - 1 })
        let d = ImageDiagnostics(images: x)
        let spectrum = d.spectrum
        XCTAssertEqual(spectrum.power[0], 0, accuracy: 1e-20)               // mean removed
        for k in 1..<spectrum.power.count {
            let tolerance = 5 / (16 * Double(spectrum.counts[k])).squareRoot()
            XCTAssertEqual(spectrum.power[k] / (σ * σ), 1, accuracy: tolerance, "bin \(k)")
        }
        // Parseval: Σ_k count_k·P_k = mean over planes of Σ (v − v̄)², to rounding.
        var energy = 0.0
        for n in 0..<N {
            let v = z.scalars[(n * S * S)..<((n + 1) * S * S)].map { 0.5 + σ * $0 }
            let mean = v.reduce(0, +) / Double(v.count)
            energy += v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        }
        energy /= Double(N)
        XCTAssertEqual(spectrum.totalEnergy, energy, accuracy: 1e-12 * energy)
        // A flat spectrum's high-frequency ratio is the share of frequencies in bins k > S/4.
        let all = spectrum.counts.dropFirst().reduce(0, +)
        let high = spectrum.counts.indices.filter { 4 * $0 > S }.map { spectrum.counts[$0] }.reduce(0, +)
        XCTAssertEqual(d.highFrequencyRatio, Double(high) / Double(all), accuracy: 0.01)
        // Against itself the ratio is 1; a smoothed copy (2×2 box) has less high frequency.
        XCTAssertEqual(d.highFrequencyRatio(relativeTo: d)!, 1, accuracy: 1e-15)
        let smooth = images(N, 1, S, as: Double.self) { n, _, h, w in
            let at = { (i: Int, j: Int) in x.scalars[n * S * S + (i % S) * S + j % S] }
            return (at(h, w) + at(h + 1, w) + at(h, w + 1) + at(h + 1, w + 1)) / 4
        }
        XCTAssertLessThan(ImageDiagnostics(images: smooth).highFrequencyRatio(relativeTo: d)!, 0.5)
    }

    func testBatchesAccumulateLikeOneCall() throws {
        var rng = RandomGenerator(seed: 3)
        let a: Tensor<Float> = rng.normal([3, 3, 8, 8], std: 0.7)
        let b: Tensor<Float> = rng.normal([2, 3, 8, 8], std: 0.7)
        var acc = ImageDiagnostics.Accumulator()
        acc.add(a)
        acc.add(b)
        let whole = ImageDiagnostics(images: Tensor(shape: [5, 3, 8, 8], scalars: a.scalars + b.scalars))
        let parts = acc.result
        XCTAssertEqual(parts.count, 5)
        for (p, w) in zip(parts.meanBrightness + parts.spectrum.power, whole.meanBrightness + whole.spectrum.power) {
            XCTAssertEqual(p, w, accuracy: 1e-12)
        }
        XCTAssertEqual(parts.saturation!, whole.saturation!, accuracy: 1e-12)
        XCTAssertEqual(parts.clippedFraction, whole.clippedFraction)
        // Codable round trip (the evaluation report's JSON).
        let json = try JSONEncoder().encode(parts)
        XCTAssertEqual(try JSONDecoder().decode(ImageDiagnostics.self, from: json), parts)
    }
}
