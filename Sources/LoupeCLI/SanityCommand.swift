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
        abstract: "Model-randomization sanity checks: how each method's map changes as the weights are re-drawn, layer by layer.",
        discussion: """
        --test cascade (the default, Adebayo et al.): stage k re-draws the weights of the k top blocks (classifier first). \
        --test mprt (Quantus' MPRT): the same by layers (each conv, batch norm and linear layer). --test smooth_mprt \
        (Quantus' SmoothMPRT): layers from the bottom up, each map the mean over --smooth-samples copies of the image with \
        Gaussian noise of --smooth-noise x its value range (noise from --seed). --test efficient_mprt (Quantus' \
        EfficientMPRT): one stage with every layer re-drawn; its score is the rise of the map's discrete entropy. \
        --granularity and --order override a test's units and order. For each method and stage: Spearman rank \
        correlation and SSIM of the map with the trained model's map, and the map's discrete entropy (100 bins). \
        Writes <out>/<image>/sanity.json (with each method's mean ρ, last ρ and entropy rise), the curves figure \
        (Spearman, SSIM and entropy per stage, a line per method), the maps figure (a row per method, a column per \
        stage, at most 12 stages, each map scaled on its own) and maps.npy [stages, methods, H, W].

        Examples:
          loupe sanity --image Assets/chelsea.png --method gradient,guided_backprop,gradcam --out out/sanity
          loupe sanity --image Assets/chelsea.png --method integrated_gradients --stages 5 --weights-seed 3 --out out/sanity
          loupe sanity --image Assets/chelsea.png --method gradient,gradcam --test mprt --out out/mprt
          loupe sanity --image Assets/chelsea.png --method gradient --test smooth_mprt --smooth-samples 10 --stages 8 --out out/smprt
        """)

    @OptionGroup public var deviceOptions: DeviceOptions
    @OptionGroup public var modelOptions: ModelOptions
    @Option(name: .customLong("image"), parsing: .upToNextOption, help: "A PNG or JPEG image.") public var images: [String]
    @OptionGroup public var methodOptions: MethodOptions
    @OptionGroup(title: "Figures") public var mapStyle: MapStyleOptions
    @OptionGroup(title: "Figures") public var figureOptions: FigureOptions
    @Option(help: "cascade (blocks from the top down), mprt (layers from the top down), smooth_mprt (layers from the bottom up, smoothed maps) or efficient_mprt (the entropy rise once every layer is random).")
    public var test: String = "cascade"
    @Option(help: "What one stage re-draws: block or layer (default: the test's).") public var granularity: String?
    @Option(help: "Stage order: top_down, bottom_up (both cascading) or independent (one unit at a time) (default: the test's).") public var order: String?
    @Option(name: .customLong("smooth-samples"), parsing: .unconditional, help: "smooth_mprt: noisy copies per map (the last noise-free; default 50).")
    public var smoothSamples: Int?
    @Option(name: .customLong("smooth-noise"), parsing: .unconditional, help: "smooth_mprt: the noise's standard deviation as a fraction of the image's value range (default 0.1).")
    public var smoothNoise: Float?
    @Option(parsing: .unconditional, help: "How many units to randomize, in the test's order (default: all of them).") public var stages: Int?
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
        guard let test = RandomizationTest(rawValue: test) else {
            throw UserError("--test \(self.test): expected one of \(RandomizationTest.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var randomization = test.randomization(seed: weightsSeed)
        if let granularity {
            guard let g = ModelRandomization.Granularity(rawValue: granularity) else { throw UserError("--granularity \(granularity): expected block or layer") }
            randomization.granularity = g
        }
        if let order {
            guard let o = ModelRandomization.Order(rawValue: order) else { throw UserError("--order \(order): expected top_down, bottom_up or independent") }
            randomization.order = o
        }
        if !test.smooths && (smoothSamples != nil || smoothNoise != nil) { throw UserError("--smooth-samples and --smooth-noise belong to --test smooth_mprt") }
        if let smoothSamples, smoothSamples < 1 { throw UserError("--smooth-samples must be at least 1") }
        if let smoothNoise, !(smoothNoise.isFinite && smoothNoise >= 0) { throw UserError("--smooth-noise must be a finite value of at least 0") }
        let smoothing = test.smooths ? MapSmoothing(samples: smoothSamples ?? 50, magnitude: smoothNoise ?? 0.1, batch: methodOptions.batch,
                                                    seed: methodOptions.seed) : nil
        var options = ImageOptions()
        options.images = images
        let image = try options.image
        if modelOptions.randomWeights == weightsSeed {
            throw UserError("--weights-seed \(weightsSeed) re-draws the weights --random-weights \(weightsSeed) already drew: nothing would change; pick another seed")
        }
        _ = try modelOptions.preprocessing(noResize: noResize)  // refused before the model loads
        let stem = URL(fileURLWithPath: image).deletingPathExtension().lastPathComponent
        let output = try OutputFolder(out, force: force)

        let backend = try deviceOptions.backend()
        let model = try modelOptions.load(on: backend)
        let preprocessing = try modelOptions.preprocessing(noResize: noResize, for: model)
        let prepared = try preprocessing.prepare(try RGBImage(contentsOf: URL(fileURLWithPath: image)))
        guard prepared.width >= 11, prepared.height >= 11 else { throw UserError("\(image): SSIM needs an image of at least 11x11 pixels") }
        try MemoryBudget.requirePass(model, batch: smoothing.map { Swift.min($0.batch, $0.samples) } ?? 1, height: prepared.height, width: prepared.width,
                                     what: "the sanity check")
        let input = try backend.tensor(preprocessing.normalize(prepared), [1, 3, prepared.height, prepared.width])
        let probe = try Probe(model: model, input: input, names: { try modelOptions.classNames(classes: $0) },
                              synonyms: { modelOptions.classSynonyms(classes: $0) })
        let (probabilities, names) = (probe.scores.probabilities, probe.names)
        let layer = try probe.camLayer(methodOptions.layer, for: methods, model: model)
        let target = try probe.targets(methodOptions.target, count: 1)[0]
        // A segmentation's target: the class summed over the pixels the trained model predicts
        // as it, for the trained and every randomized model alike.
        let region = try probe.scores.dense.map { _ in
            do { return try RegionTarget(probe: probe, image: 0, target: target, region: .predicted, height: prepared.height, width: prepared.width) } catch {
                throw UserError("\(printable(image)): \(error)")
            }
        }
        let explained = try region.map { try model.summed(over: $0.mask) } ?? model

        let start = DispatchTime.now().uptimeNanoseconds
        let check = try SanityCheck(model: explained, image: input, target: target,
                                    methods: try methods.map { try methodOptions.makeMethod($0, layer: layer, model: model) },
                                    randomization: randomization, stageCount: stages, smoothing: smoothing, finalOnly: test.finalOnly)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9

        let record = try RunRecord(modelOptions: modelOptions, model: model, preprocessing: preprocessing, backend: backend)
        var result = SanityOutput(check: check, image: image, stem: stem, prepared: prepared, probe: probe, target: target, model: model,
                                  layer: layer, device: backend.name, weightsSeed: weightsSeed, seconds: seconds,
                                  methods: methods.map { ($0, methodOptions.parameters($0, layer: layer, model: model)) },
                                  style: style, figures: try figureOptions.writer(), record: record, test: test, randomization: randomization,
                                  smoothing: smoothing)
        // The trained model's maps are the first stage's.
        result.warnings = ResultWarnings.lines(probe.scores, 0, probability: region?.meanProbability ?? probabilities[target], mean: region != nil,
                                               maps: zip(check.methods, check.stages[0].maps).map { ($0, $1) })
        for line in result.warnings { warn("warning: \(stem): \(line)") }
        try output.publish { try result.write(into: $0) }
        emit("\(stem): target \(target) \(classLabel(target, names: names)) (p = \(String(format: "%.4f", probabilities[target]))), "
             + "\(check.stages.count - 1) stages in \(String(format: "%.1f", seconds)) s -> \(output.shown(stem))")
        emit("Spearman rank correlation / SSIM with the trained model's map (\(test.rawValue): \(result.procedure)):")
        func pair(_ r: Float, _ s: Float) -> String { (r.isNaN ? "  n/a" : String(format: "%5.2f", r)) + " / " + (s.isNaN ? "n/a" : String(format: "%.2f", s)) }
        var rows = [["randomized through"] + methods]
        // Long runs (layer by layer) show their first and last stages; sanity.json has all.
        let shown = check.stages.count <= 24 ? Array(check.stages.indices) : Array(0..<10) + [-1] + Array((check.stages.count - 5)..<check.stages.count)
        for i in shown {
            guard i >= 0 else { rows.append(["… \(check.stages.count - 15) more in sanity.json"] + methods.map { _ in "" }); continue }
            let stage = check.stages[i]
            rows.append([stage.name] + zip(stage.spearman, stage.ssim).map(pair))
        }
        func score(_ v: Float) -> String { v.isFinite ? String(format: "%.3f", v) : "n/a" }
        rows.append(["mean ρ over the stages"] + check.meanSpearman.map(score))
        rows.append(["entropy rise" + (test == .efficientMPRT ? " (eMPRT)" : "")] + check.entropyRise.map(score))
        emit(TextTable.format(rows))
        emit("report: \(output.shown("index.html"))")
    }
}
