import Figures
import Foundation
import ImageIO

/// Builds an atlas's pages from whatever units its folder holds: `index.html` (the model, the
/// layers, the settings, what is done and what is missing), one page per layer (every channel's
/// picture, sortable by mean activation) and one per channel (its pictures, the dataset images
/// that excite it most by mean and by max activation with its activation map over them, the
/// receptive-field crops around the maxima, and the histogram of its mean activation over the
/// images). Needs no model or device: only the folder and the dataset images.
public struct AtlasSite {
    /// The site folder.
    public let folder: AtlasFolder
    /// Its plan, read from `atlas.json`.
    public let plan: AtlasPlan

    /// The site in `folder`; throws when it has no readable `atlas.json`, or holds a unit made
    /// with other settings.
    public init(_ folder: AtlasFolder) throws {
        self.folder = folder
        plan = try folder.plan()
        try folder.checkUnits(plan)
    }

    /// What a merge found: units done, units in all, and which are missing.
    public struct Report: Sendable {
        /// Finished units, and units in the plan.
        public let done: Int, total: Int
        /// Readable names of the missing units, in plan order.
        public let missing: [String]
        /// Whether every unit is there.
        public var complete: Bool { missing.isEmpty }
    }

    /// Which units are finished and which are missing.
    public func status() -> Report {
        let finished = folder.finished()
        let missing = plan.units.filter { !finished.contains(plan.id($0)) }
        return Report(done: plan.units.count - missing.count, total: plan.units.count, missing: missing.map(plan.describe))
    }

    /// One layer's dataset statistics merged over the finished image units.
    struct Merged {
        var mean: [Float], max: [Float]
        var argmax: [Int32]
        /// (channel, image) -> map, for the maps the pages show.
        var maps: [Int: LayerStats.Map] = [:]
        var seen: Int
    }

    /// Writes every page; returns what is done and missing.
    @discardableResult
    public func write() throws -> Report {
        let report = status()
        let finished = folder.finished()
        let s = plan.settings, n = s.images.count
        let imageUnits = plan.units.compactMap { unit -> Range<Int>? in
            if case .images(let r) = unit, finished.contains(plan.id(unit)) { return r } else { return nil }
        }
        var fields: [String: [Int]] = [:]
        var unitSeconds: (channels: Double, channelCount: Int, images: Double, imageCount: Int) = (0, 0, 0, 0)
        for unit in plan.units where finished.contains(plan.id(unit)) {
            let json = try unitRecord(plan.id(unit))
            let seconds = json["seconds"] as? Double ?? 0
            switch unit {
            case .channels(_, let r): unitSeconds.channels += seconds; unitSeconds.channelCount += r.count
            case .images(let r):
                unitSeconds.images += seconds; unitSeconds.imageCount += r.count
                if fields.isEmpty { fields = json["receptive_fields"] as? [String: [Int]] ?? [:] }
            }
        }
        var photos: [Int: RGBImage] = [:]
        func photo(_ i: Int) throws -> RGBImage {
            if let p = photos[i] { return p }
            let p = try Preprocessing(resizeShorter: s.resize, crop: s.inputSize, interpolation: Interpolation(rawValue: s.interpolation) ?? .bilinear).prepare(try RGBImage(contentsOf: URL(fileURLWithPath: s.images[i])))
            photos[i] = p
            return p
        }
        var layerRows: [String] = []
        for (l, layer) in plan.layers.enumerated() {
            let dir = folder.root.appendingPathComponent("layers").appendingPathComponent(layer.stem)
            for sub in ["thumbs", "examples"] {
                try FileManager.default.createDirectory(at: dir.appendingPathComponent(sub), withIntermediateDirectories: true)
            }
            let merged = try merge(layer: l, imageUnits: imageUnits, images: n)
            let byRelevance = s.relevance == nil ? nil : try merge(layer: l, imageUnits: imageUnits, images: n, file: "relevance.stats")
            let channels = plan.channels(of: l)
            var cells: [String] = []
            var made = 0
            for c in channels {
                let unit = AtlasUnit.channels(layer: l, range: blockStart(c, l)..<Swift.min(blockStart(c, l) + s.channelBlock, channels.upperBound))
                let done = finished.contains(plan.id(unit))
                if done { made += 1 }
                let pictures = done ? (0..<s.variants).map { "../../units/\(plan.id(unit))/\(AtlasRunner.pictureFile(channel: c, variant: $0))" } : []
                if done {
                    let picture = try RGBImage(contentsOf: folder.unit(plan.id(unit)).appendingPathComponent(AtlasRunner.pictureFile(channel: c, variant: 0)))
                    try picture.resized(width: 96, height: 96, filter: .bilinear).writePNG(to: dir.appendingPathComponent("thumbs/c\(c).png"))
                }
                let values = (0..<n).map { merged.mean[$0 * layer.channels + c] }.filter { !$0.isNaN }
                let average = values.isEmpty ? Float.nan : values.reduce(0, +) / Float(values.count)
                cells.append(cell(channel: c, picture: done, mean: average))
                try channelPage(layer: l, channel: c, pictures: pictures, merged: merged, relevance: byRelevance, imageUnits: imageUnits,
                                field: fields[layer.name], photo: photo, into: dir)
            }
            try layerPage(l, cells: cells, made: made, into: dir)
            layerRows.append("<tr><td><a href=\"layers/\(HTMLReport.link(layer.stem))/index.html\">\(HTMLReport.escaped(layer.name))</a></td>"
                             + "<td class=\"num\">\(layer.channels)</td><td>\(layer.height)x\(layer.width)</td>"
                             + "<td class=\"num\">\(made) of \(channels.count)</td></tr>")
        }
        try indexPage(report: report, layerRows: layerRows, imagesDone: imageUnits.reduce(0) { $0 + $1.count }, timing: unitSeconds)
        return report
    }

    func blockStart(_ c: Int, _ l: Int) -> Int {
        let first = plan.channels(of: l).lowerBound
        return first + (c - first) / plan.settings.channelBlock * plan.settings.channelBlock
    }

    func unitRecord(_ id: String) throws -> [String: Any] {
        let url = folder.unit(id).appendingPathComponent("unit.json")
        guard let data = FileManager.default.contents(atPath: url.path),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw AtlasError("\(url.path) is not a unit record") }
        return json
    }

    /// Means, maxima and the top maps of layer `l` over every finished image unit: the top-k of
    /// each channel over all images, then the maps of exactly those (image, channel) pairs.
    func merge(layer l: Int, imageUnits: [Range<Int>], images n: Int, file: String = "stats") throws -> Merged {
        let layer = plan.layers[l], c = layer.channels
        var m = Merged(mean: [Float](repeating: .nan, count: n * c), max: [Float](repeating: .nan, count: n * c),
                       argmax: [Int32](repeating: 0, count: n * c), seen: 0)
        func stats(_ r: Range<Int>) throws -> LayerStats {
            let url = folder.unit(plan.id(.images(r))).appendingPathComponent("\(layer.stem).\(file)")
            guard let data = FileManager.default.contents(atPath: url.path) else { throw AtlasError("\(url.path) is missing") }
            let st = try LayerStats(data: data, name: url.path)
            guard st.images == r.count, st.channels == c, st.height == layer.height, st.width == layer.width else {
                throw AtlasError("\(url.path) does not match the plan's layer \(layer.name)")
            }
            return st
        }
        for r in imageUnits {
            let st = try stats(r)
            for b in 0..<r.count { for k in 0..<c {
                m.mean[(r.lowerBound + b) * c + k] = st.mean[b * c + k]
                m.max[(r.lowerBound + b) * c + k] = st.max[b * c + k]
                m.argmax[(r.lowerBound + b) * c + k] = st.argmax[b * c + k]
            } }
            m.seen += r.count
        }
        var wanted = Set<Int>()
        for k in plan.channels(of: l) {
            for i in top(m.mean, channel: k, of: c, images: n) + top(m.max, channel: k, of: c, images: n) { wanted.insert(i * c + k) }
        }
        for r in imageUnits {
            let st = try stats(r)
            for k in 0..<c { for map in st.maps[k] where wanted.contains((r.lowerBound + map.image) * c + k) {
                var global = map
                global.image = r.lowerBound + map.image
                m.maps[global.image * c + k] = global
            } }
        }
        return m
    }

    /// The top images of one channel by `values` ([N][C], NaN where not yet measured).
    func top(_ values: [Float], channel k: Int, of c: Int, images n: Int) -> [Int] {
        let column = (0..<n).map { values[$0 * c + k] }
        return LayerStats.top(plan.settings.top, column).filter { !column[$0].isNaN }
    }

    func cell(channel c: Int, picture: Bool, mean: Float) -> String {
        let image = picture
            ? "<img loading=\"lazy\" src=\"thumbs/c\(c).png\" width=\"96\" height=\"96\" alt=\"channel \(c)\">"
            : "<div class=\"missing\">not made yet</div>"
        let sortKey = mean.isNaN ? "-1e30" : String(mean)
        return "<a class=\"cell\" href=\"c\(c).html\" data-channel=\"\(c)\" data-mean=\"\(sortKey)\">\(image)<span>\(c)</span>"
            + "<span class=\"value\">\(mean.isNaN ? "" : format(mean))</span></a>"
    }

    func layerPage(_ l: Int, cells: [String], made: Int, into dir: URL) throws {
        let layer = plan.layers[l], channels = plan.channels(of: l)
        let grid = """
        <style>
        .grid { display: flex; flex-wrap: wrap; gap: 6px; } .cell { width: 98px; text-align: center; font-size: 11px; color: #333; text-decoration: none; }
        .cell img { border: 1px solid #ddd; display: block; } .cell span { display: block; } .cell .value { color: #777; }
        .missing { width: 96px; height: 96px; border: 1px dashed #bbb; color: #999; display: flex; align-items: center; justify-content: center; }
        button { margin-right: 6px; }
        </style>
        <p>Sort: <button onclick="sortCells('channel')">by channel</button><button onclick="sortCells('mean')">by mean activation over the images</button></p>
        <div class="grid" id="grid">
        \(cells.joined(separator: "\n"))
        </div>
        <script>
        function sortCells(key) {
          var grid = document.getElementById("grid");
          var cells = Array.prototype.slice.call(grid.children);
          cells.sort(function (a, b) { return key === "channel" ? a.dataset.channel - b.dataset.channel : b.dataset.mean - a.dataset.mean; });
          cells.forEach(function (c) { grid.appendChild(c); });
        }
        </script>
        """
        let page = HTMLReport(title: "Atlas of \(plan.settings.model): \(layer.name)", sections: [
            .init("Layer", [.html("<p><a href=\"../../index.html\">atlas index</a></p>"),
                            .facts([("shape", "\(layer.channels) x \(layer.height) x \(layer.width)"),
                                    ("channels in the atlas", "\(channels.lowerBound)..\(channels.upperBound - 1)"),
                                    ("pictures made", "\(made) of \(channels.count)")])]),
            .init("Channels", [.html(grid)]),
        ])
        try page.write(to: dir.appendingPathComponent("index.html"))
    }

    func channelPage(layer l: Int, channel c: Int, pictures: [String], merged m: Merged, relevance: Merged?, imageUnits: [Range<Int>], field: [Int]?,
                     photo: (Int) throws -> RGBImage, into dir: URL) throws {
        let layer = plan.layers[l], s = plan.settings, n = s.images.count
        var sections: [HTMLReport.Section] = []
        let nav = "<p><a href=\"../../index.html\">atlas index</a> · <a href=\"index.html\">\(HTMLReport.escaped(layer.name))</a>"
            + (c > plan.channels(of: l).lowerBound ? " · <a href=\"c\(c - 1).html\">channel \(c - 1)</a>" : "")
            + (c + 1 < plan.channels(of: l).upperBound ? " · <a href=\"c\(c + 1).html\">channel \(c + 1)</a>" : "") + "</p>"
        sections.append(.init("Feature visualization", [.html(nav)] + (pictures.isEmpty
            ? [.paragraph("Not made yet: its unit is missing.")]
            : [.gallery(pictures.enumerated().map { ($0.element, pictures.count > 1 ? "variant \($0.offset)" : "channel \(c): \(s.steps) steps") })])))
        let byMean = top(m.mean, channel: c, of: layer.channels, images: n), byMax = top(m.max, channel: c, of: layer.channels, images: n)
        if m.seen == 0 {
            sections.append(.init("Dataset examples", [.paragraph(s.images.isEmpty ? "The atlas has no --images." : "No image unit is finished yet.")]))
        } else {
            // One colour scale for the channel: its largest activation among the maps shown.
            func scale(_ images: [Int], _ m: Merged) -> Float {
                Swift.max(images.compactMap { m.maps[$0 * layer.channels + c] }.map(\.high).filter(\.isFinite).max() ?? 0, 1e-12)
            }
            /// The photo with the channel's activation (or relevance) over it: the map upsampled
            /// bilinearly, coloured by viridis and blended in where it is strong (transparent at
            /// zero and below).
            func heat(_ image: Int, _ m: Merged, scale: Float) throws -> RGBImage {
                let p = try photo(image)
                guard let map = m.maps[image * layer.channels + c] else { return p }
                let levels = map.values.map { v -> UInt8 in
                    let t = Swift.max(v, 0) / scale
                    return t.isFinite ? UInt8((Swift.min(t, 1) * 255).rounded()) : 0
                }
                let small = RGBImage(width: layer.width, height: layer.height, pixels: levels.flatMap { [$0, $0, $0] })
                let big = try small.resized(width: p.width, height: p.height, filter: .bilinear)
                var pixels = p.pixels
                for i in 0..<(p.width * p.height) {
                    let v = Float(big.pixels[3 * i]) / 255
                    let (r, g, b) = Colormap.viridis.color(v)
                    let a = 0.85 * v.squareRoot()
                    for (k, colour) in [r, g, b].enumerated() {
                        pixels[3 * i + k] = UInt8(((1 - a) * Float(p.pixels[3 * i + k]) + a * Float(colour)).rounded())
                    }
                }
                return RGBImage(width: p.width, height: p.height, pixels: pixels)
            }
            let activationScale = scale(byMean + byMax, m)
            var meanItems: [(file: String, caption: String)] = []
            for (rank, i) in byMean.enumerated() {
                let file = "examples/c\(c)-mean-\(rank).png"
                try heat(i, m, scale: activationScale).resized(width: 112, height: 112, filter: .bilinear).writePNG(to: dir.appendingPathComponent(file))
                meanItems.append((file, "\(name(i)) · mean \(format(m.mean[i * layer.channels + c]))"))
            }
            /// Each image cropped to the receptive field around the channel's maximum in `m`,
            /// with `m`'s map over it, written as examples/c<c>-<kind>-<rank>.png.
            func crops(_ images: [Int], _ m: Merged, scale: Float, kind: String,
                       caption: (_ image: Int, _ x: Int, _ y: Int) -> String) throws -> [(file: String, caption: String)] {
                try images.enumerated().map { rank, i in
                    let file = "examples/c\(c)-\(kind)-\(rank).png"
                    let at = Int(m.argmax[i * layer.channels + c])
                    let (x, y) = (at % layer.width, at / layer.width)
                    try crop(try heat(i, m, scale: scale), x: x, y: y, layer: layer, field: field).resized(width: 112, height: 112, filter: .bilinear)
                        .writePNG(to: dir.appendingPathComponent(file))
                    return (file, caption(i, x, y))
                }
            }
            let maxItems = try crops(byMax, m, scale: activationScale, kind: "max") { i, x, y in
                "\(name(i)) · max \(format(m.max[i * layer.channels + c])) at (\(x), \(y))"
            }
            let values = (0..<n).map { m.mean[$0 * layer.channels + c] }.filter { !$0.isNaN }
            sections.append(.init("Dataset examples: top \(byMean.count) of \(m.seen) images by mean activation", [.gallery(meanItems)]))
            sections.append(.init("By max activation: the receptive field around the maximum", [.gallery(maxItems)]))
            if let r = relevance, let composite = s.relevance {
                // zennit-crp's relevance maximization: the images ranked by the channel's
                // normalized relevance sum (the statistics' mean times the layer's area), each
                // cropped to the receptive field of its most relevant neuron, with the channel's
                // relevance over it.
                let byRelevance = top(r.mean, channel: c, of: layer.channels, images: n)
                let items = try crops(byRelevance, r, scale: scale(byRelevance, r), kind: "relevance") { i, x, y in
                    "\(name(i)) · relevance \(format(r.mean[i * layer.channels + c] * Float(layer.height * layer.width))) at (\(x), \(y))"
                }
                sections.append(.init("Relevance maximization (\(composite), each image's top-1 class): the receptive field around the most relevant neuron",
                                      [.gallery(items)]))
                // Each one's reference heatmap, made by its image unit (the global top images are
                // among the units' own).
                let references = byRelevance.compactMap { i -> (file: String, caption: String)? in
                    guard let unit = imageUnits.first(where: { $0.contains(i) }) else { return nil }
                    let file = AtlasRunner.referenceFile(layer: layer, channel: c, image: i - unit.lowerBound)
                    guard FileManager.default.fileExists(atPath: folder.unit(plan.id(.images(unit))).appendingPathComponent(file).path) else { return nil }
                    return ("../../units/\(plan.id(.images(unit)))/\(file)", name(i))
                }
                sections.append(.init("Their reference heatmaps (zennit-crp's: relevance from the layer at that neuron alone, cut where it lies)",
                                      [.gallery(references)]))
            }
            sections.append(.init("Mean activation over \(values.count) images", [.html(histogram(values))]))
        }
        let page = HTMLReport(title: "Atlas of \(s.model): \(layer.name) channel \(c)", sections: sections)
        try page.write(to: dir.appendingPathComponent("c\(c).html"))
    }

    func name(_ i: Int) -> String { URL(fileURLWithPath: plan.settings.images[i]).lastPathComponent }

    /// The square around unit (x, y) of the layer that its receptive field covers, clamped to the image.
    func crop(_ image: RGBImage, x: Int, y: Int, layer: AtlasLayer, field: [Int]?) throws -> RGBImage {
        let s = image.width
        guard let f = field, f.count == 4 else { return image }
        let (cx, cy) = (layer.width / 2, layer.height / 2)
        let (sx, sy) = (Double(s) / Double(layer.width), Double(image.height) / Double(layer.height))
        let side = Swift.min(Swift.max(f[2] - f[0] + 1, f[3] - f[1] + 1, 8), s, image.height)
        let x0 = Swift.min(Swift.max(f[0] + Int((Double(x - cx) * sx).rounded()), 0), s - side)
        let y0 = Swift.min(Swift.max(f[1] + Int((Double(y - cy) * sy).rounded()), 0), image.height - side)
        var pixels = [UInt8](repeating: 0, count: side * side * 3)
        for row in 0..<side {
            let from = ((y0 + row) * image.width + x0) * 3
            pixels.replaceSubrange((row * side * 3)..<((row + 1) * side * 3), with: image.pixels[from..<(from + side * 3)])
        }
        return RGBImage(width: side, height: side, pixels: pixels)
    }

    /// An inline SVG histogram of `values` with 20 bins and labelled ends.
    func histogram(_ all: [Float]) -> String {
        let values = all.filter(\.isFinite)
        guard let lo = values.min(), let hi = values.max() else { return "<p>No finite values.</p>" }
        let bins = 20, (w, h) = (400.0, 120.0)
        var counts = [Int](repeating: 0, count: bins)
        for v in values { counts[hi > lo ? Swift.min(Int(Double(v - lo) / Double(hi - lo) * Double(bins)), bins - 1) : 0] += 1 }
        let top = Double(counts.max() ?? 1)
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w) + 60)\" height=\"\(Int(h) + 40)\" role=\"img\" aria-label=\"histogram\">"
        svg += "<g transform=\"translate(40,10)\">"
        for (i, k) in counts.enumerated() {
            let bh = Double(k) / top * h
            svg += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#3b528b\"><title>%d</title></rect>",
                          Double(i) * w / Double(bins), h - bh, w / Double(bins) - 1, bh, k)
        }
        svg += "<line x1=\"0\" y1=\"\(h)\" x2=\"\(w)\" y2=\"\(h)\" stroke=\"#333\"/>"
        svg += "<text x=\"0\" y=\"\(h + 16)\" font-size=\"11\">\(format(lo))</text>"
        svg += "<text x=\"\(w)\" y=\"\(h + 16)\" font-size=\"11\" text-anchor=\"end\">\(format(hi))</text>"
        svg += "<text x=\"-6\" y=\"10\" font-size=\"11\" text-anchor=\"end\">\(Int(top))</text>"
        svg += "<text x=\"\(w / 2)\" y=\"\(h + 30)\" font-size=\"11\" text-anchor=\"middle\">mean activation (images per bin)</text></g></svg>"
        return svg
    }

    func indexPage(report: Report, layerRows: [String], imagesDone: Int,
                   timing: (channels: Double, channelCount: Int, images: Double, imageCount: Int)) throws {
        let s = plan.settings
        var facts: [(String, String)] = [
            ("model", s.model), ("weights", s.weights),
            ("layers", s.layers.joined(separator: ", ")),
            ("channels", "\(plan.channelCount)" + (s.channels.map { " (channels \($0.lowerBound)..\($0.upperBound) of each layer)" } ?? "")),
            ("images", "\(s.images.count) (\(imagesDone) measured), input \(s.inputSize)x\(s.inputSize)"),
            ("feature visualization", "\(s.steps) steps at \(s.size)x\(s.size), Adam \(s.learningRate), Fourier basis, decorrelated colour, standard transforms, seed \(s.seed)"
                + (s.variants > 1 ? ", \(s.variants) variants per channel (diversity \(s.diversityWeight))" : "")),
            ("top images per channel", "\(s.top)" + (s.relevance.map { " by activation and by relevance (\($0))" } ?? "")),
            ("units", "\(report.done) of \(report.total) done (\(s.channelBlock) channels or \(s.imageBlock) images each)"),
        ]
        if timing.channelCount > 0 {
            facts.append(("measured", String(format: "%.1f channels/min", Double(timing.channelCount) / Swift.max(timing.channels, 1e-9) * 60)
                          + (timing.imageCount > 0 ? String(format: ", %.1f images/s", Double(timing.imageCount) / Swift.max(timing.images, 1e-9)) : "")
                          + " (summed over the units' own times)"))
            let perChannel = timing.channels / Double(timing.channelCount)
            let perImage = timing.imageCount > 0 ? timing.images / Double(timing.imageCount) : 0
            if timing.imageCount > 0 || s.images.isEmpty {
                let whole = perChannel * Double(plan.channelCount) + perImage * Double(s.images.count)
                facts.append(("projected", "the whole atlas: \(duration(whole)) on one such device, \(duration(whole / 32)) on 32"))
            }
        }
        var sections: [HTMLReport.Section] = [
            .init("Atlas", [.facts(facts)]),
            .init("Layers", [.html("<table>\n<tr><th>layer</th><th>channels</th><th>map</th><th>pictures made</th></tr>\n"
                                   + layerRows.joined(separator: "\n") + "\n</table>")]),
        ]
        if !report.missing.isEmpty {
            let shown = report.missing.prefix(200).map { "<li>\(HTMLReport.escaped($0))</li>" }.joined()
            sections.append(.init("Missing: \(report.missing.count) of \(report.total) units",
                                  [.html("<ul>\(shown)</ul>" + (report.missing.count > 200 ? "<p>and \(report.missing.count - 200) more</p>" : ""))]))
        }
        try HTMLReport(title: "Atlas of \(s.model)", sections: sections).write(to: folder.root.appendingPathComponent("index.html"))
    }
}

func format(_ v: Float) -> String { String(format: "%.3g", v) }
