// Line plots: several named series on linear or logarithmic axes, with ticks, axis labels, a
// legend and a title, rendered by the project itself to SVG (text) and PNG (an Image8 written
// with DMD2Data's PNG writer). Used for loss curves, brightness against iteration and power
// spectra in the docs and by `dmd2 eval`.
//
// One `PlotLayout` serves both renderers, so a data point lands on the same pixel in both:
//   px = left + (t(x) − t(x_min))/(t(x_max) − t(x_min))·(right − left)
//   py = bottom − (t(y) − t(y_min))/(t(y_max) − t(y_min))·(bottom − top)
// with t = identity, or log₁₀ on a log axis. Axis ranges are the data's (finite values, and
// positive ones on a log axis) widened to round tick values unless given. Points that cannot be
// drawn (NaN, ±∞, ≤ 0 on a log axis) break a line into separate pieces.
import DMD2Data
import Foundation

/// An sRGB colour.
public struct PlotColor: Equatable, Sendable {
    public var r, g, b: UInt8
    public init(r: UInt8, g: UInt8, b: UInt8) { (self.r, self.g, self.b) = (r, g, b) }
    /// `#rrggbb`.
    public var hex: String { String(format: "#%02x%02x%02x", r, g, b) }

    /// Ten well-separated colours; series without a colour take them in turn.
    public static let palette: [PlotColor] = [
        (0x1f, 0x77, 0xb4), (0xd6, 0x27, 0x28), (0x2c, 0xa0, 0x2c), (0xff, 0x7f, 0x0e), (0x94, 0x67, 0xbd),
        (0x8c, 0x56, 0x4b), (0xe3, 0x77, 0xc2), (0x7f, 0x7f, 0x7f), (0xbc, 0xbd, 0x22), (0x17, 0xbe, 0xcf),
    ].map { PlotColor(r: $0.0, g: $0.1, b: $0.2) }
    public static let black = PlotColor(r: 0, g: 0, b: 0)
    public static let white = PlotColor(r: 255, g: 255, b: 255)
    static let grid = PlotColor(r: 225, g: 225, b: 225)
    static let frame = PlotColor(r: 90, g: 90, b: 90)
}

/// One named line: points (x[i], y[i]).
public struct LineSeries: Sendable {
    public var name: String
    public var x: [Double]
    public var y: [Double]
    /// nil: the next palette colour.
    public var color: PlotColor?

    public init(_ name: String, x: [Double], y: [Double], color: PlotColor? = nil) {
        precondition(x.count == y.count, "LineSeries '\(name)': \(x.count) x values for \(y.count) y values")
        self.name = name
        self.x = x
        self.y = y
        self.color = color
    }

    /// y against its index 0, 1, 2, …
    public init(_ name: String, y: [Double], color: PlotColor? = nil) {
        self.init(name, x: y.indices.map(Double.init), y: y, color: color)
    }
}

/// A line plot and its two renderings.
public struct LinePlot: Sendable {
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var logX: Bool
    public var logY: Bool
    public var series: [LineSeries]
    /// Image size in pixels.
    public var width: Int
    public var height: Int
    /// Fixed axis ranges (nil: from the data, widened to round ticks).
    public var xRange: ClosedRange<Double>?
    public var yRange: ClosedRange<Double>?
    /// Whether to draw the legend (with at least one named series).
    public var legend: Bool

    public init(title: String = "", xLabel: String = "", yLabel: String = "", logX: Bool = false, logY: Bool = false,
                series: [LineSeries] = [], width: Int = 800, height: Int = 500,
                xRange: ClosedRange<Double>? = nil, yRange: ClosedRange<Double>? = nil, legend: Bool = true) {
        precondition(width >= 200 && height >= 150, "LinePlot: size \(width)×\(height) is too small (at least 200×150)")
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.logX = logX
        self.logY = logY
        self.series = series
        self.width = width
        self.height = height
        self.xRange = xRange
        self.yRange = yRange
        self.legend = legend
    }

    /// The colour series i is drawn in.
    public func color(ofSeries i: Int) -> PlotColor {
        series[i].color ?? PlotColor.palette[i % PlotColor.palette.count]
    }

    /// Axes, margins and the data-to-pixel map shared by both renderers.
    public var layout: PlotLayout { PlotLayout(self) }

    /// Write the SVG rendering.
    public func writeSVG(to url: URL) throws {
        do { try svg().write(to: url, atomically: true, encoding: .utf8) } catch {
            throw DataError(file: url, "cannot write SVG (\(error.localizedDescription))")
        }
    }

    /// Write the PNG rendering.
    public func writePNG(to url: URL) throws { try PNG.write(image(), to: url) }
}

// MARK: - Axes

/// A labelled tick at a data value.
public struct PlotTick: Sendable, Equatable {
    public var value: Double
    public var label: String
    public init(_ value: Double, _ label: String) { (self.value, self.label) = (value, label) }
}

/// One axis: its range (in data units), whether it is logarithmic, and its labelled ticks.
public struct PlotAxis: Sendable, Equatable {
    public var min: Double
    public var max: Double
    public var log: Bool
    public var ticks: [PlotTick]

    /// The axis coordinate t of a data value (log₁₀ on a log axis); nil if it cannot be drawn.
    public func transform(_ v: Double) -> Double? {
        guard v.isFinite else { return nil }
        if log { return v > 0 ? Foundation.log10(v) : nil }
        return v
    }

    /// An axis for `values` (or the fixed range), widened to round ticks when not fixed.
    init(values: [Double], log: Bool, fixed: ClosedRange<Double>?) {
        self.log = log
        var lo: Double, hi: Double
        if let fixed {
            precondition(!log || fixed.lowerBound > 0, "LinePlot: log axis range \(fixed) must be positive")
            (lo, hi) = (fixed.lowerBound, fixed.upperBound)
        } else {
            let usable = values.filter { $0.isFinite && (!log || $0 > 0) }
            (lo, hi) = (usable.min() ?? (log ? 1 : 0), usable.max() ?? (log ? 10 : 1))
        }
        if log {
            var a = Foundation.log10(lo), b = Foundation.log10(hi)
            if fixed == nil { (a, b) = (a.rounded(.down), b.rounded(.up)) }
            if b <= a { (a, b) = (a - 1, b + 1) }
            (self.min, self.max) = (Foundation.pow(10, a), Foundation.pow(10, b))
            ticks = PlotAxis.logTicks(from: a, to: b)
        } else {
            if hi <= lo {                                       // one value: a unit band around it
                let pad = lo == 0 ? 1 : Swift.abs(lo) / 2
                (lo, hi) = (lo - pad, hi + pad)
            }
            let step = PlotAxis.niceStep((hi - lo) / 5)
            if fixed == nil { (lo, hi) = ((lo / step).rounded(.down) * step, (hi / step).rounded(.up) * step) }
            (self.min, self.max) = (lo, hi)
            let first = (lo / step - 1e-9).rounded(.up)
            ticks = stride(from: first, through: hi / step + 1e-9, by: 1).map { k in
                let v = k * step
                return PlotTick(v, PlotAxis.label(Swift.abs(v) < step * 1e-9 ? 0 : v, step: step))
            }
        }
    }

    /// 1, 2 or 5 × 10^k, the smallest at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        let e = Foundation.pow(10, Foundation.log10(raw).rounded(.down))
        for m in [1.0, 2, 5, 10] where m * e >= raw * (1 - 1e-12) { return m * e }
        return 10 * e
    }

    /// Powers of ten between 10^a and 10^b (every d-th one if there are many); with less than two
    /// decades also 2× and 5×.
    static func logTicks(from a: Double, to b: Double) -> [PlotTick] {
        let lo = Int(a.rounded(.up)), hi = Int(b.rounded(.down))
        let decades = hi - lo
        var ticks: [PlotTick] = []
        if decades <= 1 {
            for k in (lo - 1)...hi {
                for m in [1.0, 2, 5] {
                    let v = m * Foundation.pow(10, Double(k))
                    let t = Foundation.log10(v)
                    if t >= a - 1e-9 && t <= b + 1e-9 { ticks.append(PlotTick(v, logLabel(m, k))) }
                }
            }
        } else {
            let every = (decades + 7) / 8
            for k in lo...hi where (k - lo) % every == 0 { ticks.append(PlotTick(Foundation.pow(10, Double(k)), logLabel(1, k))) }
        }
        return ticks
    }

    /// m·10^k as "0.05", "200" or "2e-6".
    static func logLabel(_ m: Double, _ k: Int) -> String {
        if k >= -3 && k <= 4 { return label(m * Foundation.pow(10, Double(k)), step: Foundation.pow(10, Double(k))) }
        return "\(Int(m))e\(k)"
    }

    /// A tick value printed with as many decimals as the step needs ("0.2", "1000", "1.5e-5").
    static func label(_ v: Double, step: Double) -> String {
        let decimals = Swift.max(0, -Int(Foundation.log10(step).rounded(.down)))
        if v == 0 { return step < 1e-4 ? "0" : String(format: "%.\(decimals)f", 0.0) }
        let magnitude = Swift.max(Swift.abs(v), step)
        if magnitude >= 1e5 || step < 1e-4 {
            let e = Int(Foundation.log10(Swift.abs(v)).rounded(.down))
            let mantissa = v / Foundation.pow(10, Double(e))
            let digits = Swift.max(0, Int((Foundation.log10(Swift.abs(v)) - Foundation.log10(step)).rounded(.down)))
            let text = String(format: "%.\(Swift.min(digits, 3))f", mantissa)
            return "\(text)e\(e)"
        }
        return String(format: "%.\(decimals)f", v)
    }
}

// MARK: - Layout

/// Where everything goes, in pixels (origin top-left, y down).
public struct PlotLayout: Sendable {
    public let width: Int, height: Int
    /// Font scale of the PNG's bitmap font (the SVG's text is sized to match).
    public let textScale: Int
    /// The plot area (inside the axes).
    public let left: Double, top: Double, right: Double, bottom: Double
    public let xAxis: PlotAxis, yAxis: PlotAxis

    init(_ plot: LinePlot) {
        width = plot.width
        height = plot.height
        textScale = Swift.max(1, Swift.min(plot.width / 400, plot.height / 250))
        xAxis = PlotAxis(values: plot.series.flatMap(\.x), log: plot.logX, fixed: plot.xRange)
        yAxis = PlotAxis(values: plot.series.flatMap(\.y), log: plot.logY, fixed: plot.yRange)
        let s = Double(textScale), char = Double(BitmapFont.advance) * s, line = Double(BitmapFont.lineHeight) * s
        let tickLabelWidth = Double(yAxis.ticks.map(\.label.count).max() ?? 1) * char
        let pad = 6 * s
        left = pad + (plot.yLabel.isEmpty ? 0 : line + pad) + tickLabelWidth + pad
        right = Double(plot.width) - 3 * pad - char                 // room for the last x tick label
        top = pad + (plot.title.isEmpty ? 0 : line + pad) + pad
        bottom = Double(plot.height) - (pad + line + (plot.xLabel.isEmpty ? 0 : line + pad) + pad)
    }

    /// The pixel of a data point; nil if it cannot be drawn (non-finite, or ≤ 0 on a log axis).
    public func pixel(x: Double, y: Double) -> (x: Double, y: Double)? {
        guard let tx = xAxis.transform(x), let ty = yAxis.transform(y),
              let x0 = xAxis.transform(xAxis.min), let x1 = xAxis.transform(xAxis.max),
              let y0 = yAxis.transform(yAxis.min), let y1 = yAxis.transform(yAxis.max) else { return nil }
        return (left + (tx - x0) / (x1 - x0) * (right - left), bottom - (ty - y0) / (y1 - y0) * (bottom - top))
    }

    /// A series as polylines of drawable points (a point that cannot be drawn ends a piece).
    public func polylines(_ s: LineSeries) -> [[(x: Double, y: Double)]] {
        var pieces: [[(x: Double, y: Double)]] = [], current: [(x: Double, y: Double)] = []
        for (x, y) in zip(s.x, s.y) {
            if let p = pixel(x: x, y: y) {
                current.append(p)
            } else if !current.isEmpty {
                pieces.append(current)
                current = []
            }
        }
        if !current.isEmpty { pieces.append(current) }
        return pieces
    }

    /// The legend box: top-left corner, size, and the row height.
    func legendBox(_ names: [String]) -> (x: Double, y: Double, width: Double, height: Double, row: Double) {
        let s = Double(textScale)
        let row = Double(BitmapFont.lineHeight) * s + 4 * s
        let width = Double(names.map(\.count).max() ?? 0) * Double(BitmapFont.advance) * s + 30 * s
        let height = Double(names.count) * row + 4 * s
        return (right - width - 6 * s, top + 6 * s, width, height, row)
    }
}
