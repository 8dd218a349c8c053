import Foundation

/// Line charts with axes, ticks, axis titles, a zero line and a legend: deletion/insertion curves
/// and sanity-check curves. Panels sit side by side, each with its own legend under it.
public enum LineChart {
    /// One line of a panel.
    public struct Series: Sendable {
        /// The legend entry (e.g. "gradcam  AUC 0.214").
        public var name: String
        /// One value per x position; NaN leaves a gap.
        public var values: [Float]
        /// A series named `name` with one value per x position.
        public init(name: String, values: [Float]) { self.name = name; self.values = values }
    }

    /// What the x positions stand for.
    public enum XAxis: Sendable {
        /// Values spread evenly over [0, 1], ticked 0, 0.2, ..., 1.
        case unit
        /// One named position per value (sanity stages), labels turned to fit.
        case categories([String])
    }

    /// One chart: axes, title, legend and its series.
    public struct Panel: Sendable {
        /// The title above the chart.
        public var title: String
        /// The x axis label.
        public var xLabel: String
        /// The y axis label.
        public var yLabel: String
        /// The y values at the bottom and top of the plot area (values outside are clipped).
        public var yRange: ClosedRange<Double>
        /// How the x axis is laid out and ticked.
        public var x: XAxis
        /// The lines, coloured in `Color.series` order.
        public var series: [Series]
        /// A dashed line at y = 0 (correlations).
        public var zeroLine: Bool
        /// A panel; `zeroLine` draws a dashed line at y = 0.
        public init(title: String, xLabel: String, yLabel: String, yRange: ClosedRange<Double>, x: XAxis,
                    series: [Series], zeroLine: Bool = false) {
            self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.yRange = yRange; self.x = x
            self.series = series; self.zeroLine = zeroLine
        }
    }

    static let plotWidth = 300.0, plotHeight = 210.0
    static let left = 62.0, right = 16.0, top = 28.0
    static let tickSize = 10.0, labelSize = 11.0, titleSize = 13.0, legendLine = 16.0

    /// The chart, with `title` above all panels when given.
    public static func canvas(title: String? = nil, panels: [Panel]) throws -> Canvas {
        let measure = try Canvas(width: 10, height: 10)
        let titleHeight = title == nil ? 0.0 : 26.0
        // Room under each plot: tick labels (turned for categories), the x title, the legend.
        let axisRooms = panels.map { panel -> Double in
            switch panel.x {
            case .unit: return 18 + 20
            case .categories(let names):
                let widest = names.map { measure.textWidth($0, size: tickSize) }.max() ?? 0
                return 10 + widest * sin(Double.pi / 4) + 8 + 20
            }
        }
        let legendRooms = panels.map { 8 + Double($0.series.count) * legendLine }
        let panelHeight = top + plotHeight + (zip(axisRooms, legendRooms).map { $0 + $1 }.max() ?? 0) + 8
        let panelWidth = left + plotWidth + right
        let canvas = try Canvas(width: Double(panels.count) * panelWidth + 8, height: titleHeight + panelHeight)
        if let title {
            canvas.text(canvas.fitted(title, maxWidth: canvas.width - 16, size: titleSize, bold: true), x: 8, y: 18, size: titleSize, bold: true)
        }
        for (p, panel) in panels.enumerated() {
            draw(panel, on: canvas, x0: Double(p) * panelWidth + left, y0: titleHeight + top, axisRoom: axisRooms[p])
        }
        return canvas
    }

    static func draw(_ panel: Panel, on canvas: Canvas, x0: Double, y0: Double, axisRoom: Double) {
        let (lo, hi) = (panel.yRange.lowerBound, panel.yRange.upperBound)
        func yPosition(_ v: Double) -> Double { y0 + plotHeight - (v - lo) / (hi - lo) * plotHeight }
        func xPosition(_ i: Int, of n: Int) -> Double {
            switch panel.x {
            case .unit: return x0 + (n > 1 ? Double(i) / Double(n - 1) : 0) * plotWidth
            case .categories(let names):
                let k = Swift.max(names.count, 1)
                return x0 + (Double(i) + 0.5) / Double(k) * plotWidth
            }
        }
        canvas.text(canvas.fitted(panel.title, maxWidth: plotWidth, size: titleSize, bold: true), x: x0 + plotWidth / 2, y: y0 - 10,
                    size: titleSize, bold: true, anchor: .middle)
        // Grid and y ticks.
        for v in niceTicks(lo, hi) {
            let y = yPosition(v)
            canvas.line([(x0, y), (x0 + plotWidth, y)], color: .grid, lineWidth: 0.8)
            canvas.line([(x0 - 4, y), (x0, y)], color: .axis)
            canvas.text(tickLabel(v), x: x0 - 6, y: y + 3.5, size: tickSize, anchor: .end)
        }
        if panel.zeroLine, lo < 0, hi > 0 {
            canvas.line([(x0, yPosition(0)), (x0 + plotWidth, yPosition(0))], color: .axis, lineWidth: 1, dash: [4, 3])
        }
        canvas.text(panel.yLabel, x: x0 - 46, y: y0 + plotHeight / 2, size: labelSize, anchor: .middle, angle: -90)
        // x ticks.
        let bottom = y0 + plotHeight
        switch panel.x {
        case .unit:
            for v in niceTicks(0, 1) {
                let x = x0 + v * plotWidth
                canvas.line([(x, bottom), (x, bottom + 4)], color: .axis)
                canvas.text(tickLabel(v), x: x, y: bottom + 15, size: tickSize, anchor: .middle)
            }
        case .categories(let names):
            // Every category gets a tick; labels thin out to one per 16 px (the first and last kept).
            let every = Swift.max(1, Int((Double(names.count) * 16 / plotWidth).rounded(.up)))
            for (i, name) in names.enumerated() {
                let x = xPosition(i, of: names.count)
                canvas.line([(x, bottom), (x, bottom + 4)], color: .axis)
                guard i == names.count - 1 || (i % every == 0 && names.count - 1 - i >= every) else { continue }
                canvas.text(name, x: x + 3, y: bottom + 10, size: tickSize, anchor: .end, angle: -45)
            }
        }
        canvas.text(panel.xLabel, x: x0 + plotWidth / 2, y: bottom + axisRoom - 6, size: labelSize, anchor: .middle)
        canvas.strokeRect(x: x0, y: y0, width: plotWidth, height: plotHeight, color: .axis)
        // Curves, cut to the plot.
        canvas.clipped(x: x0, y: y0, width: plotWidth, height: plotHeight) {
            for (k, series) in panel.series.enumerated() {
                let points = series.values.enumerated().map { i, v in
                    (x: xPosition(i, of: series.values.count), y: v.isNaN ? Double.nan : yPosition(Double(v)))
                }
                canvas.line(points, color: .series(k), lineWidth: 1.8)
                if case .categories(let names) = panel.x, names.count <= 40 {
                    for p in points where p.y.isFinite { canvas.circle(x: p.x, y: p.y, radius: 2.5, color: .series(k)) }
                }
            }
        }
        // Legend under the axis.
        var y = bottom + axisRoom + 10
        for (k, series) in panel.series.enumerated() {
            canvas.line([(x0, y - 4), (x0 + 22, y - 4)], color: .series(k), lineWidth: 2.5)
            canvas.text(canvas.fitted(series.name, maxWidth: plotWidth - 28, size: labelSize), x: x0 + 28, y: y, size: labelSize)
            y += legendLine
        }
    }

    /// About five round values covering [lo, hi]: steps of 1, 2, 2.5 or 5 times a power of ten.
    public static func niceTicks(_ lo: Double, _ hi: Double) -> [Double] {
        guard hi > lo, lo.isFinite, hi.isFinite else { return [lo] }
        let raw = (hi - lo) / 5
        let power = pow(10, floor(log10(raw)))
        let step = [1, 2, 2.5, 5, 10].map { $0 * power }.first { $0 >= raw } ?? 10 * power
        // k * step, computed as k * mantissa / 10^-e for small steps so 0.6 is 0.6, not 0.6000000000000001.
        let inverse = power < 1 ? (1 / power).rounded() : 1
        let mantissa = step * inverse
        let first = Int(ceil(lo / step - 1e-9)), last = Int(floor(hi / step + 1e-9))
        return first <= last ? (first...last).map { Double($0) * mantissa / inverse } : [lo]
    }

    /// Short tick text: "0", "0.25", "1e-05".
    public static func tickLabel(_ v: Double) -> String {
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1e-3, a < 1e5 {
            var s = String(format: "%.3f", v)
            while s.hasSuffix("0") { s.removeLast() }
            if s.hasSuffix(".") { s.removeLast() }
            return s
        }
        return String(format: "%.2g", v)
    }
}
