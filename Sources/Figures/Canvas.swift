import CCairo
import Foundation
import ImageIO

/// The file formats a figure is written in: PNG for screens, SVG and PDF (vector text and
/// lines, images embedded at their own resolution) for papers.
public enum FigureFormat: String, CaseIterable, Sendable {
    case png, svg, pdf

    /// A comma list such as "png,svg".
    public static func list(_ text: String) throws -> [FigureFormat] {
        let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        var formats: [FigureFormat] = []
        for part in parts {
            guard let format = FigureFormat(rawValue: part) else {
                throw FigureError("unknown figure format \(part); known: png, svg, pdf")
            }
            if !formats.contains(format) { formats.append(format) }
        }
        guard !formats.isEmpty else { throw FigureError("no figure format given; known: png, svg, pdf") }
        return formats
    }
}

/// A figure that cannot be drawn or written: too large a canvas, a Cairo failure, a file that
/// cannot be written (the description says which).
public struct FigureError: Error, CustomStringConvertible, Sendable {
    /// What failed, one line.
    public let description: String
    /// An error with this description.
    public init(_ description: String) { self.description = description }
}

/// An RGB colour, components in [0, 1].
public struct Color: Sendable, Equatable {
    /// Red, green and blue, each in [0, 1].
    public var r, g, b: Double
    /// A colour from components in [0, 1].
    public init(_ r: Double, _ g: Double, _ b: Double) { self.r = r; self.g = g; self.b = b }
    /// A colour from 8-bit components.
    public init(_ c: (UInt8, UInt8, UInt8)) { self.init(Double(c.0) / 255, Double(c.1) / 255, Double(c.2) / 255) }
    /// Near-black, for titles, labels and tick text.
    public static let text = Color(0.1, 0.1, 0.1)
    /// Light grey, for grid lines.
    public static let grid = Color(0.85, 0.85, 0.85)
    /// Dark grey, for axes and frames.
    public static let axis = Color(0.35, 0.35, 0.35)

    /// Matplotlib's "tab10" cycle: distinct line colours for up to ten series, then repeating.
    public static func series(_ i: Int) -> Color {
        let tab10: [UInt32] = [0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf]
        let c = tab10[i % tab10.count]
        return Color((UInt8((c >> 16) & 255), UInt8((c >> 8) & 255), UInt8(c & 255)))
    }
}

/// A drawing in figure units (1 unit = 1 PNG pixel = 1 pt in SVG and PDF), recorded once by Cairo
/// and replayed into each format. Text is set in DejaVu Sans through Cairo and FreeType.
public final class Canvas {
    /// Width in figure units.
    public let width: Double
    /// Height in figure units.
    public let height: Double
    let surface: OpaquePointer
    let cr: OpaquePointer
    /// The largest side Cairo's image surfaces take.
    public static let maximumSide = 32767.0

    /// A white canvas of width x height figure units; throws ``FigureError`` beyond
    /// ``maximumSide`` or when Cairo cannot make the surface.
    public init(width: Double, height: Double) throws {
        guard width >= 1, height >= 1, width <= Self.maximumSide, height <= Self.maximumSide else {
            throw FigureError("a figure of \(Int(width))x\(Int(height)) is too large (at most \(Int(Self.maximumSide)) on a side)")
        }
        self.width = width.rounded(.up)
        self.height = height.rounded(.up)
        var extents = cairo_rectangle_t(x: 0, y: 0, width: self.width, height: self.height)
        surface = cairo_recording_surface_create(CAIRO_CONTENT_COLOR_ALPHA, &extents)
        cr = cairo_create(surface)
        cairo_set_source_rgb(cr, 1, 1, 1)
        cairo_paint(cr)
    }

    deinit {
        cairo_destroy(cr)
        cairo_surface_destroy(surface)
    }

    func setColor(_ c: Color) { cairo_set_source_rgb(cr, c.r, c.g, c.b) }

    /// Fills the rectangle with `color`.
    public func fill(x: Double, y: Double, width: Double, height: Double, color: Color) {
        setColor(color)
        cairo_rectangle(cr, x, y, width, height)
        cairo_fill(cr)
    }

    /// Outlines the rectangle with `color`, `lineWidth` units wide.
    public func strokeRect(x: Double, y: Double, width: Double, height: Double, color: Color, lineWidth: Double = 1) {
        setColor(color)
        cairo_set_line_width(cr, lineWidth)
        cairo_rectangle(cr, x, y, width, height)
        cairo_stroke(cr)
    }

    /// A polyline; NaN points break it into pieces.
    public func line(_ points: [(x: Double, y: Double)], color: Color, lineWidth: Double = 1, dash: [Double] = []) {
        setColor(color)
        cairo_set_line_width(cr, lineWidth)
        cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND)
        dash.withUnsafeBufferPointer { cairo_set_dash(cr, $0.baseAddress, Int32(dash.count), 0) }
        var drawing = false
        for p in points {
            guard p.x.isFinite, p.y.isFinite else { drawing = false; continue }
            if drawing { cairo_line_to(cr, p.x, p.y) } else { cairo_move_to(cr, p.x, p.y); drawing = true }
        }
        cairo_stroke(cr)
        cairo_set_dash(cr, nil, 0, 0)
    }

    /// Draws what `body` draws, cut to the rectangle.
    public func clipped(x: Double, y: Double, width: Double, height: Double, _ body: () throws -> Void) rethrows {
        cairo_save(cr)
        cairo_rectangle(cr, x, y, width, height)
        cairo_clip(cr)
        defer { cairo_restore(cr) }
        try body()
    }

    /// Fills a disc of `radius` centred at (x, y).
    public func circle(x: Double, y: Double, radius: Double, color: Color) {
        setColor(color)
        cairo_arc(cr, x, y, radius, 0, 2 * Double.pi)
        cairo_fill(cr)
    }

    /// `image` scaled into the rectangle; `smooth` false keeps pixels square (for small maps).
    public func image(_ image: RGBImage, x: Double, y: Double, width: Double, height: Double, smooth: Bool = true) throws {
        let stride = Int(cairo_format_stride_for_width(CAIRO_FORMAT_RGB24, Int32(image.width)))
        guard let source = cairo_image_surface_create(CAIRO_FORMAT_RGB24, Int32(image.width), Int32(image.height)),
              cairo_surface_status(source) == CAIRO_STATUS_SUCCESS, let data = cairo_image_surface_get_data(source) else {
            throw FigureError("cannot make a \(image.width)x\(image.height) image surface (out of memory?)")
        }
        defer { cairo_surface_destroy(source) }
        cairo_surface_flush(source)
        image.pixels.withUnsafeBufferPointer { p in
            for row in 0..<image.height {
                let line = UnsafeMutableRawPointer(data + row * stride).assumingMemoryBound(to: UInt32.self)
                for col in 0..<image.width {
                    let i = (row * image.width + col) * 3
                    line[col] = UInt32(p[i]) << 16 | UInt32(p[i + 1]) << 8 | UInt32(p[i + 2])
                }
            }
        }
        cairo_surface_mark_dirty(source)
        cairo_save(cr)
        cairo_translate(cr, x, y)
        cairo_scale(cr, width / Double(image.width), height / Double(image.height))
        cairo_set_source_surface(cr, source, 0, 0)
        cairo_pattern_set_filter(cairo_get_source(cr), smooth ? CAIRO_FILTER_GOOD : CAIRO_FILTER_NEAREST)
        cairo_rectangle(cr, 0, 0, Double(image.width), Double(image.height))
        cairo_fill(cr)
        cairo_restore(cr)
    }

    /// Where a text's anchor point lies along it: its start, middle or end.
    public enum Anchor: Sendable { case start, middle, end }

    func selectFont(size: Double, bold: Bool) {
        cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL)
        cairo_set_font_size(cr, size)
    }

    /// The advance width of `text` in this font.
    public func textWidth(_ text: String, size: Double, bold: Bool = false) -> Double {
        selectFont(size: size, bold: bold)
        var extents = cairo_text_extents_t()
        cairo_text_extents(cr, text, &extents)
        return extents.x_advance
    }

    /// `text` with its baseline at y, anchored at x; `angle` in degrees turns it about (x, y)
    /// (negative: counterclockwise, for rising labels).
    public func text(_ text: String, x: Double, y: Double, size: Double = 12, bold: Bool = false, color: Color = .text,
                     anchor: Anchor = .start, angle: Double = 0) {
        let width = textWidth(text, size: size, bold: bold)
        cairo_save(cr)
        cairo_translate(cr, x, y)
        cairo_rotate(cr, angle * Double.pi / 180)
        let dx: Double = anchor == .start ? 0 : anchor == .middle ? -width / 2 : -width
        setColor(color)
        cairo_move_to(cr, dx, 0)
        cairo_show_text(cr, text)
        cairo_restore(cr)
    }

    /// `text` laid out within `maxWidth`: on one line at `size` when it fits, or shrunk a little
    /// (to 85%, not below `minSize`); else wrapped onto at most `maxLines` lines at the largest
    /// size down to `minSize` (in steps of 0.5) where it fits, broken after ". _ - / , ·" or a
    /// space (inside a word only when the word alone is wider than the line). Only when even
    /// that does not hold is the last line cut with an ellipsis.
    public func wrapped(_ text: String, maxWidth: Double, size: Double, minSize: Double, bold: Bool = false,
                        maxLines: Int = 2) -> (lines: [String], size: Double) {
        func fits(_ t: some StringProtocol, _ s: Double) -> Bool { textWidth(String(t), size: s, bold: bold) <= maxWidth }
        let smallest = Swift.min(size, minSize), lines = Swift.max(1, maxLines)
        let sizes = stride(from: size, through: smallest, by: -0.5).map { $0 }
        if let s = sizes.first(where: { $0 >= Swift.max(smallest, 0.85 * size) && fits(text, $0) }) { return ([text], s) }
        // Whole words first, at the largest size that holds them.
        for s in sizes {
            var cut = false, broken = false
            let layout = wrapping(text, size: s, maxLines: lines, fits: { fits($0, s) }, cut: { cut = true; return $0 }, broke: { broken = true })
            if !cut && !broken { return layout }
        }
        return wrapping(text, size: smallest, maxLines: lines, fits: { fits($0, smallest) },
                        cut: { fitted($0, maxWidth: maxWidth, size: smallest, bold: bold) }, broke: {})
    }

    private func wrapping(_ text: String, size: Double, maxLines: Int, fits: (Substring) -> Bool, cut: (String) -> String,
                          broke: () -> Void) -> (lines: [String], size: Double) {
        var pieces: [Substring] = [], start = text.startIndex
        for i in text.indices where ". _-/,·".contains(text[i]) {
            pieces.append(text[start...i]); start = text.index(after: i)
        }
        if start < text.endIndex { pieces.append(text[start...]) }
        var lines: [String] = [], line = ""
        for piece in pieces {
            if fits(Substring(line + piece)) { line += piece; continue }
            if !line.isEmpty { lines.append(line); line = "" }
            var rest = piece
            while !rest.isEmpty && !fits(rest) {
                broke()
                // The longest prefix that fits (at least one character).
                var n = 1
                while n < rest.count, fits(rest.prefix(n + 1)) { n += 1 }
                lines.append(String(rest.prefix(n)))
                rest = rest.dropFirst(n)
            }
            line = String(rest)
        }
        if !line.isEmpty { lines.append(line) }
        if lines.count > maxLines {
            // The text after the kept lines, cut to one line.
            let kept = lines.prefix(maxLines - 1)
            lines = Array(kept) + [cut(String(text.dropFirst(kept.map(\.count).reduce(0, +))).trimmingCharacters(in: .whitespaces))]
        }
        return (lines.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }, size)
    }

    /// `text` cut with an ellipsis to fit `maxWidth`.
    public func fitted(_ text: String, maxWidth: Double, size: Double, bold: Bool = false) -> String {
        guard textWidth(text, size: size, bold: bold) > maxWidth else { return text }
        var s = text
        while !s.isEmpty, textWidth(s + "…", size: size, bold: bold) > maxWidth { s.removeLast() }
        return s + "…"
    }

    func check() throws {
        let status = cairo_status(cr)
        guard status == CAIRO_STATUS_SUCCESS else { throw FigureError("drawing failed: \(String(cString: cairo_status_to_string(status)))") }
    }

    /// The figure as pixels, on white.
    public func rendered() throws -> RGBImage {
        try check()
        let (w, h) = (Int(width), Int(height))
        guard let target = cairo_image_surface_create(CAIRO_FORMAT_RGB24, Int32(w), Int32(h)),
              cairo_surface_status(target) == CAIRO_STATUS_SUCCESS else {
            throw FigureError("cannot make a \(w)x\(h) image surface (out of memory?)")
        }
        defer { cairo_surface_destroy(target) }
        try replay(into: target)
        cairo_surface_flush(target)
        guard let data = cairo_image_surface_get_data(target) else { throw FigureError("cannot read the rendered figure") }
        let stride = Int(cairo_image_surface_get_stride(target))
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        for row in 0..<h {
            let line = UnsafeRawPointer(data + row * stride).assumingMemoryBound(to: UInt32.self)
            for col in 0..<w {
                let v = line[col], i = (row * w + col) * 3
                pixels[i] = UInt8((v >> 16) & 255); pixels[i + 1] = UInt8((v >> 8) & 255); pixels[i + 2] = UInt8(v & 255)
            }
        }
        return RGBImage(width: w, height: h, pixels: pixels)
    }

    func replay(into target: OpaquePointer) throws {
        let out = cairo_create(target)
        defer { cairo_destroy(out) }
        cairo_set_source_surface(out, surface, 0, 0)
        cairo_paint(out)
        let status = cairo_status(out)
        guard status == CAIRO_STATUS_SUCCESS else { throw FigureError("drawing failed: \(String(cString: cairo_status_to_string(status)))") }
    }

    /// Writes the figure as `url` with the format's extension, whole or not at all.
    public func write(to url: URL, format: FigureFormat) throws {
        switch format {
        case .png:
            try rendered().writePNG(to: url)
        case .svg, .pdf:
            try check()
            let temp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
            defer { try? FileManager.default.removeItem(at: temp) }
            guard let target = format == .svg ? cairo_svg_surface_create(temp.path, width, height)
                                              : cairo_pdf_surface_create(temp.path, width, height) else {
                throw FigureError("cannot write \(url.path)")
            }
            try replay(into: target)
            cairo_surface_finish(target)
            let status = cairo_surface_status(target)
            cairo_surface_destroy(target)
            guard status == CAIRO_STATUS_SUCCESS else {
                throw FigureError("cannot write \(url.path): \(String(cString: cairo_status_to_string(status)))")
            }
            guard rename(temp.path, url.path) == 0 else {
                throw FigureError("cannot write \(url.path): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Writes `<stem>.<format>` in `folder` for each format; returns the file names.
    @discardableResult
    public func write(into folder: URL, stem: String, formats: [FigureFormat]) throws -> [String] {
        try formats.map { format in
            let name = stem + "." + format.rawValue
            try write(to: folder.appendingPathComponent(name), format: format)
            return name
        }
    }
}
