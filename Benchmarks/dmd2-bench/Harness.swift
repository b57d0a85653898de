// A small timing harness: warm up, then time N repeats and report median, min and max.
//
// A benchmark body is a closure that does the work once. Very short bodies (a 64³ GEMM takes a
// few µs) are run `inner` times per timed sample so that one sample lasts long enough for the
// clock; every figure is reported per single call. Benchmarks only report: they never assert.
import Foundation

/// Timings of one benchmark, in seconds per call.
struct Timing {
    var samples: [Double]

    var median: Double {
        let s = samples.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
    var min: Double { samples.min()! }
    var max: Double { samples.max()! }
}

/// How each benchmark is run (from the command line).
struct RunSettings {
    var warmup = 1
    var repeats = 5
    /// Shortest wall time of one timed sample; quicker bodies are repeated inside a sample.
    var minSampleSeconds = 0.03
}

/// Seconds taken by one run of `body`.
func secondsToRun(_ body: () -> Void) -> Double {
    let start = ContinuousClock.now
    body()
    let d = start.duration(to: .now)
    return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}

/// One of several things to be timed against each other.
struct Candidate {
    var name: String
    /// Untimed set-up before every warm-up run and every timed sample (e.g. a global library
    /// switch that another candidate changes).
    var prepare: () -> Void = {}
    /// The work, done once.
    var run: () -> Void
}

/// Time candidates that are to be compared, alternating between them on every repeat (repeat r
/// starts with candidate r mod count), so that noise from other processes falls on all of them
/// alike and sample r of each candidate can be paired with sample r of the others. The warm-up
/// runs (untimed, at least one) also fix each candidate's inner repeat count.
func measureInterleaved(_ settings: RunSettings, _ candidates: [Candidate]) -> [Timing] {
    var inner = [Int](repeating: 1, count: candidates.count)
    for (j, c) in candidates.enumerated() {
        var once = Double.infinity
        for _ in 0..<Swift.max(1, settings.warmup) {
            c.prepare()
            once = Swift.min(once, secondsToRun(c.run))
        }
        inner[j] = Swift.max(1, Int((settings.minSampleSeconds / Swift.max(once, 1e-9)).rounded(.up)))
    }
    var samples = [[Double]](repeating: [], count: candidates.count)
    for r in 0..<settings.repeats {
        for step in 0..<candidates.count {
            let j = (r + step) % candidates.count
            candidates[j].prepare()
            let t = secondsToRun { for _ in 0..<inner[j] { candidates[j].run() } }
            samples[j].append(t / Double(inner[j]))
        }
    }
    return samples.map(Timing.init)
}

/// Time one body.
func measure(_ settings: RunSettings, _ body: () -> Void) -> Timing {
    withoutActuallyEscaping(body) { measureInterleaved(settings, [Candidate(name: "", run: $0)])[0] }
}

/// Median over repeats of `a`'s time / `b`'s time, pairing the samples taken in the same repeat
/// (for interleaved timings this cancels slow drifts in machine load).
func pairedRatio(_ a: Timing, _ b: Timing) -> Double {
    Timing(samples: zip(a.samples, b.samples).map { $0 / $1 }).median
}

/// Benchmark memory: a fixed heap buffer that closures can capture and write through (an Array
/// cannot be written from an escaping closure while it is borrowed). Freed when dropped.
final class Buffer {
    let elements: UnsafeMutableBufferPointer<Float>

    init(_ values: [Float]) {
        elements = .allocate(capacity: values.count)
        _ = elements.initialize(from: values)
    }
    deinit { elements.deallocate() }

    var pointer: UnsafeMutablePointer<Float> { elements.baseAddress! }
    var readOnly: UnsafeBufferPointer<Float> { UnsafeBufferPointer(elements) }
}

// MARK: - Reporting

/// A plain-text table with right-aligned columns (the first column left-aligned).
struct Table {
    var header: [String]
    var rows: [[String]] = []

    init(_ header: [String]) { self.header = header }

    mutating func add(_ row: [String]) { rows.append(row) }

    func render() -> String {
        let all = [header] + rows
        let widths = (0..<header.count).map { c in all.map { $0[c].count }.max()! }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { c, s in
                let pad = String(repeating: " ", count: widths[c] - s.count)
                return c == 0 ? s + pad : pad + s
            }.joined(separator: "  ")
        }
        let rule = widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")
        return ([line(header), rule] + rows.map(line)).joined(separator: "\n")
    }
}

/// `x` with `digits` decimals.
func fmt(_ x: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", x) }

/// "median (min–max)" of a rate computed from each timing (a higher rate comes from a lower time).
func rateRange(_ t: Timing, _ rate: (Double) -> Double, digits: Int = 1) -> String {
    "\(fmt(rate(t.median), digits)) (\(fmt(rate(t.max), digits))–\(fmt(rate(t.min), digits)))"
}

/// "median (min–max)" of a timing in milliseconds.
func msRange(_ t: Timing, digits: Int = 1) -> String {
    "\(fmt(t.median * 1e3, digits)) (\(fmt(t.min * 1e3, digits))–\(fmt(t.max * 1e3, digits)))"
}
