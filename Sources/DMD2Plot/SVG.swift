// The SVG rendering of a LinePlot: grid, frame, ticks and labels as SVG elements, each series
// as <polyline>s in data order, text as <text> (XML-escaped). Coordinates come from PlotLayout,
// the same as the PNG's.
import Foundation

extension LinePlot {
    /// The plot as a standalone SVG document.
    public func svg() -> String {
        let L = layout
        let s = Double(L.textScale)
        let fontSize = fmt(7.5 * s)
        var out: [String] = []
        out.append(#"<?xml version="1.0" encoding="UTF-8"?>"#)
        out.append(#"<svg xmlns="http://www.w3.org/2000/svg" width="\#(width)" height="\#(height)" viewBox="0 0 \#(width) \#(height)" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="\#(fontSize)">"#)
        out.append(#"<rect x="0" y="0" width="\#(width)" height="\#(height)" fill="white"/>"#)

        // Grid lines and tick labels.
        out.append(#"<g stroke="\#(PlotColor.grid.hex)" stroke-width="1">"#)
        for t in L.xAxis.ticks { if let p = L.pixel(x: t.value, y: L.yAxis.min) { out.append(line(p.x, L.top, p.x, L.bottom)) } }
        for t in L.yAxis.ticks { if let p = L.pixel(x: L.xAxis.min, y: t.value) { out.append(line(L.left, p.y, L.right, p.y)) } }
        out.append("</g>")
        out.append(#"<g fill="black">"#)
        for t in L.xAxis.ticks {
            guard let p = L.pixel(x: t.value, y: L.yAxis.min) else { continue }
            out.append(text(t.label, x: p.x, y: L.bottom + 6 * s + 7 * s, anchor: "middle"))
        }
        for t in L.yAxis.ticks {
            guard let p = L.pixel(x: L.xAxis.min, y: t.value) else { continue }
            out.append(text(t.label, x: L.left - 6 * s, y: p.y + 3.5 * s, anchor: "end"))
        }
        out.append("</g>")
        out.append(#"<rect x="\#(fmt(L.left))" y="\#(fmt(L.top))" width="\#(fmt(L.right - L.left))" height="\#(fmt(L.bottom - L.top))" fill="none" stroke="\#(PlotColor.frame.hex)" stroke-width="1"/>"#)

        // Series.
        for (i, series) in self.series.enumerated() {
            let color = self.color(ofSeries: i).hex
            for piece in L.polylines(series) {
                if piece.count == 1 {
                    out.append(#"<circle cx="\#(fmt(piece[0].x))" cy="\#(fmt(piece[0].y))" r="\#(fmt(1.5 * s))" fill="\#(color)"/>"#)
                } else {
                    let points = piece.map { "\(fmt($0.x)),\(fmt($0.y))" }.joined(separator: " ")
                    out.append(#"<polyline fill="none" stroke="\#(color)" stroke-width="\#(fmt(0.75 * s + 0.5))" stroke-linejoin="round" points="\#(points)"/>"#)
                }
            }
        }

        // Legend, title, axis labels.
        let named = self.series.enumerated().filter { !$0.element.name.isEmpty }
        if legend && !named.isEmpty {
            let box = L.legendBox(named.map(\.element.name))
            out.append(#"<rect x="\#(fmt(box.x))" y="\#(fmt(box.y))" width="\#(fmt(box.width))" height="\#(fmt(box.height))" fill="white" fill-opacity="0.9" stroke="\#(PlotColor.frame.hex)" stroke-width="1"/>"#)
            for (row, (i, series)) in named.enumerated() {
                let y = box.y + 2 * s + (Double(row) + 0.5) * box.row
                out.append(#"<line x1="\#(fmt(box.x + 4 * s))" y1="\#(fmt(y))" x2="\#(fmt(box.x + 20 * s))" y2="\#(fmt(y))" stroke="\#(color(ofSeries: i).hex)" stroke-width="\#(fmt(s + 1))"/>"#)
                out.append(text(series.name, x: box.x + 24 * s, y: y + 3.5 * s, anchor: "start"))
            }
        }
        if !title.isEmpty {
            out.append(text(title, x: (L.left + L.right) / 2, y: 6 * s + 7 * s, anchor: "middle", bold: true))
        }
        if !xLabel.isEmpty {
            out.append(text(xLabel, x: (L.left + L.right) / 2, y: Double(height) - 6 * s, anchor: "middle"))
        }
        if !yLabel.isEmpty {
            let x = 6 * s + 7 * s, y = (L.top + L.bottom) / 2
            out.append(#"<text x="\#(fmt(x))" y="\#(fmt(y))" text-anchor="middle" transform="rotate(-90 \#(fmt(x)) \#(fmt(y)))">\#(escapeXML(yLabel))</text>"#)
        }
        out.append("</svg>")
        return out.joined(separator: "\n") + "\n"
    }

    private func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double) -> String {
        #"<line x1="\#(fmt(x1))" y1="\#(fmt(y1))" x2="\#(fmt(x2))" y2="\#(fmt(y2))"/>"#
    }

    private func text(_ t: String, x: Double, y: Double, anchor: String, bold: Bool = false) -> String {
        #"<text x="\#(fmt(x))" y="\#(fmt(y))" text-anchor="\#(anchor)"\#(bold ? #" font-weight="bold""# : "")>\#(escapeXML(t))</text>"#
    }
}

/// A coordinate with two decimals and no trailing zeros.
func fmt(_ v: Double) -> String {
    var s = String(format: "%.2f", v)
    while s.hasSuffix("0") { s.removeLast() }
    if s.hasSuffix(".") { s.removeLast() }
    return s == "-0" ? "0" : s
}

/// Text as XML character data or attribute value: & < > " ' escaped.
public func escapeXML(_ s: String) -> String {
    var out = ""
    for ch in s {
        switch ch {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&apos;"
        default: out.append(ch)
        }
    }
    return out
}
