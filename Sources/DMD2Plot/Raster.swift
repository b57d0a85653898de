// The PNG rendering of a LinePlot: the same layout as the SVG, rasterised into an RGB Image8.
//
// Lines are anti-aliased by coverage: a pixel whose centre lies at distance d from a segment of
// width w gets alpha = clamp(w/2 + 1/2 − d, 0, 1) (a box filter one pixel wide across the edge).
// Grid and frame are crisp one-pixel lines; text uses the 5×7 BitmapFont, each dot a
// scale×scale square; the y label is turned 90° to read upwards.
import DMD2Data

/// An RGB pixel buffer with the few drawing operations plots need.
struct Canvas {
    let width: Int, height: Int
    var rgb: [UInt8]

    init(width: Int, height: Int, background: PlotColor) {
        self.width = width
        self.height = height
        rgb = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) { (rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]) = (background.r, background.g, background.b) }
    }

    var image: Image8 { Image8(width: width, height: height, channels: 3, pixels: rgb) }

    /// Mix `color` into pixel (x, y) with weight alpha; outside the canvas nothing happens.
    mutating func blend(_ x: Int, _ y: Int, _ color: PlotColor, _ alpha: Double = 1) {
        guard x >= 0 && x < width && y >= 0 && y < height && alpha > 0 else { return }
        let a = Swift.min(1, alpha), i = 3 * (y * width + x)
        rgb[i] = mix(rgb[i], color.r, a)
        rgb[i + 1] = mix(rgb[i + 1], color.g, a)
        rgb[i + 2] = mix(rgb[i + 2], color.b, a)
    }

    private func mix(_ old: UInt8, _ new: UInt8, _ a: Double) -> UInt8 {
        UInt8((Double(old) * (1 - a) + Double(new) * a).rounded())
    }

    /// Fill the pixels [x0, x1) × [y0, y1), clipped to the canvas (text running past an edge is cut).
    mutating func fill(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ color: PlotColor) {
        let xs = Swift.max(0, x0), xe = Swift.min(width, x1), ys = Swift.max(0, y0), ye = Swift.min(height, y1)
        guard xs < xe, ys < ye else { return }
        for y in ys..<ye {
            for x in xs..<xe { blend(x, y, color) }
        }
    }

    /// An anti-aliased segment of width w between two points (pixel coordinates, continuous).
    mutating func line(_ a: (x: Double, y: Double), _ b: (x: Double, y: Double), width w: Double, _ color: PlotColor) {
        let r = w / 2 + 0.5
        let x0 = Int((Swift.min(a.x, b.x) - r).rounded(.down)), x1 = Int((Swift.max(a.x, b.x) + r).rounded(.up))
        let y0 = Int((Swift.min(a.y, b.y) - r).rounded(.down)), y1 = Int((Swift.max(a.y, b.y) + r).rounded(.up))
        let dx = b.x - a.x, dy = b.y - a.y, length2 = dx * dx + dy * dy
        for y in Swift.max(0, y0)...Swift.min(height - 1, Swift.max(0, y1)) {
            for x in Swift.max(0, x0)...Swift.min(width - 1, Swift.max(0, x1)) {
                let px = Double(x) + 0.5, py = Double(y) + 0.5
                // Distance from the pixel centre to the nearest point of the segment.
                let t = length2 > 0 ? Swift.min(1, Swift.max(0, ((px - a.x) * dx + (py - a.y) * dy) / length2)) : 0
                let ex = px - (a.x + t * dx), ey = py - (a.y + t * dy)
                let coverage = r - (ex * ex + ey * ey).squareRoot()
                if coverage > 0 { blendMax(x, y, color, coverage) }
            }
        }
    }

    /// Blend, but keep the pixel if it is already closer to the colour (where the segments of
    /// one polyline overlap at a joint, the joint is not darkened twice).
    private mutating func blendMax(_ x: Int, _ y: Int, _ color: PlotColor, _ alpha: Double) {
        let i = 3 * (y * width + x)
        let (r, g, b) = (rgb[i], rgb[i + 1], rgb[i + 2])
        let distance = { (r: UInt8, g: UInt8, b: UInt8) in
            Swift.abs(Int(r) - Int(color.r)) + Swift.abs(Int(g) - Int(color.g)) + Swift.abs(Int(b) - Int(color.b))
        }
        let before = distance(r, g, b)
        blend(x, y, color, alpha)
        if before < distance(rgb[i], rgb[i + 1], rgb[i + 2]) { (rgb[i], rgb[i + 1], rgb[i + 2]) = (r, g, b) }
    }

    /// Text with its top-left corner at (x, y); `upwards` turns it 90° counter-clockwise, (x, y)
    /// then being its bottom-left corner.
    mutating func text(_ s: String, x: Int, y: Int, scale: Int, _ color: PlotColor, upwards: Bool = false) {
        BitmapFont.forEachDot(s) { dx, dy in
            if upwards {
                fill(x + dy * scale, y - (dx + 1) * scale, x + (dy + 1) * scale, y - dx * scale, color)
            } else {
                fill(x + dx * scale, y + dy * scale, x + (dx + 1) * scale, y + (dy + 1) * scale, color)
            }
        }
    }
}

extension LinePlot {
    /// The plot as an RGB image (white background).
    public func image() -> Image8 {
        let L = layout
        let s = L.textScale, sd = Double(s)
        var canvas = Canvas(width: width, height: height, background: .white)
        let (left, right) = (Int(L.left.rounded()), Int(L.right.rounded()))
        let (top, bottom) = (Int(L.top.rounded()), Int(L.bottom.rounded()))
        let glyphHeight = BitmapFont.glyphHeight * s

        // Grid, tick labels, frame.
        for t in L.xAxis.ticks {
            guard let p = L.pixel(x: t.value, y: L.yAxis.min) else { continue }
            let x = Int(p.x.rounded(.down))
            canvas.fill(x, top, x + 1, bottom, PlotColor.grid)
            let w = BitmapFont.size(of: t.label, scale: s).width
            canvas.text(t.label, x: x - w / 2, y: bottom + 6 * s, scale: s, .black)
        }
        for t in L.yAxis.ticks {
            guard let p = L.pixel(x: L.xAxis.min, y: t.value) else { continue }
            let y = Int(p.y.rounded(.down))
            canvas.fill(left, y, right, y + 1, PlotColor.grid)
            let w = BitmapFont.size(of: t.label, scale: s).width
            canvas.text(t.label, x: left - 6 * s - w, y: y - glyphHeight / 2, scale: s, .black)
        }
        canvas.fill(left, top, right + 1, top + 1, PlotColor.frame)
        canvas.fill(left, bottom, right + 1, bottom + 1, PlotColor.frame)
        canvas.fill(left, top, left + 1, bottom + 1, PlotColor.frame)
        canvas.fill(right, top, right + 1, bottom + 1, PlotColor.frame)

        // Series.
        let lineWidth = 0.75 * sd + 0.5
        for (i, series) in self.series.enumerated() {
            let color = self.color(ofSeries: i)
            for piece in L.polylines(series) {
                if piece.count == 1 { canvas.line(piece[0], piece[0], width: 3 * sd, color) }
                for (a, b) in zip(piece, piece.dropFirst()) { canvas.line(a, b, width: lineWidth, color) }
            }
        }

        // Legend, title, axis labels.
        let named = self.series.enumerated().filter { !$0.element.name.isEmpty }
        if legend && !named.isEmpty {
            let box = L.legendBox(named.map(\.element.name))
            let (bx, by) = (Int(box.x.rounded()), Int(box.y.rounded()))
            let (bw, bh) = (Int(box.width.rounded()), Int(box.height.rounded()))
            canvas.fill(bx, by, bx + bw, by + bh, .white)
            canvas.fill(bx, by, bx + bw, by + 1, PlotColor.frame)
            canvas.fill(bx, by + bh - 1, bx + bw, by + bh, PlotColor.frame)
            canvas.fill(bx, by, bx + 1, by + bh, PlotColor.frame)
            canvas.fill(bx + bw - 1, by, bx + bw, by + bh, PlotColor.frame)
            for (row, (i, series)) in named.enumerated() {
                let y = box.y + 2 * sd + (Double(row) + 0.5) * box.row
                canvas.line((box.x + 4 * sd, y), (box.x + 20 * sd, y), width: sd + 1, color(ofSeries: i))
                canvas.text(series.name, x: Int((box.x + 24 * sd).rounded()), y: Int(y.rounded()) - glyphHeight / 2, scale: s, .black)
            }
        }
        if !title.isEmpty {
            let w = BitmapFont.size(of: title, scale: s).width
            canvas.text(title, x: (left + right - w) / 2, y: 6 * s, scale: s, .black)
            canvas.text(title, x: (left + right - w) / 2 + 1, y: 6 * s, scale: s, .black)       // bold
        }
        if !xLabel.isEmpty {
            let w = BitmapFont.size(of: xLabel, scale: s).width
            canvas.text(xLabel, x: (left + right - w) / 2, y: height - 6 * s - glyphHeight, scale: s, .black)
        }
        if !yLabel.isEmpty {
            let w = BitmapFont.size(of: yLabel, scale: s).width
            canvas.text(yLabel, x: 6 * s, y: (top + bottom + w) / 2, scale: s, .black, upwards: true)
        }
        return canvas.image
    }
}
