import ArgumentParser
import Backend
import Figures
import Foundation
import Graph
import ImageIO
import Interpret
import Models
import Workflows

/// `loupe visualize`: feature visualization by optimization (Olah et al. 2017, Lucid's defaults).
public struct VisualizeCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "visualize",
        abstract: "Feature visualization: images that maximize a neuron, channel, layer, class or any weighted sum of these.",
        discussion: """
        Objectives: --layer L --channel C (mean of a channel), --layer L --neuron C,X,Y (one unit; C alone: the centre), \
        --layer L alone (DeepDream: mean of squares), --target K (logit; index or class name), or --objective EXPR \
        with terms like 0.2*features.10:5 + 0.8*class:948 or class:espresso (see the README). --batch-channels A..B optimizes one image \
        per channel of --layer in one batch and writes a sprite sheet.

        Examples:
          loupe visualize --target "Granny Smith" --out out/apple
          loupe visualize --layer features.10 --batch-channels 0..15 --steps 256 --figure-format png,svg --out out/channels
        """)

    @OptionGroup public var deviceOptions: DeviceOptions
    @OptionGroup public var modelOptions: ModelOptions
    @OptionGroup(title: "Figures") public var figureOptions: FigureOptions
    @Option(help: "Layer of the objective (`loupe layers`).") public var layer: String?
    @Option(parsing: .unconditional, help: "Channel of --layer: maximize its mean activation.") public var channel: Int?
    @Option(help: "C,X,Y or C: one unit of --layer (C alone: at the centre).") public var neuron: String?
    @Option(name: .customLong("target"), parsing: .unconditional, help: "A class index or name (ImageNet's, or --labels'): maximize its logit.") public var classTarget: String?
    /// The spelling before 0.9 (hidden; one release).
    @Option(name: .customLong("class"), parsing: .unconditional, help: .hidden) public var classAlias: String?
    @Option(help: "An objective expression, e.g. \"0.2*features.10:5 + 0.8*class:948\".") public var objective: String?
    @Option(help: "A..B: one image per channel A through B of --layer, optimized as one batch; also writes a labelled sprite figure.") public var batchChannels: String?
    @Option(name: .customLong("count"), parsing: .unconditional, help: "Optimize N images of the same objective in one batch (with --diversity: different facets of it).") public var count: Int = 1
    /// The spelling before 0.9 (hidden; one release).
    @Option(name: .customLong("batch"), parsing: .unconditional, help: .hidden) public var batchAlias: Int?
    var batch: Int { batchAlias ?? count }
    @Option(parsing: .unconditional, help: "Optimization steps.") public var steps: Int = 512
    @Option(parsing: .unconditional, help: "Image size (square).") public var size: Int = 224
    @Option(help: "Parameterization: fourier or pixel.") public var param: String = "fourier"
    @Option(parsing: .unconditional, help: "Fourier: exponent of the 1/f frequency scaling.") public var decay: Float = 1
    @Flag(inversion: .prefixedNo, help: "Optimize in ImageNet-decorrelated colour.") public var decorrelate = true
    @Option(help: "Transformation robustness: standard (pad 12, jitter 8, scale 0.9-1.1, rotate -10..10, jitter 4) or none.") public var transforms: String = "standard"
    @Option(parsing: .unconditional, help: "Learning rate.") public var lr: Float = 0.05
    @Option(help: "adam or sgd.") public var optimizer: String = "adam"
    @Option(parsing: .unconditional, help: "Weight of the L2 penalty, mean (x - 0.5)^2.") public var l2: Float = 0
    @Option(parsing: .unconditional, help: "Weight of the L1 penalty, mean |x - 0.5|.") public var l1: Float = 0
    @Option(parsing: .unconditional, help: "Weight of the total variation penalty, TV^beta with --beta.") public var tv: Float = 0
    @Option(parsing: .unconditional, help: "Exponent beta of the total variation.") public var beta: Float = 1
    @Option(parsing: .unconditional, help: "Weight of the frequency penalty (spectrum energy weighted by |f|).") public var freq: Float = 0
    @Option(parsing: .unconditional, help: "Weight of the blur penalty, mean (x - blur(x))^2.") public var blur: Float = 0
    @Option(parsing: .unconditional, help: "Weight of Lucid's diversity term (Gram-matrix cosines between the images of a batch), subtracted from the objective.") public var diversity: Float = 0
    @Option(help: "Layer of the diversity term (default: --layer).") public var diversityLayer: String?
    @Option(parsing: .unconditional, help: "Seed of the initial image and the transforms.") public var seed: UInt64 = 0
    @Option(parsing: .unconditional, help: "Report progress every N steps.") public var reportEvery: Int = 16
    @Option(help: "Output folder.") public var out: String
    @Flag(help: "Replace --out whole when it holds an earlier Loupe run (without it, a folder that holds files is refused).")
    public var force = false

    public init() {}

    /// One objective per image and a file name for each.
    func objectives(classes: Int) throws -> [(Objective, String)] {
        guard classTarget == nil || classAlias == nil else { throw UserError("give --target once (--class is its old spelling)") }
        let classTarget = classTarget ?? classAlias
        let given = [channel != nil, neuron != nil, classTarget != nil, objective != nil, batchChannels != nil].filter { $0 }.count
        guard given <= 1 else { throw UserError("give one of --channel, --neuron, --target, --objective, --batch-channels") }
        let names = try modelOptions.classNames(classes: classes), synonyms = modelOptions.classSynonyms(classes: classes)
        func needLayer(_ option: String) throws -> String {
            guard let layer else { throw UserError("\(option) needs --layer") }
            return layer
        }
        if let channel { return [(.channel(layer: try needLayer("--channel"), channel: channel), "\(layer!)_c\(channel)")] }
        if let neuron {
            let parts = neuron.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard (parts.count == 1 || parts.count == 3), parts.allSatisfy({ ($0 ?? -1) >= 0 }) else { throw UserError("--neuron \(neuron): expected C or C,X,Y") }
            let l = try needLayer("--neuron")
            return [(.neuron(layer: l, channel: parts[0]!, x: parts.count == 3 ? parts[1] : nil, y: parts.count == 3 ? parts[2] : nil),
                     "\(l)_n\(parts.compactMap { $0 }.map(String.init).joined(separator: "_"))")]
        }
        if let classTarget {
            let k = try Probe.resolveTargets(classTarget, count: 1, classes: classes, top: [0], names: names, synonyms: synonyms)[0]
            return [(.classLogit(k), "class_\(k)")]
        }
        if let objective {
            let lookup = { (name: String) throws -> Int in try Probe.resolveClass(name, names: names, synonyms: synonyms, flag: "--objective class:") }
            do { return [(try Objective.parse(objective, classIndex: lookup), "objective")] } catch let error as WorkflowError { throw error } catch {
                throw UserError("--objective: \(error)")
            }
        }
        if let batchChannels {
            let l = try needLayer("--batch-channels")
            let ends = batchChannels.components(separatedBy: "..").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard ends.count == 2, let a = ends[0], let b = ends[1], a >= 0, b >= a else { throw UserError("--batch-channels \(batchChannels): expected A..B with 0 <= A <= B") }
            return (a...b).map { (.channel(layer: l, channel: $0), "\(l)_c\($0)") }
        }
        if let layer { return [(.layer(layer), "\(layer)_deepdream")] }
        throw UserError("no objective: give --layer with --channel, --neuron or alone, --target, --objective or --batch-channels")
    }

    func settings(_ objectives: [(Objective, String)]) throws -> FeatureVisualization {
        guard let basis = ImageParameterization.Basis(rawValue: param) else { throw UserError("--param \(param): expected fourier or pixel") }
        let set: TransformSet
        switch transforms {
        case "standard": set = .standard
        case "none": set = .none
        default: throw UserError("--transforms \(transforms): expected standard or none")
        }
        let opt: Optimizer
        switch optimizer {
        case "adam": opt = .adam(AdamSettings(learningRate: lr))
        case "sgd": opt = .sgd(learningRate: lr)
        default: throw UserError("--optimizer \(optimizer): expected adam or sgd")
        }
        guard steps >= 1 else { throw UserError("--steps must be at least 1") }
        guard size >= 16 else { throw UserError("--size \(size): at least 16 pixels") }
        guard reportEvery >= 1 else { throw UserError("--report-every must be at least 1") }
        let regs = [Regularizer(.l2, weight: l2), Regularizer(.l1, weight: l1), Regularizer(.totalVariation(beta), weight: tv),
                    Regularizer(.frequency, weight: freq), Regularizer(.blur, weight: blur)].filter { $0.weight != 0 }
        var job = FeatureVisualization(objectives: objectives.map(\.0), size: size, steps: steps, basis: basis, decay: decay,
                                       decorrelate: decorrelate, transforms: set, optimizer: opt, regularizers: regs, seed: seed,
                                       reportEvery: reportEvery)
        if diversity != 0 {
            guard objectives.count >= 2 else { throw UserError("--diversity needs a batch (--batch-channels A..B)") }
            guard let l = diversityLayer ?? layer else { throw UserError("--diversity needs --diversity-layer or --layer") }
            job.diversity = (l, diversity)
        }
        return job
    }

    /// The objectives, each repeated --batch times.
    func batched(_ objectives: [(Objective, String)]) throws -> [(Objective, String)] {
        guard batch >= 1 else { throw UserError("--count must be at least 1") }
        guard batch == 1 || objectives.count == 1 else { throw UserError("--count repeats one objective; not with --batch-channels") }
        return batch == 1 ? objectives : (0..<batch).map { (objectives[0].0, objectives[0].1 + "_\($0)") }
    }

    public func run() throws {
        try requireNumber("--lr", lr, above: 0)
        try requireNumber("--decay", decay)
        for (flag, value) in [("--l2", l2), ("--l1", l1), ("--tv", tv), ("--freq", freq), ("--blur", blur)] {
            try requireNumber(flag, value, atLeast: 0)
        }
        try requireNumber("--beta", beta, above: 0)
        try requireNumber("--diversity", diversity)
        let output = try OutputFolder(out, force: force)
        let backend = try deviceOptions.backend()
        let model = try modelOptions.load(on: backend)
        // One pass at the chosen size: the layer names, shapes and class count.
        try MemoryBudget.requirePass(model, batch: 1, height: size, width: size, what: "feature visualization")
        let g = Graph(backend: backend)
        let logits: Graph.Value
        do { logits = try model.forward(g, g.input(try backend.tensor([Float](repeating: 0, count: 3 * size * size), [1, 3, size, size]))) } catch {
            throw UserError("\(model.architecture.name) cannot take a \(size)x\(size) image: \(error)")
        }
        let classes = g.shape(logits)[1]
        let named = try batched(try objectives(classes: classes)).map { ($0.0, fileStem($0.1)) }
        for layer in Set(named.flatMap { $0.0.layers } + (diversity != 0 ? [diversityLayer ?? layer].compactMap { $0 } : [])) where layer != Objective.logits {
            try checkLayerName(layer, in: g.layerNames, model: model.architecture.name)
        }
        // Channels, classes and neuron positions against the layers' real shapes, before any step.
        var shapes = [Objective.logits: Array(g.shape(logits).dims.dropFirst())]
        for name in g.layerNames { shapes[name] = Array(g.shape(g.tapped(name)!).dims.dropFirst()) }
        do { for (objective, _) in named { try objective.check(shapes: shapes) } } catch let error as InterpretError {
            throw UserError(error.description)
        }
        let job = try settings(named)
        let result: FeatureVisualization.Result
        do {
            result = try job.run(model) { p in
                let rate = p.seconds > 0 ? Double(p.step + 1) / p.seconds : 0
                let mean = p.objectives.reduce(0, +) / Float(p.objectives.count)
                progressLine("\(progressBar(Double(p.step + 1) / Double(job.steps))) step \(p.step + 1)/\(job.steps)  objective \(String(format: "%.4g", mean))  \(String(format: "%.2f", rate)) steps/s")
            }
        } catch let error as InterpretError { throw UserError(error.description) }
        if result.saturatedFraction > 0.5 {
            warn("warning: \(Int((100 * result.saturatedFraction).rounded()))% of the pictures' values are 0 or 255: the optimization "
                 + "ran to the limits of the image (lower --lr, now \(lr))")
        }
        progressLine("done: \(job.steps) steps in \(String(format: "%.1f", result.seconds)) s (\(String(format: "%.2f", Double(job.steps) / Swift.max(result.seconds, 1e-9))) steps/s)", done: true)

        let record = try RunRecord(modelOptions: modelOptions, model: model, preprocessing: nil, backend: backend)
        try output.publish { staging in
            let plane = 3 * result.size * result.size
            for (i, (_, name)) in named.enumerated() {
                try result.image(i).writePNG(to: staging.appendingPathComponent(name + ".png"))
                // The image before 8-bit rounding: [3, size, size] in [0, 1].
                try npyData(Array(result.images[(i * plane)..<((i + 1) * plane)]), shape: [3, result.size, result.size])
                    .write(to: staging.appendingPathComponent(name + ".npy"))
            }
            if named.count > 1 {
                let cells = named.indices.map { i in
                    ImageGrid.Cell(result.image(i), title: named[i].0.description, caption: String(format: "objective %.4g", result.objectives[i]))
                }
                try figureOptions.write(try ImageGrid.sprite(cells, title: "Feature visualization · \(model.architecture.name)",
                                                   subtitle: "\(job.steps) steps · \(param)\(decorrelate ? ", decorrelated" : "") · transforms \(transforms) · seed \(seed)"),
                                        stem: "sprite", into: staging)
            }
            let json: [String: Any] = [
                "model": model.architecture.name, "device": backend.name, "seconds": result.seconds, "run": record.json,
                "steps_per_second": Double(job.steps) / Swift.max(result.seconds, 1e-9),
                "settings": ["steps": job.steps, "size": job.size, "param": param, "decay": decay, "decorrelate": decorrelate,
                             "transforms": transforms, "optimizer": optimizer, "lr": lr, "l2": l2, "l1": l1, "tv": tv, "beta": beta,
                             "freq": freq, "blur": blur, "diversity": diversity, "diversity_layer": diversityLayer ?? layer ?? "", "seed": seed] as [String: Any],
                "images": named.enumerated().map { i, item in
                    ["file": item.1 + ".png", "values": item.1 + ".npy", "objective": item.0.description, "final_objective": result.objectives[i]] as [String: Any]
                },
            ]
            try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]).write(to: staging.appendingPathComponent("visualize.json"))
            var blocks: [HTMLReport.Block] = []
            if named.count > 1 { blocks.append(.figure("sprite.\(try figureOptions.preferred())", caption: "Every image with its objective and final objective value.")) }
            blocks.append(.gallery(named.indices.map { i in (named[i].1 + ".png", "\(named[i].0): objective \(String(format: "%.4g", result.objectives[i]))") }))
            let report = HTMLReport(title: "loupe visualize: \(model.architecture.name)", sections: [
                .init("Run", [.facts(record.facts + [("steps", "\(job.steps) in \(String(format: "%.1f", result.seconds)) s"), ("size", "\(size)"),
                                                      ("parameterization", "\(param)\(decorrelate ? ", decorrelated" : "")"), ("transforms", transforms),
                                                      ("optimizer", "\(optimizer), learning rate \(lr)"), ("seed", "\(seed)")])]),
                .init("Images", blocks),
            ])
            try report.write(to: staging.appendingPathComponent("index.html"))
        }
        for (i, (objective, name)) in named.enumerated() {
            emit("\(name).png  \(objective)  objective \(String(format: "%.4g", result.objectives[i]))")
        }
        emit("-> \(output.shown())")
        emit("report: \(output.shown("index.html"))")
    }
}
