import ArgumentParser
import Backend
import Figures
import Foundation
import Graph
import ImageIO
import Interpret
import Models

/// `loupe saliency`: attribution maps for one or more images, written as .npy, PNG, overlay,
/// a side-by-side grid and summary.json per image.
public struct SaliencyCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "saliency",
        abstract: "Saliency and attribution maps (gradient, guided backprop, Grad-CAM and their family).",
        discussion: """
            Methods: \(MethodOptions.names.joined(separator: ", ")), or all (every method but \
            attention_rollout, which needs a vision transformer, and the slow ones below). guided_backprop and deconvnet \
            override the gradient of ReLU and ReLU6 only, as Captum does: GELU, SiLU, HardSwish \
            and other activations keep their ordinary gradient. --method all leaves out the slow methods \
            (scorecam and occlusion: hundreds of passes per image); all+slow runs them too.

            Examples:
              loupe saliency --image Assets/chelsea.png --method gradient,guided_backprop,gradcam --out out/sal
              loupe saliency --image photos/ --method integrated_gradients,gradcam --target "tabby cat" --metrics --figure-format png,pdf --out out/sal
            """)

    @OptionGroup public var deviceOptions: DeviceOptions
    @OptionGroup public var modelOptions: ModelOptions
    @Option(name: .customLong("image"), parsing: .upToNextOption, help: "PNG or JPEG images, or folders of them.")
    public var images: [String]
    @OptionGroup public var methodOptions: MethodOptions
    @OptionGroup(title: "Figures") public var mapStyle: MapStyleOptions
    @OptionGroup(title: "Figures") public var figureOptions: FigureOptions
    @Option(help: "Output folder; one subfolder per image, named after the image file.")
    public var out: String
    @Flag(help: "Replace --out whole when it holds an earlier Loupe run (without it, a folder that holds files is refused).")
    public var force = false
    @Flag(help: "Use the images at their own size instead of the preset's resize and centre crop (--preset, --resize, --crop) (all images must then share a size).")
    public var noResize = false

    @Flag(help: "Also score each map by deletion and insertion (Petsiuk et al.): curves and AUC in summary.json, a metrics figure.")
    public var metrics = false
    @Option(parsing: .unconditional, help: "Pixels removed or inserted per step of the deletion and insertion curves.") public var metricStep: Int = 224

    public init() {}

    public func run() throws {
        let methods = try methodOptions.parseMethods()
        let style = try mapStyle.style()
        _ = try figureOptions.formats()
        let files = try imageFiles(images)
        let preprocessing = try modelOptions.preprocessing(noResize: noResize)
        var prepared: [RGBImage] = []
        for file in files { prepared.append(try preprocessing.prepare(try RGBImage(contentsOf: URL(fileURLWithPath: file)))) }
        guard Set(prepared.map { "\($0.width)x\($0.height)" }).count == 1 else {
            throw UserError("with --no-resize every image must have the same size")
        }
        let (h, w) = (prepared[0].height, prepared[0].width)
        let stems = files.map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent }
        guard Set(stems).count == stems.count else { throw UserError("two images share a file name; their output folders would collide") }
        let output = try OutputFolder(out, force: force)

        let backend = try deviceOptions.backend()
        let model = try modelOptions.load(on: backend)
        let values = prepared.flatMap { preprocessing.normalize($0) }
        let input = try backend.tensor(values, [files.count, 3, h, w])
        // Probabilities and default targets from one forward pass.
        let g = Graph(backend: backend)
        let logits = try model.forward(g, g.input(input))
        let scores = try ClassScores(graph: g, logits: logits)
        let (classes, probabilities) = (scores.classes, scores.probabilities)
        let camLayer = try methodOptions.camLayer(for: methods, model: model, graph: g)
        let names = try modelOptions.classNames(classes: classes)
        let targets = try methodOptions.resolveTargets(count: files.count, classes: classes, top: scores.topClasses, names: names,
                                                     synonyms: modelOptions.classSynonyms(classes: classes))

        var results: [(String, Attribution, Double)] = []
        for name in methods {
            let start = DispatchTime.now().uptimeNanoseconds
            let result = try methodOptions.makeMethod(name, layer: camLayer, model: model).attribute(model, input: input, targets: targets)
            results.append((name, result, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6))
        }
        // curves[image][method][mode] = (curve, auc)
        var curves: [[[(curve: [Float], auc: Float)]]] = []
        let metricsStart = DispatchTime.now().uptimeNanoseconds
        if metrics {
            guard metricStep >= 1 else { throw UserError("--metric-step must be positive") }
            for i in 0..<files.count {
                let image = try backend.tensor(Array(values[(i * 3 * h * w)..<((i + 1) * 3 * h * w)]), [1, 3, h, w])
                curves.append(try results.map { _, result, _ in
                    try CausalMetric.Mode.allCases.map { mode in
                        try CausalMetric(mode, step: metricStep, batch: methodOptions.deviceBatch(for: model)).evaluate(model, image: image, target: targets[i], map: result.map(i))
                    }
                })
            }
        }
        let metricsSeconds = metrics ? Double(DispatchTime.now().uptimeNanoseconds - metricsStart) / 1e9 : nil
        let record = try RunRecord(modelOptions: modelOptions, model: model, preprocessing: preprocessing, backend: backend)
        try output.publish(stems + ["index.html"]) { staging in
            try write(results, curves: curves, files: files, stems: stems, prepared: prepared, targets: targets, probabilities: probabilities,
                      classes: classes, names: names, model: model, layer: camLayer, backend: backend, style: style, record: record, into: staging)
            try report(results, curves: curves, files: files, stems: stems, targets: targets, probabilities: probabilities, classes: classes,
                       names: names, layer: camLayer, metricsSeconds: metricsSeconds, record: record).write(to: staging.appendingPathComponent("index.html"))
        }
        for (i, stem) in stems.enumerated() {
            emit("\(stem): target \(targets[i]) \(label(targets[i], names: names)) (p = \(String(format: "%.4f", probabilities[i * classes + targets[i]]))) -> \(output.shown(stem))")
        }
        for (m, (name, result, ms)) in results.enumerated() {
            var extra = result.completenessError.map { "  completeness error " + $0.map { String(format: "%.4g", $0) }.joined(separator: ", ") } ?? ""
            if !curves.isEmpty {
                extra += "  deletion AUC " + curves.map { String(format: "%.4f", $0[m][0].auc) }.joined(separator: ", ")
                    + "  insertion AUC " + curves.map { String(format: "%.4f", $0[m][1].auc) }.joined(separator: ", ")
            }
            emit("  " + name.padding(toLength: 22, withPad: " ", startingAt: 0) + String(format: "%9.1f ms", ms) + extra)
        }
        if let metricsSeconds { emit("  deletion and insertion metrics: \(String(format: "%.1f", metricsSeconds)) s") }
        emit("report: \(output.shown("index.html"))")
    }

    /// One folder per image, in the staging folder (moved into --out together afterwards).
    func write(_ results: [(String, Attribution, Double)], curves: [[[(curve: [Float], auc: Float)]]], files: [String], stems: [String],
               prepared: [RGBImage], targets: [Int], probabilities: [Float], classes: Int, names: [String]?, model: Model, layer: String,
               backend: any Backend, style: MapStyle, record: RunRecord, into staging: URL) throws {
        for (i, stem) in stems.enumerated() {
            let dir = staging.appendingPathComponent(stem)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let image = prepared[i]
            try image.writePNG(to: dir.appendingPathComponent("input.png"))
            var cells = [ImageGrid.Cell(image, title: "input", caption: "\(image.width)x\(image.height)")]
            var methodsJSON: [[String: Any]] = []
            for (m, (name, result, ms)) in results.enumerated() {
                let (h, w) = (result.height, result.width)
                try npyData(Array(result.map(i)), shape: [h, w]).write(to: dir.appendingPathComponent("\(name).npy"))
                if let raw = result.raw(i) {
                    try npyData(Array(raw), shape: [3, h, w]).write(to: dir.appendingPathComponent("\(name)_raw.npy"))
                }
                let (scaled, colormap) = style.scaled(map: result.map(i), raw: result.raw(i), signed: result.isSigned)
                let heat = scaled.colorized(colormap, width: w, height: h)
                try heat.writePNG(to: dir.appendingPathComponent("\(name).png"))
                let overlay = try MapImages.overlay(heat, on: image, alpha: style.alpha)
                try overlay.writePNG(to: dir.appendingPathComponent("\(name)_overlay.png"))
                cells.append(.init(overlay, title: name, caption: "\(scaled.sign.rawValue) · \(formatDuration(seconds: ms / 1000))",
                                   colorBar: ColorBar(scaled, colormap: colormap)))
                var entry: [String: Any] = ["method": name, "milliseconds": ms, "parameters": methodOptions.parameters(name, layer: layer, model: model),
                                            "display": ["sign": scaled.sign.rawValue, "colormap": colormap.rawValue, "clip_percentile": style.outlierPercent,
                                                        "alpha": style.alpha, "scale_low": scaled.range.low, "scale_high": scaled.range.high] as [String: Any]]
                if let e = result.completenessError { entry["completeness_error"] = e[i] }
                if !curves.isEmpty {
                    for (k, mode) in CausalMetric.Mode.allCases.enumerated() {
                        entry["\(mode.rawValue)_auc"] = curves[i][m][k].auc
                        entry["\(mode.rawValue)_curve"] = curves[i][m][k].curve
                    }
                }
                methodsJSON.append(entry)
            }
            let file = URL(fileURLWithPath: files[i]).lastPathComponent
            let targetText = "target \(targets[i]) \(label(targets[i], names: names)) (p = \(String(format: "%.3f", probabilities[i * classes + targets[i]])))"
            let hasCAM = results.contains { MethodOptions.camNames.contains($0.0) }
            let grid = try ImageGrid.canvas(title: "\(file) · \(targetText)",
                                            subtitle: "\(model.architecture.name)\(hasCAM ? " · CAM layer \(layer)" : "") · \(backend.name)",
                                            rows: [cells])
            try figureOptions.write(grid, stem: "grid", into: dir)
            if !curves.isEmpty {
                let panels = CausalMetric.Mode.allCases.enumerated().map { k, mode in
                    LineChart.Panel(title: mode == .deletion ? "Deletion (lower AUC is better)" : "Insertion (higher AUC is better)",
                                    xLabel: "fraction of pixels \(mode == .deletion ? "deleted" : "inserted"), most salient first",
                                    yLabel: "p(\(label(targets[i], names: names)))", yRange: 0...1, x: .unit,
                                    series: results.enumerated().map { m, r in
                                        .init(name: "\(r.0)  AUC \(String(format: "%.3f", curves[i][m][k].auc))", values: curves[i][m][k].curve)
                                    })
                }
                try figureOptions.write(try LineChart.canvas(title: "\(file) · \(targetText)", panels: panels), stem: "metrics", into: dir)
            }
            let summary: [String: Any] = [
                "image": stem, "model": model.architecture.name, "layer": layer, "device": backend.name,
                "target": ["index": targets[i], "label": label(targets[i], names: names),
                           "probability": probabilities[i * classes + targets[i]]],
                "input_size": [image.height, image.width], "methods": methodsJSON,
                "grid": ["input"] + results.map { $0.0 }, "image_path": files[i], "run": record.json,
                "metrics": curves.isEmpty ? NSNull() as Any : ["step": metricStep, "batch": methodOptions.deviceBatch(for: model),
                                                             "blur_sigma": CausalMetric(.insertion).blurSigma] as [String: Any],
            ]
            try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys])
                .write(to: dir.appendingPathComponent("summary.json"))
        }
    }
}

extension SaliencyCommand {
    /// index.html: the run, then per image its grid, metrics plot, a table and every map.
    func report(_ results: [(String, Attribution, Double)], curves: [[[(curve: [Float], auc: Float)]]], files: [String], stems: [String],
                targets: [Int], probabilities: [Float], classes: Int, names: [String]?, layer: String, metricsSeconds: Double?,
                record: RunRecord) throws -> HTMLReport {
        let figure = try figureOptions.preferred()
        var run = record.facts
        run.append(("methods", results.map { "\($0.0) (\(formatDuration(seconds: $0.2 / 1000)))" }.joined(separator: ", ")))
        if results.contains(where: { MethodOptions.camNames.contains($0.0) }) { run.append(("CAM layer", layer)) }
        if let metricsSeconds { run.append(("deletion/insertion metrics", String(format: "%.1f s (step %d pixels)", metricsSeconds, metricStep))) }
        var report = HTMLReport(title: "loupe saliency: \(files.count) image\(files.count == 1 ? "" : "s"), \(results.count) method\(results.count == 1 ? "" : "s")",
                                sections: [.init("Run", [.facts(run)])])
        for (i, stem) in stems.enumerated() {
            let target = "target \(targets[i]) \(label(targets[i], names: names)) (p = \(String(format: "%.3f", probabilities[i * classes + targets[i]])))"
            var blocks: [HTMLReport.Block] = [.figure("\(stem)/grid.\(figure)", caption: "The input and each method's map over it; colour bars in the map's units.")]
            if !curves.isEmpty {
                blocks.append(.figure("\(stem)/metrics.\(figure)", caption: "Deletion and insertion curves: the target's probability as the most salient pixels are removed or inserted."))
            }
            var header = ["method", "time"]
            if !curves.isEmpty { header += ["deletion AUC", "insertion AUC"] }
            if results.contains(where: { $0.1.completenessError != nil }) { header.append("completeness error") }
            blocks.append(.table(header: header, rows: results.enumerated().map { m, r in
                var row = [r.0, formatDuration(seconds: r.2 / 1000)]
                if !curves.isEmpty { row += [String(format: "%.4f", curves[i][m][0].auc), String(format: "%.4f", curves[i][m][1].auc)] }
                if header.last == "completeness error" { row.append(r.1.completenessError.map { String(format: "%.4g", $0[i]) } ?? "") }
                return row
            }))
            blocks.append(.gallery([("\(stem)/input.png", "input")] + results.flatMap { r in
                [("\(stem)/\(r.0)_overlay.png", "\(r.0) overlay"), ("\(stem)/\(r.0).png", "\(r.0) map")]
            }))
            blocks.append(.paragraph("Files: \(stem)/summary.json (every number above), <method>.npy (the maps), <method>_raw.npy (signed attributions)."))
            report.sections.append(.init("\(URL(fileURLWithPath: files[i]).lastPathComponent): \(target)", blocks))
        }
        return report
    }
}

