import Foundation
import ImageIO

/// A colour scale under a map: the colour map from `low` (left) to `high` (right) in the map's
/// own units, ticked at both ends and in the middle.
public struct ColorBar: Sendable {
    /// The colour map drawn from `low` (bottom) to `high` (top).
    public var colormap: Colormap
    /// The value at the bottom of the bar.
    public var low: Float
    /// The value at the top of the bar.
    public var high: Float
    /// A bar of `colormap` from `low` to `high`.
    public init(colormap: Colormap, low: Float, high: Float) { self.colormap = colormap; self.low = low; self.high = high }

    /// The colour bar of a scaled attribution map.
    public init(_ map: ScaledMap, colormap: Colormap) {
        self.init(colormap: colormap, low: map.range.low, high: map.range.high)
    }
}

/// Labelled grids of images: a title, column headers, row headers, and per cell a title, the
/// image, a caption and a colour bar. Saliency grids, sanity map grids, visualization sprites and
/// inversion strips are all this.
public enum ImageGrid {
    /// One image of the grid with its optional title (above), caption (below) and colour bar.
    public struct Cell: Sendable {
        /// The picture.
        public var image: RGBImage
        /// Text above the image (e.g. a method's name).
        public var title: String?
        /// Text below the image (e.g. a score or a layer).
        public var caption: String?
        /// A colour bar to the image's right, in the map's units.
        public var colorBar: ColorBar?
        /// False keeps pixels square when a small image is drawn large.
        public var smooth: Bool
        /// A cell showing `image`, smooth-scaled unless `smooth` is false.
        public init(_ image: RGBImage, title: String? = nil, caption: String? = nil, colorBar: ColorBar? = nil, smooth: Bool = true) {
            self.image = image; self.title = title; self.caption = caption; self.colorBar = colorBar; self.smooth = smooth
        }
    }

    static let gap = 10.0, margin = 10.0
    static let titleSize = 14.0, headerSize = 11.0, cellTitleSize = 11.0, captionSize = 10.0, tickSize = 9.0

    /// `cells` in a near-square grid (ceil(sqrt(n)) columns, rows filled left to right), each
    /// image 160 units wide at most: a feature visualization's sprite of channels.
    public static func sprite(_ cells: [Cell], title: String, subtitle: String) throws -> Canvas {
        let columns = Swift.max(1, Int(Double(cells.count).squareRoot().rounded(.up)))
        let rows = stride(from: 0, to: cells.count, by: columns).map { Array(cells[$0..<Swift.min($0 + columns, cells.count)]).map(Optional.some) }
        return try canvas(title: title, subtitle: subtitle, rows: rows, tile: 160)
    }

    /// `rows` of cells (nil: an empty place), each image drawn `tile` units wide at most (its
    /// own width when smaller, unless `upscale`), keeping its aspect ratio.
    public static func canvas(title: String? = nil, subtitle: String? = nil, rows: [[Cell?]], columnHeaders: [String]? = nil,
                              rowHeaders: [String]? = nil, tile: Double = 224, upscale: Bool = false) throws -> Canvas {
        let cells = rows.flatMap { $0 }.compactMap { $0 }
        guard !cells.isEmpty else { throw FigureError("a grid needs at least one image") }
        func size(_ image: RGBImage) -> (Double, Double) {
            let scale = upscale ? tile / Double(image.width) : Swift.min(1, tile / Double(image.width))
            return (Double(image.width) * scale, Double(image.height) * scale)
        }
        let cellWidth = cells.map { size($0.image).0 }.max()!
        let imageHeight = cells.map { size($0.image).1 }.max()!
        let hasTitle = cells.contains { $0.title != nil }, hasCaption = cells.contains { $0.caption != nil }
        let hasBar = cells.contains { $0.colorBar != nil }
        let cellHeight = (hasTitle ? 17 : 0) + imageHeight + (hasCaption ? 15 : 0) + (hasBar ? 28 : 0)
        let measure = try Canvas(width: 10, height: 10)
        let rowHeaderWidth = rowHeaders.map { headers in
            Swift.min(180, (headers.map { measure.textWidth($0, size: headerSize, bold: true) }.max() ?? 0) + 12)
        } ?? 0
        let columns = rows.map(\.count).max() ?? 0
        let top = margin + (title == nil ? 0 : 20) + (subtitle == nil ? 0 : 16) + (columnHeaders == nil ? 0 : 18)
        let width = 2 * margin + rowHeaderWidth + Double(columns) * cellWidth + Double(Swift.max(columns - 1, 0)) * gap
        let height = top + Double(rows.count) * cellHeight + Double(Swift.max(rows.count - 1, 0)) * gap + margin
        let titleWidth = Swift.max(title.map { measure.textWidth($0, size: titleSize, bold: true) } ?? 0,
                                   subtitle.map { measure.textWidth($0, size: headerSize) } ?? 0)
        let canvas = try Canvas(width: Swift.max(width, Swift.min(titleWidth, 1200) + 2 * margin), height: height)
        var y = margin
        if let title {
            canvas.text(canvas.fitted(title, maxWidth: canvas.width - 2 * margin, size: titleSize, bold: true), x: margin, y: y + 13,
                        size: titleSize, bold: true)
            y += 20
        }
        if let subtitle {
            canvas.text(canvas.fitted(subtitle, maxWidth: canvas.width - 2 * margin, size: headerSize), x: margin, y: y + 11, size: headerSize,
                        color: .axis)
            y += 16
        }
        let x0 = margin + rowHeaderWidth
        if let columnHeaders {
            for (c, header) in columnHeaders.enumerated() where c < columns {
                canvas.text(canvas.fitted(header, maxWidth: cellWidth, size: headerSize, bold: true),
                            x: x0 + Double(c) * (cellWidth + gap) + cellWidth / 2, y: y + 12, size: headerSize, bold: true, anchor: .middle)
            }
        }
        for (r, row) in rows.enumerated() {
            let rowTop = top + Double(r) * (cellHeight + gap)
            if let rowHeaders, r < rowHeaders.count {
                canvas.text(canvas.fitted(rowHeaders[r], maxWidth: rowHeaderWidth - 10, size: headerSize, bold: true),
                            x: x0 - 8, y: rowTop + (hasTitle ? 17 : 0) + imageHeight / 2 + 4, size: headerSize, bold: true, anchor: .end)
            }
            for (c, cell) in row.enumerated() {
                guard let cell else { continue }
                let left = x0 + Double(c) * (cellWidth + gap)
                var cy = rowTop
                if let t = cell.title {
                    canvas.text(canvas.fitted(t, maxWidth: cellWidth, size: cellTitleSize, bold: true), x: left + cellWidth / 2, y: cy + 12,
                                size: cellTitleSize, bold: true, anchor: .middle)
                }
                if hasTitle { cy += 17 }
                let (w, h) = size(cell.image)
                try canvas.image(cell.image, x: left + (cellWidth - w) / 2, y: cy, width: w, height: h, smooth: cell.smooth)
                cy += imageHeight
                if let caption = cell.caption {
                    canvas.text(canvas.fitted(caption, maxWidth: cellWidth, size: captionSize), x: left + cellWidth / 2, y: cy + 12,
                                size: captionSize, color: .axis, anchor: .middle)
                }
                if hasCaption { cy += 15 }
                if let bar = cell.colorBar { try draw(bar, on: canvas, x: left, y: cy + 5, width: cellWidth) }
            }
        }
        return canvas
    }

    /// A bar 8 units high with ticks and values at both ends and the middle.
    static func draw(_ bar: ColorBar, on canvas: Canvas, x: Double, y: Double, width: Double) throws {
        let ramp = RGBImage(width: 256, height: 1, pixels: (0..<256).flatMap { i -> [UInt8] in
            let (r, g, b) = bar.colormap.color((Float(i) + 0.5) / 256)
            return [r, g, b]
        })
        try canvas.image(ramp, x: x, y: y, width: width, height: 8, smooth: false)
        canvas.strokeRect(x: x, y: y, width: width, height: 8, color: .axis, lineWidth: 0.6)
        let mid = (bar.low + bar.high) / 2
        for (f, v, anchor) in [(0.0, bar.low, Canvas.Anchor.start), (0.5, mid, .middle), (1.0, bar.high, .end)] {
            let tx = x + f * width
            canvas.line([(tx, y + 8), (tx, y + 11)], color: .axis, lineWidth: 0.8)
            canvas.text(valueLabel(v), x: tx, y: y + 20, size: tickSize, color: .axis, anchor: anchor)
        }
    }

    /// Three significant digits: "0", "0.0123", "-4.5e-05", "12.3".
    public static func valueLabel(_ v: Float) -> String {
        if v == 0 { return "0" }
        return String(format: "%.3g", Double(v))
    }
}
