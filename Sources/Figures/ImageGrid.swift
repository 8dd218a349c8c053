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
    /// The narrowest a cell is drawn (a smaller image is scaled up to it, the tile allowing), so
    /// that titles and colour bars have room.
    static let minimumTile = 96.0
    /// The smallest size a title shrinks to before it wraps.
    static let minimumTextSize = 8.0

    /// `cells` in a near-square grid (ceil(sqrt(n)) columns, rows filled left to right), each
    /// image 160 units wide at most: a feature visualization's sprite of channels.
    public static func sprite(_ cells: [Cell], title: String, subtitle: String) throws -> Canvas {
        let columns = Swift.max(1, Int(Double(cells.count).squareRoot().rounded(.up)))
        let rows = stride(from: 0, to: cells.count, by: columns).map { Array(cells[$0..<Swift.min($0 + columns, cells.count)]).map(Optional.some) }
        return try canvas(title: title, subtitle: subtitle, rows: rows, tile: 160)
    }

    /// Text laid out in lines at one size (`Canvas.wrapped`).
    typealias Layout = (lines: [String], size: Double)

    /// The height of `lines` lines of text at `size`.
    static func lineHeight(_ size: Double) -> Double { size + 3 }

    /// `layout` drawn with its first baseline at y.
    static func draw(_ layout: Layout, on canvas: Canvas, x: Double, y: Double, bold: Bool, color: Color = .text, anchor: Canvas.Anchor) {
        for (k, line) in layout.lines.enumerated() {
            canvas.text(line, x: x, y: y + Double(k) * lineHeight(layout.size), size: layout.size, bold: bold, color: color, anchor: anchor)
        }
    }

    /// `rows` of cells (nil: an empty place), each image drawn `tile` units wide at most (its
    /// own width when smaller, unless `upscale`; with titles, headers, captions or colour bars
    /// never narrower than 96 units when the tile allows), keeping its aspect ratio. Titles, headers and captions never truncate while
    /// they can shrink (to 8 units) or wrap (onto two lines; row headers three).
    public static func canvas(title: String? = nil, subtitle: String? = nil, rows: [[Cell?]], columnHeaders: [String]? = nil,
                              rowHeaders: [String]? = nil, tile: Double = 224, upscale: Bool = false) throws -> Canvas {
        let cells = rows.flatMap { $0 }.compactMap { $0 }
        guard !cells.isEmpty else { throw FigureError("a grid needs at least one image") }
        // Text above or under the cells needs room; a bare grid draws images at their size.
        let labelled = columnHeaders != nil || cells.contains { $0.title != nil || $0.caption != nil || $0.colorBar != nil }
        func size(_ image: RGBImage) -> (Double, Double) {
            var scale = upscale ? tile / Double(image.width) : Swift.min(1, tile / Double(image.width))
            let narrowest = labelled ? Swift.min(tile, minimumTile) : 0
            if Double(image.width) * scale < narrowest { scale = narrowest / Double(image.width) }
            return (Double(image.width) * scale, Double(image.height) * scale)
        }
        let cellWidth = cells.map { size($0.image).0 }.max()!
        let imageHeight = cells.map { size($0.image).1 }.max()!
        let measure = try Canvas(width: 10, height: 10)
        func lay(_ text: String, width: Double, size: Double, bold: Bool, lines: Int = 2) -> Layout {
            measure.wrapped(text, maxWidth: width, size: size, minSize: Swift.min(size, minimumTextSize), bold: bold, maxLines: lines)
        }
        func height(_ layouts: [Layout?]) -> Double {
            layouts.compactMap { $0 }.map { Double($0.lines.count) * lineHeight($0.size) }.max() ?? 0
        }
        let titles = rows.map { $0.map { cell in cell?.title.map { lay($0, width: cellWidth, size: cellTitleSize, bold: true) } } }
        let captions = rows.map { $0.map { cell in cell?.caption.map { lay($0, width: cellWidth, size: captionSize, bold: false) } } }
        let titleHeight = height(titles.flatMap { $0 }), captionHeight = height(captions.flatMap { $0 })
        let hasBar = cells.contains { $0.colorBar != nil }
        // A title's first baseline sits 12 below the cell's top, a caption's 12 below the image.
        let titleRoom = titleHeight > 0 ? titleHeight + 3 : 0, captionRoom = captionHeight > 0 ? captionHeight + 2 : 0
        let cellHeight = titleRoom + imageHeight + captionRoom + (hasBar ? 28 : 0)
        let rowHeaderWidth = rowHeaders.map { headers in
            Swift.min(180, (headers.map { measure.textWidth($0, size: headerSize, bold: true) }.max() ?? 0) + 12)
        } ?? 0
        let rowLayouts = rowHeaders?.map { lay($0, width: rowHeaderWidth - 10, size: headerSize, bold: true, lines: 3) }
        let columns = rows.map(\.count).max() ?? 0
        let headerLayouts = columnHeaders?.prefix(columns).map { lay($0, width: cellWidth, size: headerSize, bold: true) }
        let headerRoom = headerLayouts.map { height($0) + 4 } ?? 0
        let top = margin + (title == nil ? 0 : 20) + (subtitle == nil ? 0 : 16) + headerRoom
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
        for (c, layout) in (headerLayouts ?? []).enumerated() {
            draw(layout, on: canvas, x: x0 + Double(c) * (cellWidth + gap) + cellWidth / 2, y: y + 12, bold: true, anchor: .middle)
        }
        for (r, row) in rows.enumerated() {
            let rowTop = top + Double(r) * (cellHeight + gap)
            if let rowLayouts, r < rowLayouts.count {
                let layout = rowLayouts[r]
                let middle = rowTop + titleRoom + imageHeight / 2
                let first = middle + 4 - Double(layout.lines.count - 1) * lineHeight(layout.size) / 2
                draw(layout, on: canvas, x: x0 - 8, y: first, bold: true, anchor: .end)
            }
            for (c, cell) in row.enumerated() {
                guard let cell else { continue }
                let left = x0 + Double(c) * (cellWidth + gap)
                var cy = rowTop
                if let layout = titles[r][c] { draw(layout, on: canvas, x: left + cellWidth / 2, y: cy + 12, bold: true, anchor: .middle) }
                cy += titleRoom
                let (w, h) = size(cell.image)
                try canvas.image(cell.image, x: left + (cellWidth - w) / 2, y: cy, width: w, height: h, smooth: cell.smooth)
                cy += imageHeight
                if let layout = captions[r][c] { draw(layout, on: canvas, x: left + cellWidth / 2, y: cy + 12, bold: false, color: .axis, anchor: .middle) }
                cy += captionRoom
                if let bar = cell.colorBar { try draw(bar, on: canvas, x: left, y: cy + 5, width: cellWidth) }
            }
        }
        return canvas
    }

    /// A bar 8 units high with ticks and values at both ends and the middle; the labels shrink
    /// (to 6.5 units) until the end ones clear each other, and the middle one is left out when it
    /// would touch them.
    static func draw(_ bar: ColorBar, on canvas: Canvas, x: Double, y: Double, width: Double) throws {
        let ramp = RGBImage(width: 256, height: 1, pixels: (0..<256).flatMap { i -> [UInt8] in
            let (r, g, b) = bar.colormap.color((Float(i) + 0.5) / 256)
            return [r, g, b]
        })
        try canvas.image(ramp, x: x, y: y, width: width, height: 8, smooth: false)
        canvas.strokeRect(x: x, y: y, width: width, height: 8, color: .axis, lineWidth: 0.6)
        let mid = (bar.low + bar.high) / 2
        let labels = [valueLabel(bar.low), valueLabel(mid), valueLabel(bar.high)]
        var size = tickSize
        func widths() -> [Double] { labels.map { canvas.textWidth($0, size: size) } }
        while size > 6.5, widths()[0] + widths()[2] + 6 > width { size -= 0.5 }
        let w = widths()
        let showMiddle = w[0] + w[1] / 2 + 4 <= width / 2 && w[2] + w[1] / 2 + 4 <= width / 2
        for (k, (f, anchor)) in [(0.0, Canvas.Anchor.start), (0.5, .middle), (1.0, .end)].enumerated() {
            let tx = x + f * width
            canvas.line([(tx, y + 8), (tx, y + 11)], color: .axis, lineWidth: 0.8)
            if k != 1 || showMiddle { canvas.text(labels[k], x: tx, y: y + 20, size: size, color: .axis, anchor: anchor) }
        }
    }

    /// Three significant digits: "0", "0.0123", "-4.5e-05", "12.3".
    public static func valueLabel(_ v: Float) -> String {
        if v == 0 { return "0" }
        return String(format: "%.3g", Double(v))
    }
}
