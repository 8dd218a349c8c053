import Backend
import Foundation
import Graph
import ImageIO
import Interpret
import Models

/// Does an atlas's units on one model and device, each written whole into the site folder.
public struct AtlasRunner {
    /// The network, on its device.
    public let model: Model
    /// The settings and units.
    public let plan: AtlasPlan
    /// Where each unit is written.
    public let folder: AtlasFolder
    /// How a dataset image becomes the network's input.
    public let preprocessing: Preprocessing
    /// Images per forward pass in an image unit.
    public var imageBatch = 8
    /// Hears of each unit's staging folder (true) and its end (false): a signal handler removes it.
    public var staged: @Sendable (URL, Bool) -> Void = { _, _ in }

    /// A runner for `plan` on `model`, writing into `folder`.
    public init(model: Model, plan: AtlasPlan, folder: AtlasFolder, preprocessing: Preprocessing) {
        self.model = model; self.plan = plan; self.folder = folder; self.preprocessing = preprocessing
    }

    /// The plan of `settings` on `model`: each layer's shape from one pass on an input of the
    /// settings' input size.
    public static func plan(_ settings: AtlasSettings, model: Model) throws -> AtlasPlan {
        let g = Graph(backend: model.backend)
        g.keptLayers = Set(settings.layers)
        let s = settings.inputSize
        _ = try model.forward(g, g.input(try model.backend.tensor([Float](repeating: 0, count: 3 * s * s), [1, 3, s, s])))
        let layers = try settings.layers.map { name -> AtlasLayer in
            guard let v = g.tapped(name) else {
                throw AtlasError("no layer \(name) in \(model.architecture.name) (`loupe layers` lists them)")
            }
            let dims = g.shape(v).dims
            guard dims.count == 4 else { throw AtlasError("layer \(name) has shape \(dims); an atlas needs feature maps [N, C, H, W]") }
            return AtlasLayer(name: name, channels: dims[1], height: dims[2], width: dims[3])
        }
        return try AtlasPlan(settings: settings, layers: layers)
    }

    /// Does `unit` (unless it is already done) and returns its seconds.
    public func run(_ unit: AtlasUnit, progress: (String) -> Void = { _ in }) throws -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        try folder.publish(plan.id(unit), staged: staged) { staging in
            var record: [String: Any]
            switch unit {
            case .channels(let layer, let range): record = try channels(layer: layer, range, into: staging, progress: progress)
            case .images(let range): record = try images(range, into: staging, progress: progress)
            }
            record["seconds"] = elapsed()
            record["device"] = model.backend.name
            record["plan"] = plan.fingerprint
            try JSONSerialization.data(withJSONObject: record, options: [.prettyPrinted, .sortedKeys])
                .write(to: staging.appendingPathComponent("unit.json"))
        }
        return elapsed()
    }

    /// The file of channel `c`'s picture, variant `v`.
    public static func pictureFile(channel c: Int, variant v: Int) -> String { v == 0 ? "c\(c).png" : "c\(c)-\(v).png" }

    func channels(layer: Int, _ range: Range<Int>, into staging: URL, progress: (String) -> Void) throws -> [String: Any] {
        let s = plan.settings, name = plan.layers[layer].name
        // One batch of every channel, or (variants) one batch of a channel's variants at a time,
        // with the diversity term between them.
        let groups: [[(channel: Int, variant: Int)]] = s.variants == 1
            ? [range.map { ($0, 0) }]
            : range.map { c in (0..<s.variants).map { (c, $0) } }
        var objectives: [String: [Float]] = [:]
        for group in groups {
            var job = FeatureVisualization(objectives: group.map { .channel(layer: name, channel: $0.channel) }, size: s.size, steps: s.steps,
                                           optimizer: .adam(AdamSettings(learningRate: s.learningRate)), seed: s.seed, reportEvery: Swift.max(s.steps / 4, 1))
            job.imageSeeds = group.map { plan.seed(layer: layer, channel: $0.channel, variant: $0.variant) }
            if s.variants > 1 { job.diversity = (name, s.diversityWeight) }
            let result: FeatureVisualization.Result
            do {
                result = try job.run(model) { p in progress("step \(p.step + 1)/\(s.steps)") }
            } catch let error as InterpretError { throw AtlasError(error.description) }
            for (i, item) in group.enumerated() {
                try result.image(i).writePNG(to: staging.appendingPathComponent(Self.pictureFile(channel: item.channel, variant: item.variant)))
                objectives[String(item.channel), default: []].append(result.objectives[i])
            }
        }
        return ["kind": "channels", "layer": name, "channels": Array(range), "objectives": objectives]
    }

    func images(_ range: Range<Int>, into staging: URL, progress: (String) -> Void) throws -> [String: Any] {
        let s = plan.settings, b = model.backend
        var activations = [[Float]](repeating: [], count: plan.layers.count)
        var relevance = [[Float]](repeating: [], count: plan.layers.count)
        var targets: [Int] = []
        // With relevance: the unit's prepared photos and network inputs, for the reference heatmaps.
        var photos: [RGBImage] = [], inputs: [Float] = []
        let lrp = try s.relevance.map { spec in
            do { return try LRP(composite: spec) } catch let error as InterpretError { throw AtlasError(error.description) }
        }
        for lo in stride(from: range.lowerBound, to: range.upperBound, by: imageBatch) {
            let batch = lo..<Swift.min(lo + imageBatch, range.upperBound)
            var input: [Float] = []
            for i in batch {
                let path = s.images[i]
                do {
                    let prepared = try preprocessing.prepare(try RGBImage(contentsOf: URL(fileURLWithPath: path)))
                    guard prepared.width == s.inputSize, prepared.height == s.inputSize else {
                        throw AtlasError("becomes \(prepared.width)x\(prepared.height), not \(s.inputSize)x\(s.inputSize)")
                    }
                    input += preprocessing.normalize(prepared)
                    if s.relevance != nil { photos.append(prepared) }
                } catch { throw AtlasError("image \(path): \(error)") }
            }
            if s.relevance != nil { inputs += input }
            let x = try b.tensor(input, [batch.count, 3, s.inputSize, s.inputSize])
            let g = Graph(backend: b)
            g.keptLayers = Set(s.layers)
            g.stopWhenTapped = Set(s.layers)
            _ = try model.forward(g, g.input(x))
            if let lrp {
                // Every layer's relevance from each image's top-1 class in one LRP pass, divided
                // per image as zennit-crp's default score divides it (by the absolute sum over
                // channels of the sums over positions), so that the statistics' means rank as
                // zennit-crp ranks.
                let perLayer: [RelevanceMaximization.Scores]
                do { perLayer = try RelevanceMaximization.scores(model, input: x, targets: nil, layers: plan.layers.map(\.name), lrp: lrp) }
                catch let error as InterpretError { throw AtlasError(error.description) }
                targets += perLayer.first?.targets ?? []
                for (l, r) in perLayer.enumerated() {
                    let per = r.channels * r.height * r.width
                    for i in 0..<r.count { relevance[l] += r.relevance[(i * per)..<((i + 1) * per)].map { $0 / r.normalizers[i] } }
                }
            }
            for (l, layer) in plan.layers.enumerated() {
                guard let v = g.tapped(layer.name) else { throw AtlasError("no layer \(layer.name)") }
                guard g.shape(v) == Shape([batch.count, layer.channels, layer.height, layer.width]) else {
                    throw AtlasError("layer \(layer.name) is \(g.shape(v)) on these images, not [\(batch.count), \(layer.channels), \(layer.height), \(layer.width)] as planned")
                }
                activations[l] += try b.values(g.tensor(v))
            }
            progress("images \(batch.upperBound - range.lowerBound)/\(range.count)")
        }
        for (l, layer) in plan.layers.enumerated() {
            let stats = LayerStats(activations: activations[l], images: range.count, channels: layer.channels, height: layer.height,
                                   width: layer.width, top: s.top)
            try stats.data().write(to: staging.appendingPathComponent("\(layer.stem).stats"))
            if s.relevance != nil {
                let byRelevance = LayerStats(activations: relevance[l], images: range.count, channels: layer.channels, height: layer.height,
                                             width: layer.width, top: s.top)
                try byRelevance.data().write(to: staging.appendingPathComponent("\(layer.stem).relevance.stats"))
                if let lrp { try referencePictures(layer: l, stats: byRelevance, lrp: lrp, photos: photos, inputs: inputs, into: staging) }
            }
        }
        var record: [String: Any] = ["kind": "images", "images": [range.lowerBound, range.upperBound - 1],
                                     "receptive_fields": try receptiveFields().mapValues { [$0.x0, $0.y0, $0.x1, $0.y1] }]
        if s.relevance != nil { record["targets"] = targets }
        return record
    }

    /// The folder of a unit's reference pictures of `layer`, and one picture's file in it (the
    /// image's index within the unit).
    public static func referenceFile(layer: AtlasLayer, channel c: Int, image i: Int) -> String { "\(layer.stem).relevance/c\(c)-\(i).png" }

    /// For each of the atlas's channels of layer `l`, the unit's top images by relevance
    /// (`stats`): zennit-crp's reference heatmap (`RelevanceMaximization.referenceHeatmaps` at the
    /// channel's most relevant neuron), drawn beside the photo (`referencePicture`).
    func referencePictures(layer l: Int, stats: LayerStats, lrp: LRP, photos: [RGBImage], inputs: [Float], into staging: URL) throws {
        let s = plan.settings, layer = plan.layers[l], side = s.inputSize, per = 3 * side * side
        try FileManager.default.createDirectory(at: staging.appendingPathComponent("\(layer.stem).relevance"), withIntermediateDirectories: true)
        let method = RelevanceMaximization(layer: layer.name, lrp: lrp)
        for c in plan.channels(of: l) {
            let column = (0..<stats.images).map { stats.mean[$0 * layer.channels + c] }
            let tops = LayerStats.top(s.top, column).filter { !column[$0].isNaN }
            guard !tops.isEmpty else { continue }
            let x = try model.backend.tensor(tops.flatMap { inputs[($0 * per)..<(($0 + 1) * per)] }, [tops.count, 3, side, side])
            let maps: [[Float]]
            do { maps = try method.referenceHeatmaps(model, input: x, channel: c, neurons: tops.map { Int(stats.argmax[$0 * layer.channels + c]) }) }
            catch let error as InterpretError { throw AtlasError(error.description) }
            for (j, i) in tops.enumerated() {
                try Self.referencePicture(photo: photos[i], heatmap: maps[j])
                    .writePNG(to: staging.appendingPathComponent(Self.referenceFile(layer: layer, channel: c, image: i)))
            }
        }
    }

    /// The photo and its reference heatmap side by side, 112 pixels high, both cut to the window
    /// zennit-crp's `vis_img_heatmap` cuts (`RelevanceMaximization.crop`; the whole image where it
    /// has none or the heatmap sums to zero there), the heatmap blue (negative) to white to red on a
    /// scale symmetric about zero (zennit-crp's `imgify(..., symmetric=True)`).
    public static func referencePicture(photo: RGBImage, heatmap: [Float]) throws -> RGBImage {
        let (w, h) = (photo.width, photo.height)
        var (rows, columns) = (0..<h, 0..<w)
        if let box = RelevanceMaximization.crop(heatmap, width: w, height: h), !box.rows.isEmpty, !box.columns.isEmpty,
           box.rows.reduce(Float(0), { sum, y in box.columns.reduce(sum) { $0 + heatmap[y * w + $1] } }) != 0 {
            (rows, columns) = (box.rows, box.columns)
        }
        let values = rows.flatMap { y in columns.map { heatmap[y * w + $0] } }
        let top = values.map { abs($0) }.filter(\.isFinite).max() ?? 0
        let heat = values.flatMap { v -> [UInt8] in
            let t = top > 0 && v.isFinite ? (v / top + 1) / 2 : 0.5
            let (r, g, b) = Colormap.rdbu.color(t)
            return [r, g, b]
        }
        let cut = rows.flatMap { y in columns.flatMap { x in photo.pixels[((y * w + x) * 3)..<((y * w + x) * 3 + 3)] } }
        let height = 112, width = Swift.min(Swift.max(Int((112 * Double(columns.count) / Double(rows.count)).rounded()), 16), 448)
        let left = try RGBImage(width: columns.count, height: rows.count, pixels: cut).resized(width: width, height: height, filter: .bilinear)
        let right = try RGBImage(width: columns.count, height: rows.count, pixels: heat).resized(width: width, height: height, filter: .bilinear)
        var pixels = [UInt8](repeating: 255, count: (2 * width + 4) * height * 3)
        for y in 0..<height {
            pixels.replaceSubrange((y * (2 * width + 4) * 3)..<((y * (2 * width + 4) + width) * 3), with: left.pixels[(y * width * 3)..<((y + 1) * width * 3)])
            pixels.replaceSubrange(((y * (2 * width + 4) + width + 4) * 3)..<((y * (2 * width + 4) + 2 * width + 4) * 3),
                                   with: right.pixels[(y * width * 3)..<((y + 1) * width * 3)])
        }
        return RGBImage(width: 2 * width + 4, height: height, pixels: pixels)
    }


    /// Each layer's receptive field: the input pixels the centre unit of the layer depends on (the
    /// box where the gradient of its activations, summed over channels, is non-zero on a random
    /// image), in input pixels, inclusive.
    public func receptiveFields() throws -> [String: (x0: Int, y0: Int, x1: Int, y1: Int)] {
        let b = model.backend, s = plan.settings.inputSize
        var random = SplitMix64(noiseSeed: 7)
        var out: [String: (Int, Int, Int, Int)] = [:]
        for layer in plan.layers {
            let g = Graph(backend: b)
            g.keptLayers = [layer.name]
            g.stopWhenTapped = [layer.name]
            let x = g.input(try b.tensor(random.normal(3 * s * s, sigma: 1), [1, 3, s, s]))
            _ = try model.forward(g, x)
            guard let v = g.tapped(layer.name) else { throw AtlasError("no layer \(layer.name)") }
            var seed = [Float](repeating: 0, count: layer.channels * layer.height * layer.width)
            for c in 0..<layer.channels { seed[(c * layer.height + layer.height / 2) * layer.width + layer.width / 2] = 1 }
            let grad = try g.backward(from: v, seed: try b.tensor(seed, g.shape(v))).of(x).map { try b.values($0) } ?? []
            var (x0, y0, x1, y1) = (s, s, -1, -1)
            for c in 0..<3 { for y in 0..<s { for xx in 0..<s where !grad.isEmpty && grad[(c * s + y) * s + xx] != 0 {
                x0 = Swift.min(x0, xx); x1 = Swift.max(x1, xx); y0 = Swift.min(y0, y); y1 = Swift.max(y1, y)
            } } }
            out[layer.name] = x1 < 0 ? (0, 0, s - 1, s - 1) : (x0, y0, x1, y1)
        }
        return out
    }
}
