import ArgumentParser
import Backend
import Figures
import Foundation
import Graph
import ImageIO
import Interpret
import Models
import Workflows

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
        let probe = try Probe(model: model, input: input, names: { try modelOptions.classNames(classes: $0) },
                              synonyms: { modelOptions.classSynonyms(classes: $0) })
        let (probabilities, names) = (probe.scores.probabilities, probe.names)
        let layer = try probe.camLayer(methodOptions.layer, for: methods, model: model)
        let target = try probe.targets(methodOptions.target, count: 1)[0]

        let start = DispatchTime.now().uptimeNanoseconds
        let check = try SanityCheck(model: model, image: input, target: target,
                                    methods: try methods.map { try methodOptions.makeMethod($0, layer: layer, model: model) },
                                    randomization: ModelRandomization(seed: weightsSeed), stageCount: stages)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9

        let record = try RunRecord(modelOptions: modelOptions, model: model, preprocessing: preprocessing, backend: backend)
        let result = SanityOutput(check: check, image: image, stem: stem, prepared: prepared, probe: probe, target: target, model: model,
                                  layer: layer, device: backend.name, weightsSeed: weightsSeed, seconds: seconds,
                                  methods: methods.map { ($0, methodOptions.parameters($0, layer: layer, model: model)) },
                                  style: style, figures: try figureOptions.writer(), record: record)
        try output.publish { try result.write(into: $0) }
        emit("\(stem): target \(target) \(classLabel(target, names: names)) (p = \(String(format: "%.4f", probabilities[target]))), "
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
}
