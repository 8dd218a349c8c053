import ArgumentParser
import Backend
import Figures
import Foundation
import Graph
import ImageIO
import Interpret
import Models
import Workflows

/// `loupe invert`: feature inversion (Mahendran & Vedaldi 2015), one reconstruction per layer.
public struct InvertCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "invert",
        abstract: "Feature inversion: reconstruct an image from one layer's features (one reconstruction per --layer).",
        discussion: """
        Minimizes ||phi(x) - phi(x0)||^2 / ||phi(x0)||^2 + alpha-weight * mean |x - 0.5|^alpha + tv * mean TV^beta from noise, \
        Adam with a step schedule. Writes <layer>.png per layer, the strip figure (the photo, then each reconstruction with its layer and error) and invert.json; \
        prints the relative feature error ||phi(x) - phi(x0)|| / ||phi(x0)|| of each saved 8-bit picture.

        Examples:
          loupe invert --image Assets/chelsea.png --layer features.4 --out out/invert
          loupe invert --image Assets/chelsea.png --layer features.2,features.7,features.14 --steps 400 --out out/invert
        """)

    @OptionGroup public var deviceOptions: DeviceOptions
    @OptionGroup public var modelOptions: ModelOptions
    @OptionGroup public var imageOptions: ImageOptions
    @OptionGroup(title: "Figures") public var figureOptions: FigureOptions
    @Option(help: "Comma-separated layers (`loupe layers`); each is inverted on its own.") public var layer: String
    @Option(parsing: .unconditional, help: "Optimization steps.") public var steps: Int = 600
    @Option(parsing: .unconditional, help: "Learning rate of Adam (divided by 10 at 60% and again at 85% of the steps).") public var lr: Float = 0.1
    @Option(parsing: .unconditional, help: "Weight of the total variation TV^beta (default by the layer's stride s: 10 (s / 16)^2).") public var tv: Float?
    @Option(parsing: .unconditional, help: "Exponent beta of the total variation.") public var beta: Float = 2
    @Option(parsing: .unconditional, help: "Weight of the alpha-norm mean |x - 0.5|^alpha.") public var alphaWeight: Float = 0
    @Option(parsing: .unconditional, help: "Exponent alpha of the alpha-norm.") public var alpha: Float = 6
    @Option(parsing: .unconditional, help: "Random shifts of up to this many pixels each step.") public var jitter: Int = 0
    @Option(parsing: .unconditional, help: "Seed of the initial noise and the jitter.") public var seed: UInt64 = 0
    @Option(help: "Parameterization: fourier or pixel.") public var param: String = "fourier"
    @Flag(inversion: .prefixedNo, help: "Optimize in ImageNet-decorrelated colour.") public var decorrelate = true
    @Option(parsing: .unconditional, help: "Report progress every N steps.") public var reportEvery: Int = 25
    @Option(help: "Output folder.") public var out: String
    @Flag(help: "Replace --out whole when it holds an earlier Loupe run (without it, a folder that holds files is refused).")
    public var force = false

    public init() {}

    public func run() throws {
        try requireNumber("--lr", lr, above: 0)
        if let tv { try requireNumber("--tv", tv, atLeast: 0) }
        try requireNumber("--beta", beta, above: 0)
        try requireNumber("--alpha-weight", alphaWeight, atLeast: 0)
        try requireNumber("--alpha", alpha, above: 0)
        guard let basis = ImageParameterization.Basis(rawValue: param) else { throw UserError("--param \(param): expected pixel or fourier") }
        let layers = layer.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        if let twice = firstRepeated(layers) {
            throw UserError("--layer names \(twice) twice")
        }
        guard !layers.isEmpty, !layers.contains("") else { throw UserError("--layer names no layer") }
        guard steps >= 1, reportEvery >= 1, jitter >= 0 else { throw UserError("--steps and --report-every must be positive, --jitter non-negative") }
        _ = try modelOptions.preprocessing(noResize: imageOptions.noResize)  // refused before the model loads
        let imagePath = try imageOptions.image
        let output = try OutputFolder(out, force: force)
        let backend = try deviceOptions.backend()
        let model = try modelOptions.load(on: backend)
        let preprocessing = try modelOptions.preprocessing(noResize: imageOptions.noResize, for: model)
        let (_, prepared, _, shape) = try imageOptions.load(imagePath, preprocessing)
        let target = try backend.tensor(prepared.planes, shape)
        let g = Graph(backend: backend)
        do { _ = try model.forward(g, g.input(target)) } catch {
            throw UserError("\(model.architecture.name) cannot take a \(prepared.width)x\(prepared.height) image: \(error)")
        }
        for l in layers { try checkLayerName(l, in: g.layerNames, model: model.architecture.name) }

        var results: [(String, FeatureInversion, FeatureInversion.Result, Float)] = []
        for l in layers {
            let layerShape = g.shape(g.tapped(l)!)
            let stride = layerShape.rank == 4 ? Swift.max(Int((Double(prepared.height) / Double(Swift.max(layerShape[2], 1))).rounded()), 1) : 32
            let job = FeatureInversion(layers: [l], steps: steps, learningRate: lr, alpha: alpha, alphaWeight: alphaWeight, beta: beta,
                                       tvWeight: tv ?? FeatureInversion.defaultTVWeight(stride: stride),
                                       jitter: jitter, seed: seed, reportEvery: reportEvery, basis: basis, decorrelate: decorrelate)
            let result: FeatureInversion.Result
            do {
                result = try job.run(model, target: target) { p in
                    progressLine("\(l) \(progressBar(Double(p.step + 1) / Double(steps))) step \(p.step + 1)/\(steps)  relative feature error \(String(format: "%.4f", p.errors[0]))  \(String(format: "%.2f", Double(p.step + 1) / Swift.max(p.seconds, 1e-9))) steps/s")
                }
            } catch let error as InterpretError { throw UserError(error.description) }
            progressLine("\(l): \(steps) steps in \(String(format: "%.1f", result.seconds)) s", done: true)
            // What the user gets is the 8-bit picture: its error is the one reported.
            let saved = result.picture
            let error = try job.relativeErrors(model, image: saved.planes, height: saved.height, width: saved.width, target: target)[0]
            results.append((l, job, result, error))
        }
        let record = try RunRecord(modelOptions: modelOptions, model: model, preprocessing: preprocessing, backend: backend)
        try output.publish { staging in
            for (l, _, result, _) in results { try result.picture.writePNG(to: staging.appendingPathComponent(fileStem(l) + ".png")) }
            let cells = [ImageGrid.Cell(prepared, title: "input")] + results.map { l, _, result, error in
                ImageGrid.Cell(result.picture, title: l, caption: String(format: "relative feature error %.3f", error))
            }
            let strip = try ImageGrid.canvas(title: "Feature inversion of \(URL(fileURLWithPath: imagePath).lastPathComponent)",
                                             subtitle: "\(model.architecture.name) · \(steps) steps\(try figureOptions.writer().detail(backend.name))", rows: [cells])
            try figureOptions.write(strip, stem: "strip", into: staging)
            let json: [String: Any] = [
                "model": model.architecture.name, "device": backend.name, "image": imagePath, "run": record.json,
                "settings": ["steps": steps, "lr": lr, "beta": beta, "alpha": alpha, "alpha_weight": alphaWeight, "jitter": jitter, "seed": seed] as [String: Any],
                "layers": results.map { l, job, result, error in
                    ["layer": l, "file": fileStem(l) + ".png", "tv": job.tvWeight, "relative_feature_error": error,
                     "relative_feature_error_float": result.errors[0], "seconds": result.seconds] as [String: Any]
                },
            ]
            try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]).write(to: staging.appendingPathComponent("invert.json"))
            let report = HTMLReport(title: "loupe invert: \(URL(fileURLWithPath: imagePath).lastPathComponent)", sections: [
                .init("Run", [.facts(record.facts + [("steps", "\(steps)"), ("learning rate", "\(lr)"), ("parameterization", "\(param)\(decorrelate ? ", decorrelated" : "")"),
                                                      ("seed", "\(seed)")])]),
                .init("Reconstructions", [
                    .figure("strip.\(try figureOptions.preferred())", caption: "The photo, then the image whose features at each layer match the photo's."),
                    .table(header: ["layer", "TV weight", "relative feature error", "seconds"], rows: results.map { l, job, result, error in
                        [l, String(format: "%.3g", job.tvWeight), String(format: "%.4f", error), String(format: "%.1f", result.seconds)]
                    }),
                    .gallery(results.map { l, _, _, error in (fileStem(l) + ".png", "\(l) (error \(String(format: "%.3f", error)))") }),
                ]),
            ])
            try report.write(to: staging.appendingPathComponent("index.html"))
        }
        emit(TextTable.format([["layer", "tv", "relative feature error", "seconds"]] + results.map { l, job, result, error in
            [l, String(format: "%.3g", job.tvWeight), String(format: "%.4f", error), String(format: "%.1f", result.seconds)]
        }))
        emit("-> \(output.shown())")
        emit("report: \(output.shown("index.html"))")
    }
}
