import Figures
import Foundation
import ImageIO
import Testing
import TestSupport

func tempFolder() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-figures-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

func pixel(_ image: RGBImage, _ x: Int, _ y: Int) -> [UInt8] {
    let i = (y * image.width + x) * 3
    return Array(image.pixels[i..<(i + 3)])
}

/// A w x h image whose pixel (x, y) is (x * 7, y * 5, 90) mod 256: any misplacement shows.
func pattern(_ w: Int, _ h: Int) -> RGBImage {
    var pixels: [UInt8] = []
    for i in 0..<(w * h) {
        let x = i % w, y = i / w
        pixels += [UInt8(x * 7 % 256), UInt8(y * 5 % 256), 90]
    }
    return RGBImage(width: w, height: h, pixels: pixels)
}

@Suite(.timed) struct FiguresTests {
    @Test func textIsSetInAFont() throws {
        let canvas = try Canvas(width: 200, height: 40)
        canvas.text("Grad-CAM 0.87", x: 10, y: 25, size: 14)
        let image = try canvas.rendered()
        let dark = (0..<(200 * 40)).filter { image.pixels[3 * $0] < 128 }
        // Glyphs cover part of the text box and nothing outside it.
        #expect(dark.count > 80 && dark.count < 2000)
        let right = 10 + Int(canvas.textWidth("Grad-CAM 0.87", size: 14)) + 1
        #expect(dark.allSatisfy { i in i % 200 >= 9 && i % 200 < right && i / 200 >= 10 && i / 200 <= 29 })
        // Wider text is wider; anchors move it.
        #expect(canvas.textWidth("Grad-CAM++", size: 14) > canvas.textWidth("Grad-CAM", size: 14))
        #expect(canvas.fitted("a rather long method name", maxWidth: 60, size: 12).hasSuffix("…"))
        #expect(canvas.textWidth(canvas.fitted("a rather long method name", maxWidth: 60, size: 12), size: 12) <= 60)
    }

    /// Images land unchanged where the grid puts them (drawn at their own size), and every
    /// label adds ink around them.
    @Test func gridPlacesImagesExactly() throws {
        let a = pattern(40, 30), b = pattern(40, 30)
        let bare = try ImageGrid.canvas(rows: [[.init(a), .init(b)]]).rendered()
        #expect(bare.width == 10 + 40 + 10 + 40 + 10 && bare.height == 10 + 30 + 10)
        var found = 0
        for y0 in 0..<(bare.height - 29) {
            for x0 in 0..<(bare.width - 39) where pixel(bare, x0, y0) == pixel(a, 0, 0) && pixel(bare, x0 + 39, y0 + 29) == pixel(a, 39, 29) {
                let same = (0..<30).allSatisfy { y in (0..<40).allSatisfy { x in pixel(bare, x0 + x, y0 + y) == pixel(a, x, y) } }
                if same { found += 1 }
            }
        }
        #expect(found == 2)
        let labelled = try ImageGrid.canvas(title: "chelsea.png", subtitle: "mobilenet_v2", rows: [[.init(a, title: "input"), .init(b, title: "gradcam",
                        colorBar: ColorBar(colormap: .viridis, low: 0, high: 1))]], columnHeaders: ["x", "y"], rowHeaders: ["row"]).rendered()
        #expect(labelled.height > bare.height + 50 && labelled.width > bare.width)
    }

    /// Titles shrink a little, then wrap at name boundaries, and only then lose their end.
    @Test func titlesShrinkOrWrapInsteadOfTruncating() throws {
        let canvas = try Canvas(width: 10, height: 10)
        #expect(canvas.wrapped("gradcam", maxWidth: 200, size: 11, minSize: 8) == (["gradcam"], 11))
        let tight = canvas.textWidth("gradcam", size: 11) - 2
        let shrunk = canvas.wrapped("gradcam", maxWidth: tight, size: 11, minSize: 8)
        #expect(shrunk.lines == ["gradcam"] && shrunk.size < 11 && shrunk.size >= 0.85 * 11)
        let name = "features.16.conv.0.0"
        let width = canvas.textWidth("features.16.", size: 11) + 1
        let layout = canvas.wrapped(name, maxWidth: width, size: 11, minSize: 8)
        #expect(layout.lines.count == 2 && layout.lines.joined() == name, "\(layout)")
        #expect(layout.lines.allSatisfy { canvas.textWidth($0, size: layout.size) <= width })
        let long = canvas.wrapped("integrated_gradients_with_a_very_long_suffix_name", maxWidth: 40, size: 11, minSize: 8)
        #expect(long.lines.count == 2 && long.size == 8 && long.lines[1].hasSuffix("…"), "\(long)")
        #expect(long.lines.allSatisfy { canvas.textWidth($0, size: 8) <= 40 })
        // A 32-pixel image with a title gets a 96-unit cell; a bare one keeps its size.
        let small = pattern(32, 32)
        #expect(try ImageGrid.canvas(rows: [[.init(small, title: "guided_backprop")]]).rendered().width == 10 + 96 + 10)
        #expect(try ImageGrid.canvas(rows: [[.init(small)]]).rendered().width == 10 + 32 + 10)
        // A colour bar at the narrowest cell keeps its end labels apart.
        _ = try ImageGrid.canvas(rows: [[.init(small, colorBar: ColorBar(colormap: .viridis, low: -0.000123, high: 0.000456))]]).rendered()
    }

    @Test func colorBarRunsThroughTheMap() throws {
        let bar = ColorBar(colormap: .rdbu, low: -2, high: 2)
        let grid = try ImageGrid.canvas(rows: [[.init(pattern(100, 20), colorBar: bar)]]).rendered()
        // The bar sits 5 units under the image: left end blue, middle white, right end red.
        let y = 10 + 20 + 5 + 4
        let left = pixel(grid, 12, y), middle = pixel(grid, 60, y), right = pixel(grid, 108, y)
        #expect(left[2] > left[0] + 60 && right[0] > right[2] + 60, "\(left) \(right)")
        #expect(middle.allSatisfy { $0 > 235 }, "\(middle)")
        #expect(ImageGrid.valueLabel(-0.000045678) == "-4.57e-05" && ImageGrid.valueLabel(12.34) == "12.3" && ImageGrid.valueLabel(0) == "0")
    }

    @Test func chartDrawsCurvesWhereTheValuesAre() throws {
        let panel = LineChart.Panel(title: "Deletion", xLabel: "fraction of pixels deleted", yLabel: "p(target)", yRange: 0...1, x: .unit,
                                    series: [.init(name: "flat  AUC 0.500", values: [0.5, 0.5, 0.5])])
        let chart = try LineChart.canvas(title: "chelsea.png", panels: [panel, panel])
        let image = try chart.rendered()
        // Plot of the first panel: x 62...362, y 26+28 ... +210; the curve at half height.
        let y = Int(26 + 28 + 105)
        let blue = Color.series(0)
        let hits = (70..<350).filter { x in
            let p = pixel(image, x, y)
            return abs(Int(p[0]) - Int(blue.r * 255)) < 40 && abs(Int(p[2]) - Int(blue.b * 255)) < 40
        }
        #expect(hits.count > 250, "\(hits.count) of 280 columns show the curve")
        #expect(LineChart.niceTicks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1])
        #expect(LineChart.niceTicks(-1, 1) == [-1, -0.5, 0, 0.5, 1])
        #expect(LineChart.niceTicks(0, 0.37).first == 0 && LineChart.niceTicks(0, 0.37).count >= 4)
        #expect(LineChart.tickLabel(0.25) == "0.25" && LineChart.tickLabel(-1) == "-1" && LineChart.tickLabel(0) == "0")
    }

    @Test func vectorFormatsAreWrittenWhole() throws {
        let folder = try tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let grid = try ImageGrid.canvas(title: "figure", rows: [[.init(pattern(16, 16), title: "tile")]])
        let names = try grid.write(into: folder, stem: "grid", formats: try FigureFormat.list("png, svg,pdf,png"))
        #expect(names == ["grid.png", "grid.svg", "grid.pdf"])
        #expect(try RGBImage(contentsOf: folder.appendingPathComponent("grid.png")).width == Int(grid.width))
        let svg = try String(contentsOf: folder.appendingPathComponent("grid.svg"), encoding: .utf8)
        #expect(svg.contains("<svg") && svg.contains("<image") && svg.contains("glyph"))
        let pdf = try Data(contentsOf: folder.appendingPathComponent("grid.pdf"))
        #expect(pdf.starts(with: Array("%PDF".utf8)))
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() == ["grid.pdf", "grid.png", "grid.svg"])
        #expect(throws: FigureError.self) { try FigureFormat.list("png,eps") }
        #expect(throws: FigureError.self) { try FigureFormat.list(" ") }
        // A folder that is not there: an error, and nothing written.
        #expect(throws: (any Error).self) { try grid.write(to: folder.appendingPathComponent("no/such.svg"), format: .svg) }
    }

    @Test func oversizedFiguresAreRefused() {
        #expect(throws: FigureError.self) { try Canvas(width: 100_000, height: 10) }
        #expect(throws: FigureError.self) { try ImageGrid.canvas(rows: [[nil]]) }
    }
}

@Suite(.timed) struct HTMLReportTests {
    @Test func pagesEscapeTextAndLinkRelatively() throws {
        let report = HTMLReport(title: "a <b> & \"c\"", sections: [
            .init("Run", [.facts([("command", "loupe saliency --target 'tabby cat'")]), .code("x < y")]),
            .init("Maps", [.figure("cat dog/grid.png", caption: "grid"), .figure("cat/metrics.pdf", caption: "metrics"),
                           .gallery([("a#1.png", "one")]), .table(header: ["method", "AUC"], rows: [["gradcam", "0.25"]])]),
        ])
        let html = report.html()
        #expect(html.contains("<title>a &lt;b&gt; &amp; &quot;c&quot;</title>"))
        #expect(html.contains("src=\"cat%20dog/grid.png\"") && html.contains("src=\"a%231.png\""))
        #expect(html.contains("<a href=\"cat/metrics.pdf\">metrics (PDF)</a>") && !html.contains("src=\"cat/metrics.pdf\""))
        #expect(html.contains("<td class=\"num\">0.25</td>") && html.contains("x &lt; y"))
        #expect(!html.contains("http://") && !html.contains("https://"))
        let folder = try tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try report.write(to: folder.appendingPathComponent("index.html"))
        #expect(try String(contentsOf: folder.appendingPathComponent("index.html"), encoding: .utf8) == html)
    }
}
