import ArgumentParser
import Backend
import Figures
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
        the curves figure (Spearman and SSIM per stage, a line per method), the maps figure (a row per method, a column \
        per stage, each map scaled on its own) and maps.npy [stages, methods, H, W].

        Examples:
          loupe sanity --image Assets/chelsea.png --method gradient,guided_backprop,gradcam --out out/sanity
          loupe sanity --image Assets/chelsea.png --method integrated_gradients --stages 5 --weights-seed 3 --out out/sanity
        """)

    @OptionGroup public var deviceOptions: DeviceOptions
    @OptionGroup public var modelOptions: ModelOptions
    @Option(name: .customLong("image"), parsing: .upToNextOption, help: "A PNG or JPEG image.") public var images: [String]
    @OptionGroup public var methodOptions: MethodOptions
    @OptionGroup(title: "Figures") public var mapStyle: MapStyleOptions
    @OptionGroup(title: "Figures") public var figureOptions: FigureOptions
    @Option(parsing: .unconditional, help: "How many blocks to randomize, from the top (default: all of them).") public var stages: Int?
    @Option(parsing: .unconditional, help: "Seed of the re-drawn weights.") public var weightsSeed: UInt64 = 1
    @Option(help: "Output folder; results go into a subfolder named after the image file.") public var out: String
    @Flag(help: "Replace --out whole when it holds an earlier Loupe run (without it, a folder that holds files is refused).")
    public var force = false
    @Flag(help: "Use the image at its own size instead of the preset's resize and centre crop (--preset, --resize, --crop).") public var noResize = false

    public init() {}

    public func run() throws {
        let methods = try methodOptions.parseMethods()
        let style = try mapStyle.style()
        _ = try figureOptions.formats()
        if let stages, stages < 1 { throw UserError("--stages must be at least 1") }
        var options = ImageOptions()
        options.images = images
        let image = try options.image
        let preprocessing = try modelOptions.preprocessing(noResize: noResize)
        let prepared = try preprocessing.prepare(try RGBImage(contentsOf: URL(fileURLWithPath: image)))
        guard prepared.width >= 11, prepared.height >= 11 else { throw UserError("\(image): SSIM needs an image of at least 11x11 pixels") }
        let stem = URL(fileURLWithPath: image).deletingPathExtension().lastPathComponent
        let output = try OutputFolder(out, force: force)

        let backend = try deviceOptions.backend()
        let model = try modelOptions.load(on: backend)
        try MemoryBudget.requirePass(model, batch: 1, height: prepared.height, width: prepared.width, what: "the sanity check")
        let input = try backend.tensor(preprocessing.normalize(prepared), [1, 3, prepared.height, prepared.width])
        let g = Graph(backend: backend)
        let logits = try model.forward(g, g.input(input))
        let scores = try ClassScores(graph: g, logits: logits)
        let (classes, probabilities) = (scores.classes, scores.probabilities)
        let layer = try methodOptions.camLayer(for: methods, model: model, graph: g)
        let names = try modelOptions.classNames(classes: classes)
        let target = try methodOptions.resolveTargets(count: 1, classes: classes, top: scores.topClasses, names: names,
                                                    synonyms: modelOptions.classSynonyms(classes: classes))[0]

        let start = DispatchTime.now().uptimeNanoseconds
        let check = try SanityCheck(model: model, image: input, target: target,
                                    methods: try methods.map { try methodOptions.makeMethod($0, layer: layer, model: model) },
                                    randomization: ModelRandomization(seed: weightsSeed), stageCount: stages)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9

        let record = try RunRecord(modelOptions: modelOptions, model: model, preprocessing: preprocessing, backend: backend)
        try output.publish([stem, "index.html"]) { staging in
            let dir = staging.appendingPathComponent(stem)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let title = "\(URL(fileURLWithPath: image).lastPathComponent) · target \(target) \(label(target, names: names)) (p = \(String(format: "%.3f", probabilities[target])))"
            try write(check, image: prepared, title: title, subtitle: "\(model.architecture.name) · weights re-drawn from the top down (seed \(weightsSeed)) · \(backend.name)",
                      style: style, into: dir)
            let json: [String: Any] = [
                "image": stem, "model": model.architecture.name, "layer": layer, "device": backend.name,
                "target": ["index": target, "label": label(target, names: names), "probability": probabilities[target]],
                "weights_seed": weightsSeed, "seconds": seconds, "image_path": image, "run": record.json,
                "methods": methods.map { ["method": $0, "parameters": methodOptions.parameters($0, layer: layer, model: model)] as [String: Any] },
                "stages": check.stages.map { stage in
                    ["randomized_through": stage.name,
                     "spearman": stage.spearman.map { $0.isNaN ? NSNull() : $0 as Any },
                     "ssim": stage.ssim.map { $0 as Any }] as [String: Any]
                },
            ]
            try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]).write(to: dir.appendingPathComponent("sanity.json"))
            let figure = try figureOptions.preferred()
            let report = HTMLReport(title: "loupe sanity: \(URL(fileURLWithPath: image).lastPathComponent)", sections: [
                .init("Run", [.facts(record.facts + [("methods", methods.joined(separator: ", ")), ("target", title), ("weights seed", "\(weightsSeed)"),
                                                      ("time", String(format: "%.1f s", seconds))])]),
                .init("Similarity to the trained model's map", [
                    .figure("\(stem)/curves.\(figure)", caption: "Spearman rank correlation and SSIM of each method's map with its map on the trained model, as the weights are re-drawn from the top block down. A method that passes falls away from 1."),
                    .table(header: ["weights re-drawn through"] + methods.flatMap { ["\($0) ρ", "\($0) SSIM"] }, rows: check.stages.map { stage in
                        [stage.name] + zip(stage.spearman, stage.ssim).flatMap { r, s in [r.isNaN ? "n/a" : String(format: "%.3f", r), String(format: "%.3f", s)] }
                    }),
                ]),
                .init("Maps", [.figure("\(stem)/maps.\(figure)", caption: "A row per method: the input, then its map at each stage (each scaled on its own)."),
                               .paragraph("Files: \(stem)/sanity.json, \(stem)/maps.npy [stages, methods, H, W].")]),
            ])
            try report.write(to: staging.appendingPathComponent("index.html"))
        }

        emit("\(stem): target \(target) \(label(target, names: names)) (p = \(String(format: "%.4f", probabilities[target]))), "
             + "\(check.stages.count - 1) stages in \(String(format: "%.1f", seconds)) s -> \(output.shown(stem))")
        emit("Spearman rank correlation / SSIM with the trained model's map, weights re-drawn from the top down to each block:")
        var rows = [["randomized through"] + methods]
        for stage in check.stages {
            rows.append([stage.name] + zip(stage.spearman, stage.ssim).map { r, s in
                (r.isNaN ? "  n/a" : String(format: "%5.2f", r)) + " / " + String(format: "%.2f", s)
            })
        }
        emit(TextTable.format(rows))
        emit("report: \(output.shown("index.html"))")
    }

    /// The curves and maps figures, and maps.npy.
    func write(_ check: SanityCheck, image: RGBImage, title: String, subtitle: String, style: MapStyle, into dir: URL) throws {
        let (h, w) = (image.height, image.width)
        let stageNames = check.stages.map(\.name)
        let ssimLow = Swift.min(0, Double(check.stages.flatMap(\.ssim).filter { !$0.isNaN }.min() ?? 0))
        let panels = [
            LineChart.Panel(title: "Spearman rank correlation", xLabel: "weights re-drawn through", yLabel: "with the trained model's map",
                            yRange: -1...1, x: .categories(stageNames),
                            series: check.methods.indices.map { m in .init(name: check.methods[m], values: check.stages.map { $0.spearman[m] }) },
                            zeroLine: true),
            LineChart.Panel(title: "SSIM", xLabel: "weights re-drawn through", yLabel: "with the trained model's map",
                            yRange: (ssimLow.rounded(.down))...1, x: .categories(stageNames),
                            series: check.methods.indices.map { m in .init(name: check.methods[m], values: check.stages.map { $0.ssim[m] }) },
                            zeroLine: true),
        ]
        try figureOptions.write(try LineChart.canvas(title: title, panels: panels), stem: "curves", into: dir)
        // One row per method: the input, then the map at each stage (each scaled on its own: the
        // figure shows structure, the curves show similarity).
        var rows: [[ImageGrid.Cell?]] = []
        for m in check.methods.indices {
            var cells: [ImageGrid.Cell?] = [.init(image)]
            for stage in check.stages {
                let (scaled, colormap) = style.scaled(map: stage.maps[m][...], raw: nil, signed: false)
                cells.append(.init(scaled.colorized(colormap, width: w, height: h),
                                   caption: String(format: "ρ %.2f · SSIM %.2f", stage.spearman[m], stage.ssim[m])))
            }
            rows.append(cells)
        }
        let grid = try ImageGrid.canvas(title: title, subtitle: subtitle, rows: rows, columnHeaders: ["input"] + stageNames,
                                        rowHeaders: check.methods, tile: 112)
        try figureOptions.write(grid, stem: "maps", into: dir)
        try npyData(check.stages.flatMap { $0.maps.flatMap { $0 } }, shape: [check.stages.count, check.methods.count, h, w])
            .write(to: dir.appendingPathComponent("maps.npy"))
    }
}
