// Line plots: well-formed SVG, data points on the right pixels in both renderings, ticks, PNG
// round trip.
import DMD2Data
import DMD2Plot
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest

final class LinePlotTests: XCTestCase {
    /// Two series on 0…10 × 0…1, one with a NaN gap, names needing XML escapes.
    func samplePlot(logY: Bool = false) -> LinePlot {
        let xs = (0...10).map(Double.init)
        return LinePlot(title: "loss <train> & \"val\"", xLabel: "iteration", yLabel: "loss",
                        logY: logY,
                        series: [LineSeries("train", x: xs, y: xs.map { 0.05 + 0.95 * exp(-$0 / 3) }),
                                 LineSeries("val's", x: xs, y: xs.map { $0 == 5 ? .nan : 0.1 + 0.8 * exp(-$0 / 4) })])
    }

    /// Collects element names, attributes and each element's text while parsing.
    final class Collector: NSObject, XMLParserDelegate {
        var elements: [(name: String, attributes: [String: String])] = []
        var texts: [String] = []
        private var current = ""
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?,
                    qualifiedName: String?, attributes: [String: String] = [:]) {
            elements.append((name, attributes))
            current = ""
        }
        func parser(_ parser: XMLParser, foundCharacters string: String) { current += string }
        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if !current.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { texts.append(current) }
            current = ""
        }
    }

    func parse(_ svg: String) throws -> Collector {
        let parser = XMLParser(data: Data(svg.utf8))
        let collector = Collector()
        parser.delegate = collector
        guard parser.parse() else {
            throw NSError(domain: "svg", code: 1, userInfo: [NSLocalizedDescriptionKey: "malformed SVG: \(String(describing: parser.parserError))"])
        }
        return collector
    }

    func testSVGIsWellFormedAndEscapesText() throws {
        let plot = samplePlot()
        let doc = try parse(plot.svg())
        XCTAssertEqual(doc.elements.first?.name, "svg")
        XCTAssertEqual(doc.elements.first?.attributes["width"], "800")
        // The title, the legend names and the labels come back unescaped.
        XCTAssert(doc.texts.contains("loss <train> & \"val\""), "\(doc.texts)")
        XCTAssert(doc.texts.contains("val's"))
        XCTAssert(doc.texts.contains("iteration") && doc.texts.contains("loss"))
        // Series 1 has a NaN at x = 5: two polylines; series 0 one.
        let polylines = doc.elements.filter { $0.name == "polyline" }
        XCTAssertEqual(polylines.count, 3)
        XCTAssertEqual(polylines.filter { $0.attributes["stroke"] == PlotColor.palette[0].hex }.count, 1)
        XCTAssertEqual(polylines.filter { $0.attributes["stroke"] == PlotColor.palette[1].hex }.count, 2)
        // The log-y variant parses too.
        XCTAssertEqual(try parse(samplePlot(logY: true).svg()).elements.first?.name, "svg")
    }

    func testDataPointsMapToPixels() throws {
        let plot = samplePlot()
        let L = plot.layout
        // Linear axes widened to round ticks: x 0…10, y 0…1 (data 0.05…1).
        XCTAssertEqual([L.xAxis.min, L.xAxis.max, L.yAxis.min, L.yAxis.max], [0, 10, 0, 1])
        XCTAssertEqual(L.yAxis.ticks.map(\.label), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"])
        XCTAssertEqual(L.xAxis.ticks.map(\.label), ["0", "2", "4", "6", "8", "10"])
        // Corners of the data range are the corners of the plot area; the middle is the middle.
        let p00 = try XCTUnwrap(L.pixel(x: 0, y: 0)), p11 = try XCTUnwrap(L.pixel(x: 10, y: 1))
        XCTAssertEqual(p00.x, L.left); XCTAssertEqual(p00.y, L.bottom)
        XCTAssertEqual(p11.x, L.right); XCTAssertEqual(p11.y, L.top)
        let mid = try XCTUnwrap(L.pixel(x: 5, y: 0.5))
        XCTAssertEqual(mid.x, (L.left + L.right) / 2, accuracy: 1e-9)
        XCTAssertEqual(mid.y, (L.top + L.bottom) / 2, accuracy: 1e-9)
        XCTAssertNil(L.pixel(x: .nan, y: 0.5))
        // The SVG polyline of series 0 passes through exactly these pixels.
        let doc = try parse(plot.svg())
        let points = try XCTUnwrap(doc.elements.first { $0.name == "polyline" }?.attributes["points"])
            .split(separator: " ").map { $0.split(separator: ",").map { Double($0)! } }
        XCTAssertEqual(points.count, 11)
        for (i, p) in points.enumerated() {
            let expected = try XCTUnwrap(L.pixel(x: Double(i), y: plot.series[0].y[i]))
            XCTAssertEqual(p[0], expected.x, accuracy: 0.005)
            XCTAssertEqual(p[1], expected.y, accuracy: 0.005)
        }
    }

    func testLogAxis() throws {
        let plot = LinePlot(logY: true, series: [LineSeries("s", x: [0, 1, 2, 3], y: [0.002, 0.03, 0.4, -1])])
        let L = plot.layout
        XCTAssertEqual(L.yAxis.min, 0.001, accuracy: 1e-15)
        XCTAssertEqual(L.yAxis.max, 1, accuracy: 1e-15)
        XCTAssertEqual(L.yAxis.ticks.map(\.label), ["0.001", "0.01", "0.1", "1"])
        // 10^-1.5 is halfway up; a non-positive value cannot be drawn.
        XCTAssertEqual(try XCTUnwrap(L.pixel(x: 0, y: pow(10, -1.5))).y, (L.top + L.bottom) / 2, accuracy: 1e-9)
        XCTAssertNil(L.pixel(x: 3, y: -1))
        XCTAssertEqual(L.polylines(plot.series[0]).map(\.count), [3])
        // Less than a decade: 1-2-5 ticks; many decades: powers of ten, thinned, exponent labels.
        let narrow = LinePlot(logY: true, series: [LineSeries("", y: [1, 2])], yRange: 0.3...4).layout
        XCTAssertEqual(narrow.yAxis.ticks.map(\.label), ["0.5", "1", "2"])
        let wide = LinePlot(logY: true, series: [LineSeries("", y: [1e-12, 1e6])]).layout
        XCTAssertEqual(wide.yAxis.ticks.first?.label, "1e-12")
        XCTAssertLessThanOrEqual(wide.yAxis.ticks.count, 10)
    }

    func testPNGRoundTripAndPixels() throws {
        let plot = samplePlot()
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dmd2-plot-\(ProcessInfo.processInfo.processIdentifier).png")
        defer { try? FileManager.default.removeItem(at: url) }
        try plot.writePNG(to: url)
        let image = try PNG.read(url)
        XCTAssertEqual([image.width, image.height, image.channels], [800, 500, 3])
        XCTAssertEqual(image, plot.image())
        let L = plot.layout
        func rgb(_ p: (x: Double, y: Double)) -> [Int] {
            (0..<3).map { Int(image[Int(p.y.rounded(.down)), Int(p.x.rounded(.down)), $0]) }
        }
        // At every data point of series 0 the pixel is close to its colour (where series 1, drawn
        // on top, passes within a few pixels the blend is allowed to differ).
        let blue = PlotColor.palette[0]
        for i in 0...10 where !(abs(plot.series[0].y[i] - plot.series[1].y[i]) < 0.03) {
            let p = try XCTUnwrap(L.pixel(x: Double(i), y: plot.series[0].y[i]))
            let c = rgb(p)
            let distance = abs(c[0] - Int(blue.r)) + abs(c[1] - Int(blue.g)) + abs(c[2] - Int(blue.b))
            XCTAssertLessThan(distance, 120, "point \(i) at \(p): pixel \(c), series colour \(blue.hex)")
        }
        // Far from every line (bottom-right area between the grid lines) the pixel is background.
        let empty = try XCTUnwrap(L.pixel(x: 9.5, y: 0.5))
        XCTAssertEqual(rgb(empty), [255, 255, 255])
        // Text was drawn: the title row holds dark pixels, the margin right of the plot none.
        let titleRow = 6 * L.textScale + 7 * L.textScale / 2          // the title's middle row
        XCTAssert((0..<image.width).contains { image[titleRow, $0, 0] < 100 })
        XCTAssert((Int(L.right) + 30..<image.width).allSatisfy { x in image[Int(L.bottom) - 5, x, 0] == 255 })
    }

    /// Text longer than the image is cut at the edge (it used to trap in the raster's fill).
    func testTextPastTheEdgeIsClipped() {
        var plot = samplePlot()
        plot.title = String(repeating: "a title much longer than the plot is wide ", count: 4)
        plot.yLabel = String(repeating: "a long axis label ", count: 8)
        let image = plot.image()
        XCTAssertEqual([image.width, image.height], [800, 500])
        let titleRow = 6 * plot.layout.textScale + 7 * plot.layout.textScale / 2
        XCTAssert((790..<800).contains { image[titleRow, $0, 0] < 100 }, "the title runs to the right edge")
    }

    func testFontCoversPrintableASCII() {
        for code in 32...126 {
            let ch = Character(UnicodeScalar(UInt8(code)))
            XCTAssertEqual(BitmapFont.rows(ch).count, 7)
        }
        XCTAssertEqual(BitmapFont.rows("€"), BitmapFont.rows("?"))
        XCTAssertEqual(BitmapFont.size(of: "abc", scale: 2).width, (3 * 6 - 1) * 2)
        var dots = 0
        BitmapFont.forEachDot("I") { _, _ in dots += 1 }
        XCTAssertEqual(dots, 3 + 5 + 3)                              // ".###.", 5 × "..#..", ".###."
    }
}
