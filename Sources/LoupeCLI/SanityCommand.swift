import ArgumentParser
import Backend
import Foundation
import Graph
import ImageIO
import Interpret
import Models

/// `loupe sanity`: the model-randomization sanity check (Adebayo et al. 2018) of attribution
/// methods on one image.
public struct SanityCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "sanity",
        abstract: "Model-randomization sanity check: how each method's map changes as the weights are re-drawn from the top layer down.",
        discussion: """
        Stage k re-draws the weights of the k top blocks (classifier first). For each method and stage: \
        Spearman rank correlation and SSIM of the map with the trained model's map. Writes <out>/<image>/sanity.json, \
        curves.png (left: Spearman on [-1, 1], right: SSIM on [0, 1]; x: stages; one colour per method, in the order of --method), \
        maps.png (a row per method, a column per stage) and maps.npy [stages, methods, H, W].
        """)

    @OptionGroup public var deviceOptions: DeviceOptions
    @OptionGroup public var modelOptions: ModelOptions
    @Option(help: "A PNG or JPEG image.") public var image: String
    @OptionGroup public var methodOptions: MethodOptions
    @Option(parsing: .unconditional, help: "How many blocks to randomize, from the top (default: all of them).") public var stages: Int?
    @Option(parsing: .unconditional, help: "Seed of the re-drawn weights.") public var weightsSeed: UInt64 = 1
    @Option(help: "Output folder; results go into a subfolder named after the image file.") public var out: String
    @Flag(help: "Use the image at its own size instead of the preset's resize and centre crop (--preset, --resize, --crop).") public var noResize = false

    public init() {}

    public func run() throws {
        let methods = try methodOptions.parseMethods()
        if let stages, stages < 1 { throw UserError("--stages must be at least 1") }
        let preprocessing = try modelOptions.preprocessing(noResize: noResize)
        let prepared = try preprocessing.prepare(try RGBImage(contentsOf: URL(fileURLWithPath: image)))
        guard prepared.width >= 11, prepared.height >= 11 else { throw UserError("\(image): SSIM needs an image of at least 11x11 pixels") }
        let stem = URL(fileURLWithPath: image).deletingPathExtension().lastPathComponent
        let output = try OutputFolder(out)

        let backend = try deviceOptions.backend()
        let model = try modelOptions.load(on: backend)
        try MemoryBudget.requirePass(model, batch: 1, height: prepared.height, width: prepared.width, what: "the sanity check")
        let input = try backend.tensor(preprocessing.normalize(prepared), [1, 3, prepared.height, prepared.width])
        let g = Graph(backend: backend)
        let logits = try model.forward(g, g.input(input))
        let classes = g.shape(logits)[1]
        let layer = try methodOptions.camLayer(for: methods, model: model, graph: g)
        let probabilities = try backend.values(backend.softmax(g.tensor(logits)))
        let names = try modelOptions.classNames(classes: classes)
        let target = try methodOptions.resolveTargets(count: 1, classes: classes, probabilities: probabilities, names: names)[0]

        let start = DispatchTime.now().uptimeNanoseconds
        let check = try SanityCheck(model: model, image: input, target: target,
                                    methods: try methods.map { try methodOptions.makeMethod($0, layer: layer, model: model) },
                                    randomization: ModelRandomization(seed: weightsSeed), stageCount: stages)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9

        try output.publish([stem]) { staging in
            let dir = staging.appendingPathComponent(stem)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try write(check, image: prepared, into: dir)
            let json: [String: Any] = [
                "image": stem, "model": model.architecture.name, "layer": layer, "device": backend.name,
                "target": ["index": target, "label": label(target, names: names), "probability": probabilities[target]],
                "weights_seed": weightsSeed, "seconds": seconds,
                "methods": methods.map { ["method": $0, "parameters": methodOptions.parameters($0, layer: layer)] as [String: Any] },
                "stages": check.stages.map { stage in
                    ["randomized_through": stage.name,
                     "spearman": stage.spearman.map { $0.isNaN ? NSNull() : $0 as Any },
                     "ssim": stage.ssim.map { $0 as Any }] as [String: Any]
                },
            ]
            try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]).write(to: dir.appendingPathComponent("sanity.json"))
        }

        emit("\(stem): target \(target) \(label(target, names: names)) (p = \(String(format: "%.4f", probabilities[target]))), "
             + "\(check.stages.count - 1) stages in \(String(format: "%.1f", seconds)) s -> \(output.url.appendingPathComponent(stem).path)")
        emit("Spearman rank correlation / SSIM with the trained model's map, weights re-drawn from the top down to each block:")
        var rows = [["randomized through"] + methods]
        for stage in check.stages {
            rows.append([stage.name] + zip(stage.spearman, stage.ssim).map { r, s in
                (r.isNaN ? "  n/a" : String(format: "%5.2f", r)) + " / " + String(format: "%.2f", s)
            })
        }
        emit(formatTable(rows))
    }

    /// curves.png, maps.png and maps.npy.
    func write(_ check: SanityCheck, image: RGBImage, into dir: URL) throws {
        let (h, w) = (image.height, image.width)
        let colors = MapImages.palette(check.methods.count)
        let spearman = MapImages.lineChart(panels: [check.methods.indices.map { m in check.stages.map { $0.spearman[m] } }],
                                           colors: colors, yRange: -1...1)
        let ssim = MapImages.lineChart(panels: [check.methods.indices.map { m in check.stages.map { $0.ssim[m] } }], colors: colors)
        try MapImages.row([spearman, ssim], gap: 0).writePNG(to: dir.appendingPathComponent("curves.png"))
        // One row per method: the input, then the map at each stage (each stage min-max scaled on its own).
        let tile = 112
        let small = try image.resized(width: tile, height: tile)
        var rows: [RGBImage] = []
        for (m, name) in check.methods.enumerated() {
            var tiles = [small]
            for stage in check.stages {
                let map = stage.maps[m]
                let (lo, hi) = (map.min() ?? 0, map.max() ?? 0)
                let scaled = map.map { hi > lo ? ($0 - lo) / (hi - lo) : 0 }
                // Gradient maps are spiky: the 99th percentile is the top of the scale, as in `saliency`.
                let heat = MapImages.colorize(scaled[...], width: w, height: h, clip: MethodOptions.camNames.contains(name) ? 1 : 0.99)
                tiles.append(try heat.resized(width: tile, height: tile))
            }
            rows.append(MapImages.row(tiles))
        }
        try MapImages.column(rows).writePNG(to: dir.appendingPathComponent("maps.png"))
        try npyData(check.stages.flatMap { $0.maps.flatMap { $0 } }, shape: [check.stages.count, check.methods.count, h, w])
            .write(to: dir.appendingPathComponent("maps.npy"))
    }
}
