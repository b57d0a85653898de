// What a training log says about a run, and the mean ± standard deviation over runs (seeds) that
// `dmd2 report` prints: the numbers of the guide's reproduction tables (docs/guide/06-ablation.md).
import Foundation

/// Mean and sample standard deviation, the statistics of a table row over seeds.
public enum SeedStatistics {
    /// The arithmetic mean (NaN for no values).
    public static func mean(_ xs: [Double]) -> Double { xs.isEmpty ? .nan : xs.reduce(0, +) / Double(xs.count) }

    /// The sample standard deviation (divisor n − 1, as for a spread over seeds); 0 for one value.
    public static func standardDeviation(_ xs: [Double]) -> Double {
        guard xs.count > 1 else { return 0 }
        let m = mean(xs)
        return (xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count - 1)).squareRoot()
    }
}

/// One distill run's log.jsonl reduced to what a table needs: iterations, generator updates,
/// wall time, and the mean brightness of G's batch over a window of iterations (its standard
/// deviation measures the TTUR oscillation, docs/guide/04-ttur-on-images.md).
public struct TrainingLogSummary: Equatable, Sendable {
    public var iterations: Int
    /// Lines with `"generator_step": true`.
    public var generatorUpdates: Int
    /// The sum of the lines' `seconds`.
    public var seconds: Double
    /// Brightness values in the window, in log order.
    public var brightness: [Double]

    public var brightnessStandardDeviation: Double { SeedStatistics.standardDeviation(brightness) }
    public var brightnessRange: ClosedRange<Double>? {
        guard let low = brightness.min(), let high = brightness.max() else { return nil }
        return low...high
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads JSON lines (one object per line; blank lines skipped). The brightness window is the
    /// lines whose `step` is ≥ `fromIteration`, or the second half of the lines when nil.
    /// `name` is used in errors (the file's path).
    public init(jsonLines text: String, fromIteration: Int? = nil, name: String = "log") throws {
        var steps: [(step: Int, value: Double)] = []
        var iterations = 0, updates = 0, seconds = 0.0
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw Failure(description: "\(name): line \(n + 1) is not a JSON object")
            }
            iterations += 1
            if let b = (object["brightness"] as? NSNumber)?.doubleValue, let step = (object["step"] as? NSNumber)?.intValue {
                steps.append((step, b))
            }
            if let s = (object["seconds"] as? NSNumber)?.doubleValue { seconds += s }
            if (object["generator_step"] as? Bool) == true { updates += 1 }
        }
        guard iterations > 0 else { throw Failure(description: "\(name) is empty") }
        let window = fromIteration.map { from in steps.filter { $0.step >= from }.map(\.value) }
            ?? steps.suffix(steps.count / 2).map(\.value)
        guard !window.isEmpty else {
            throw Failure(description: "\(name): no brightness values\(fromIteration.map { " from iteration \($0) on" } ?? "")")
        }
        self.iterations = iterations
        self.generatorUpdates = updates
        self.seconds = seconds
        self.brightness = window
    }
}
