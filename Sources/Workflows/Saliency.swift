import Backend
import Figures
import Foundation
import ImageIO
import Interpret
import Models

/// `loupe saliency`'s work: every method's maps for a batch of images and targets, timed, with
/// deletion and insertion scores when asked; then the per-image folders (maps as .npy and PNG,
/// overlays, a grid figure, a metrics figure, summary.json) and the run's report.
public struct SaliencyRun {
    /// One method's maps for the whole batch.
    public struct Result {
        /// The method's registry name.
        public let name: String
        /// Its maps.
        public let attribution: Attribution
        /// Its wall time for the batch.
        public let milliseconds: Double
        /// Its settings, as summary.json records them.
        public let parameters: [String: Any]
    }

    /// A method to run: its registry name, the method and its settings for the records.
    public typealias Method = (name: String, method: any AttributionMethod, parameters: [String: Any])

    /// The results in the order the methods were given.
    public let results: [Result]
    /// curves[image][method][mode]: the deletion and insertion curves and their AUC (empty
    /// without metrics).
    public let curves: [[[(curve: [Float], auc: Float)]]]
    /// The metrics' wall time in seconds, nil without metrics.
    public let metricsSeconds: Double?
    /// Pixels removed or inserted per step of the curves, and images per device batch.
    public let metrics: (step: Int, batch: Int)?
    /// quality[image][method]: the map's Quantus scores (with metrics; against the image's mask
    /// when masks were given).
    public let quality: [[MapQuality]]
    /// The perturbation metrics asked for and their settings (nil: none).
    public let perturbation: (metrics: [PerturbationMetric], settings: PerturbationMetric.Settings)?
    /// scores[image][method][metric]: the perturbation metrics' scores, in `perturbation`'s order.
    public let scores: [[[PerturbationMetric.Score]]]

    /// Runs `methods` on `model` for `input` [N, 3, H, W] and `targets` (one per image); with
    /// `metrics`, scores each map by deletion and insertion and by `MapQuality`, against
    /// `masks` (one per image, H x W, true where the evidence is) when given, and by the
    /// `perturbation` metrics.
    public init(model: Model, input: Tensor, methods: [Method], targets: [Int], metrics: (step: Int, batch: Int)?,
                masks: [[Bool]]? = nil, perturbation: (metrics: [PerturbationMetric], settings: PerturbationMetric.Settings)? = nil) throws {
        var results: [Result] = []
        for m in methods {
            let start = DispatchTime.now().uptimeNanoseconds
            let attribution = try m.method.attribute(model, input: input, targets: targets)
            // A NaN or an overflow would draw as an empty map: refused, not drawn.
            for i in 0..<input.shape[0] where attribution.map(i).contains(where: { !$0.isFinite }) {
                throw WorkflowError("\(m.name) gave NaN or infinite attributions for image \(i): the input, its noise or a layer overflowed")
            }
            results.append(Result(name: m.name, attribution: attribution,
                                  milliseconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6, parameters: m.parameters))
        }
        self.results = results
        self.metrics = metrics
        self.perturbation = perturbation
        guard let metrics else {
            guard masks == nil else { throw WorkflowError("a mask is scored with the metrics: --mask needs --metrics") }
            guard perturbation == nil else { throw WorkflowError("the perturbation metrics come with the metrics: add --metrics") }
            (curves, metricsSeconds, quality, scores) = ([], nil, [], []); return
        }
        guard metrics.step >= 1 else { throw WorkflowError("--metric-step must be positive") }
        if let masks, masks.count != input.shape[0] { throw WorkflowError("\(masks.count) masks for \(input.shape[0]) images") }
        quality = try (0..<input.shape[0]).map { i in
            try results.map { try MapQuality(map: $0.attribution.map(i), mask: masks?[i]) }
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let values = try model.backend.values(input)
        let (n, h, w) = (input.shape[0], input.shape[2], input.shape[3])
        var curves: [[[(curve: [Float], auc: Float)]]] = []
        var scores: [[[PerturbationMetric.Score]]] = []
        for i in 0..<n {
            let image = try model.backend.tensor(Array(values[(i * 3 * h * w)..<((i + 1) * 3 * h * w)]), [1, 3, h, w])
            curves.append(try results.map { result in
                try CausalMetric.Mode.allCases.map { mode in
                    try CausalMetric(mode, step: metrics.step, batch: metrics.batch).evaluate(model, image: image, target: targets[i], map: result.attribution.map(i))
                }
            })
            guard let perturbation else { continue }
            scores.append(try zip(results, methods).map { result, m in
                try perturbation.metrics.map { metric in
                    try metric.evaluate(model, image: image, target: targets[i], map: result.attribution.map(i), raw: result.attribution.raw(i),
                                        method: m.method, settings: perturbation.settings)
                }
            })
        }
        self.curves = curves
        self.scores = scores
        metricsSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }
}

/// What a saliency run writes: for each image a folder, and the run's report.
public struct SaliencyOutput {
    /// The run.
    public var run: SaliencyRun
    /// The image files, their folder names (stems) and their prepared images.
    public var files: [String], stems: [String], prepared: [RGBImage]
    /// The probe pass (probabilities and class names).
    public var probe: Probe
    /// Each image's target class.
    public var targets: [Int]
    /// The model, its CAM layer and the backend's name.
    public var model: Model, layer: String, device: String
    /// How maps are drawn and in which formats figures are written.
    public var style: MapStyle, figures: FigureWriter
    /// The run's record.
    public var record: RunRecord
    /// When the methods explained an objective (`Model.targeting`), not a class: its text and
    /// its value for each image.
    public var objective: (text: String, values: [Float])?
    /// A segmentation model's targets, one per image: each class summed over its region.
    public var regions: [RegionTarget]?

    /// The output of `run` over `files`.
    public init(run: SaliencyRun, files: [String], stems: [String], prepared: [RGBImage], probe: Probe, targets: [Int], model: Model,
                layer: String, device: String, style: MapStyle, figures: FigureWriter, record: RunRecord) {
        self.run = run; self.files = files; self.stems = stems; self.prepared = prepared; self.probe = probe; self.targets = targets
        self.model = model; self.layer = layer; self.device = device; self.style = style; self.figures = figures; self.record = record
    }

    private var classes: Int { probe.scores.classes }
    private func probability(_ i: Int) -> Float {
        objective?.values[i] ?? regions?[i].meanProbability ?? probe.scores.probabilities[i * classes + targets[i]]
    }
    private func label(_ i: Int) -> String {
        objective?.text ?? classLabel(targets[i], names: probe.names) + (regions.map { " over \($0[i].pixels) px (\($0[i].region.text))" } ?? "")
    }
    private var readsLayer: Bool { SaliencyOutput.readsLayer(run.results.map(\.name)) }

    /// Why image `i`'s maps may say nothing, one line each (`ResultWarnings`): the model's
    /// output is flat, the target class has a probability below 1e-4 (a region's: its mean),
    /// or a method's map is all zero.
    public func warnings(_ i: Int) -> [String] {
        ResultWarnings.lines(probe.scores, i, probability: objective == nil ? probability(i) : nil, mean: regions != nil,
                             maps: run.results.map { ($0.name, Array($0.attribution.map(i))) })
    }

    /// Whether any of `methods` reads a layer (the report then names the CAM layer).
    static func readsLayer(_ methods: [String]) -> Bool {
        let readers = Set(MethodRegistry.entries.filter(\.readsLayer).map(\.name))
        return methods.contains { readers.contains($0) }
    }

    /// Writes each image's folder into `folder` (the caller's staging folder); the report is
    /// written once every batch of images has been (`SaliencyReport`).
    public func writeImages(into folder: URL) throws {
        for i in stems.indices { try writeImage(i, into: folder.appendingPathComponent(stems[i])) }
    }

    /// Writes each image's folder, the run's grid and index.html into `folder`: a run whose
    /// images came in one batch.
    public func write(into folder: URL) throws {
        try writeImages(into: folder)
        var report = SaliencyReport(record: record, figures: figures, layer: layer, metrics: run.metrics)
        report.add(self)
        try report.writeGrid(into: folder)
        try report.html().write(to: folder.appendingPathComponent("index.html"))
    }

    /// The names `write` creates in its folder.
    public var entries: [String] { stems + ["index.html"] }

    /// What the report and the command's lines keep of each image once its folder is written.
    public var summaries: [SaliencySummary] {
        stems.indices.map { i in
            SaliencySummary(file: files[i], stem: stems[i], target: targets[i], label: label(i),
                            probability: probability(i), isObjective: objective != nil, methods: run.results.enumerated().map { m, r in
                                SaliencySummary.Method(name: r.name, milliseconds: r.milliseconds,
                                                       completeness: r.attribution.completenessError?[i],
                                                       auc: run.curves.isEmpty ? nil : (run.curves[i][m][0].auc, run.curves[i][m][1].auc),
                                                       quality: run.quality.isEmpty ? nil : run.quality[i][m],
                                                       scores: run.scores.isEmpty ? [] : zip(run.perturbation!.metrics, run.scores[i][m]).map { ($0, $1.value) })
                            }, warnings: warnings(i))
        }
    }

    private func writeImage(_ i: Int, into dir: URL) throws {
        let (results, curves, names) = (run.results, run.curves, probe.names)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: false)
        let image = prepared[i]
        try image.writePNG(to: dir.appendingPathComponent("input.png"))
        let shown = regions.map { image.outlined($0[i].inputMask) } ?? image
        var cells = [ImageGrid.Cell(shown, title: regions == nil ? "input" : "input, region", caption: "\(image.width)x\(image.height)")]
        var methodsJSON: [[String: Any]] = []
        for (m, result) in results.enumerated() {
            let (name, attribution) = (result.name, result.attribution)
            let (h, w) = (attribution.height, attribution.width)
            try npyData(Array(attribution.map(i)), shape: [h, w]).write(to: dir.appendingPathComponent("\(name).npy"))
            if let raw = attribution.raw(i) {
                try npyData(Array(raw), shape: [3, h, w]).write(to: dir.appendingPathComponent("\(name)_raw.npy"))
            }
            if let layer = attribution.layer(i), let shape = attribution.layerShape {
                try npyData(Array(layer), shape: shape).write(to: dir.appendingPathComponent("\(name)_layer.npy"))
            }
            let (scaled, colormap) = style.scaled(map: attribution.map(i), raw: attribution.raw(i), signed: attribution.isSigned)
            let heat = scaled.colorized(colormap, width: w, height: h)
            try heat.writePNG(to: dir.appendingPathComponent("\(name).png"))
            let overlay = try style.overlay(heat, of: scaled, on: image)
            try overlay.writePNG(to: dir.appendingPathComponent("\(name)_overlay.png"))
            cells.append(.init(overlay, title: name, caption: scaled.sign.rawValue + figures.detail(formatDuration(seconds: result.milliseconds / 1000)),
                               colorBar: ColorBar(scaled, colormap: colormap)))
            var entry: [String: Any] = ["method": name, "milliseconds": result.milliseconds, "parameters": result.parameters,
                                        "display": ["sign": scaled.sign.rawValue, "colormap": colormap.rawValue, "clip_percentile": style.outlierPercent,
                                                    "alpha": style.alpha, "overlay": style.followsMap ? "map" : "blend", "scale_low": scaled.range.low, "scale_high": scaled.range.high] as [String: Any]]
            if let e = attribution.completenessError { entry["completeness_error"] = e[i] }
            if let concepts = attribution.concepts { entry["concept"] = concepts[i] }
            if !curves.isEmpty {
                for (k, mode) in CausalMetric.Mode.allCases.enumerated() {
                    entry["\(mode.rawValue)_auc"] = curves[i][m][k].auc
                    entry["\(mode.rawValue)_curve"] = curves[i][m][k].curve
                }
            }
            if let perturbation = run.perturbation, !run.scores.isEmpty {
                for (metric, score) in zip(perturbation.metrics, run.scores[i][m]) {
                    let key = score.curve == nil || metric == .road ? metric.rawValue : "\(metric.rawValue)_auc"
                    entry[key] = jsonNumber(score.value)
                    if let curve = score.curve { entry["\(metric.rawValue)_curve"] = curve }
                }
            }
            if !run.quality.isEmpty {
                let q = run.quality[i][m]
                entry["sparseness"] = q.sparseness
                entry["complexity"] = q.complexity
                if let v = q.massAccuracy { entry["relevance_mass_accuracy"] = v }
                if let v = q.rankAccuracy { entry["relevance_rank_accuracy"] = v }
                if let v = q.pointingGame { entry["pointing_game"] = v }
            }
            methodsJSON.append(entry)
        }
        let file = URL(fileURLWithPath: files[i]).lastPathComponent
        let targetText = summaries[i].targetText(digits: 3)
        let grid = try ImageGrid.canvas(title: "\(file) · \(targetText)",
                                        subtitle: "\(model.architecture.name)\(readsLayer ? " · CAM layer \(layer)" : "")\(figures.detail(device))",
                                        rows: [cells])
        try figures.write(grid, stem: "grid", into: dir)
        if !curves.isEmpty {
            var panels = CausalMetric.Mode.allCases.enumerated().map { k, mode in
                LineChart.Panel(title: mode == .deletion ? "Deletion (lower AUC is better)" : "Insertion (higher AUC is better)",
                                xLabel: "fraction of pixels \(mode == .deletion ? "deleted" : "inserted"), most salient first",
                                yLabel: "p(\(classLabel(targets[i], names: names)))", yRange: 0...1, x: .unit,
                                series: results.enumerated().map { m, r in
                                    .init(name: "\(r.name)  AUC \(String(format: "%.3f", curves[i][m][k].auc))", values: curves[i][m][k].curve)
                                })
            }
            // Pixel flipping's and region perturbation's curves, when asked for.
            for (k, metric) in (run.perturbation?.metrics ?? []).enumerated() where run.scores[i].first?[k].curve != nil {
                let curves = run.scores[i].map { $0[k].curve ?? [] }
                let low = Swift.min(0, Double(curves.joined().min() ?? 0)), high = Swift.max(Double(curves.joined().max() ?? 1), low + 1e-6)
                let (title, xLabel, yLabel, yRange): (String, String, String, ClosedRange<Double>) = switch metric {
                case .pixelFlipping: ("Pixel flipping (lower is better)", "fraction of pixels set to black, most salient first",
                                      "p(\(classLabel(targets[i], names: names)))", 0...1)
                case .road: ("ROAD (lower is better)", "pixels imputed, \(formatPercentages(run.perturbation!.settings.percentages)), most salient first",
                             "p(\(classLabel(targets[i], names: names)))", 0...1)
                default: ("Region perturbation (higher is better)", "fraction of \(curves[0].count) regions set to black, most relevant first",
                          "drop of p", low...high)
                }
                panels.append(LineChart.Panel(title: title, xLabel: xLabel, yLabel: yLabel, yRange: yRange, x: .unit,
                                              series: results.enumerated().map { m, r in
                                                  .init(name: "\(r.name)  \(metric == .road ? "mean" : "AUC") \(String(format: "%.3g", run.scores[i][m][k].value))", values: curves[m])
                                              }, zeroLine: metric == .regionPerturbation))
            }
            try figures.write(try LineChart.canvas(title: "\(file) · \(targetText)", panels: panels), stem: "metrics", into: dir)
        }
        let summary: [String: Any] = [
            "image": stems[i], "model": model.architecture.name, "layer": layer, "device": device,
            "target": objective.map { ["objective": $0.text, "value": $0.values[i]] as [String: Any] }
                ?? ["index": targets[i], "label": classLabel(targets[i], names: names), "probability": probability(i)]
                    .merging(regions.map { ["region": $0[i].json] } ?? [:]) { a, _ in a },
            "input_size": [image.height, image.width], "methods": methodsJSON,
            "grid": ["input"] + results.map(\.name), "image_path": files[i], "run": record.json, "warnings": warnings(i),
            "metrics": run.metrics.map { m in
                var settings: [String: Any] = ["step": m.step, "batch": m.batch, "blur_sigma": CausalMetric(.insertion).blurSigma]
                if let p = run.perturbation {
                    settings["perturbation"] = p.metrics.map(\.rawValue)
                    settings["perturbation_settings"] = ["runs": p.settings.runs, "subset_size": p.settings.subsetSize, "patch": p.settings.patch,
                                                         "regions": p.settings.regions, "samples": p.settings.samples, "radius": p.settings.radius,
                                                         "stdev": p.settings.stdev, "seed": p.settings.seed, "pixel_flipping_step": p.settings.step,
                                                         "percentages": p.settings.percentages, "imputation_noise": p.settings.imputationNoise] as [String: Any]
                }
                return settings
            } ?? NSNull() as Any,
        ]
        try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys])
            .write(to: dir.appendingPathComponent("summary.json"))
    }

}

/// "1% to 99%" or "10%, 50%, 90%": the percentages of a curve's x axis.
private func formatPercentages(_ p: [Double]) -> String {
    let text = p.map { String(format: "%g%%", $0) }
    return text.count > 4 ? "\(text.first!) to \(text.last!)" : text.joined(separator: ", ")
}

/// One image of a saliency run, as the report and the command's lines show it.
public struct SaliencySummary: Sendable {
    /// A method's numbers for this image.
    public struct Method: Sendable {
        /// The method's registry name.
        public let name: String
        /// Its wall time for the batch the image was in.
        public let milliseconds: Double
        /// Its completeness error for this image (methods that have one).
        public let completeness: Float?
        /// Its deletion and insertion AUC for this image (with metrics).
        public let auc: (deletion: Float, insertion: Float)?
        /// Its map's Quantus scores for this image (with metrics).
        public let quality: MapQuality?
        /// Its perturbation metrics' scores for this image, in the run's order.
        public var scores: [(metric: PerturbationMetric, value: Float)] = []
    }
    /// The image file, its folder name, its target class, the class's label and probability
    /// (an objective's text and value when `isObjective`).
    public let file: String, stem: String, target: Int, label: String, probability: Float
    /// Whether the target is an objective (`label` its text, `probability` its value).
    public var isObjective = false
    /// Every method's numbers, in the run's order.
    public let methods: [Method]
    /// Why the maps may say nothing (`SaliencyOutput.warnings`); empty when nothing was seen.
    public var warnings: [String] = []

    /// "target 281 tabby cat (p = 0.912)", or "objective layer3:88 (value = 3.21)".
    public func targetText(digits: Int) -> String {
        isObjective ? "objective \(label) (value = \(String(format: "%.4g", probability)))"
            : "target \(target) \(label) (p = \(String(format: "%.\(digits)f", probability)))"
    }
}

/// index.html of a saliency run: the run, then per image its grid, metrics plot, a table and
/// every map. Built from the images' summaries, so a run over many images holds only their
/// numbers, not their maps, until the end.
public struct SaliencyReport {
    /// Every image's summary, in the run's order.
    public var summaries: [SaliencySummary]
    /// The run's record, the figures' formats and the CAM layer.
    public var record: RunRecord, figures: FigureWriter, layer: String
    /// The metrics' step and batch, and their wall time in seconds (nil without metrics).
    public var metrics: (step: Int, batch: Int)?, metricsSeconds: Double?

    /// Each method's name and its wall time summed over the run's batches.
    public var methodTimes: [(name: String, milliseconds: Double)]

    /// An empty report of a run recorded as `record`, its figures in `figures`' formats.
    public init(record: RunRecord, figures: FigureWriter, layer: String, metrics: (step: Int, batch: Int)?) {
        (self.summaries, self.record, self.figures, self.layer, self.metrics, self.metricsSeconds, self.methodTimes) = ([], record, figures, layer, metrics, nil, [])
    }

    /// Adds a batch of images: their summaries, their methods' and metrics' times.
    public mutating func add(_ output: SaliencyOutput) {
        summaries += output.summaries
        if methodTimes.isEmpty { methodTimes = output.run.results.map { ($0.name, 0) } }
        for (m, r) in output.run.results.enumerated() where m < methodTimes.count { methodTimes[m].milliseconds += r.milliseconds }
        if let seconds = output.run.metricsSeconds { metricsSeconds = (metricsSeconds ?? 0) + seconds }
    }

    /// The most images the run's grid shows (the first ones).
    public static let gridRows = 16

    /// Writes the run's grid into `folder` (the run's staging folder, each image's folder in it)
    /// when the run has two images or more: a row per image (the first `gridRows`), labelled
    /// with its file and target; a column per method, labelled with it; the input and each
    /// method's overlay as the image's folder holds them.
    public func writeGrid(into folder: URL) throws {
        guard summaries.count > 1, let methods = summaries.first?.methods.map(\.name) else { return }
        let shown = summaries.prefix(Self.gridRows)
        let rows: [[ImageGrid.Cell?]] = try shown.map { s in
            let dir = folder.appendingPathComponent(s.stem)
            return try (["input"] + methods.map { "\($0)_overlay" }).map { .init(try RGBImage(contentsOf: dir.appendingPathComponent("\($0).png"))) }
        }
        let title = "\(summaries.count) images by \(methods.count) method\(methods.count == 1 ? "" : "s")"
            + (summaries.count > shown.count ? " (the first \(shown.count))" : "")
        let canvas = try ImageGrid.canvas(title: title, subtitle: record.model + (SaliencyOutput.readsLayer(methods) ? " · CAM layer \(layer)" : ""),
                                          rows: rows, columnHeaders: ["input"] + methods,
                                          rowHeaders: shown.map { "\(URL(fileURLWithPath: $0.file).lastPathComponent) · \($0.targetText(digits: 2))" },
                                          tile: 160)
        try figures.write(canvas, stem: "grid", into: folder)
    }

    /// The report.
    public func html() throws -> HTMLReport {
        let figure = figures.preferred
        let methods = summaries.first?.methods.map(\.name) ?? []
        let readsLayer = SaliencyOutput.readsLayer(methods)
        let hasCurves = summaries.first?.methods.first?.auc != nil
        var facts = record.facts
        facts.append(("methods", methodTimes.map { "\($0.name) (\(formatDuration(seconds: $0.milliseconds / 1000)))" }.joined(separator: ", ")))
        if readsLayer { facts.append(("CAM layer", layer)) }
        if let seconds = metricsSeconds, let metrics {
            facts.append(("deletion/insertion metrics", String(format: "%.1f s (step %d pixels)", seconds, metrics.step)))
        }
        var report = HTMLReport(title: "loupe saliency: \(summaries.count) image\(summaries.count == 1 ? "" : "s"), \(methods.count) method\(methods.count == 1 ? "" : "s")",
                                sections: [.init("Run", [.facts(facts)])])
        if summaries.count > 1 {
            report.sections.append(.init("All images", [.figure("grid.\(figure)", caption: "A row per image, a column per method: each map over its image"
                                                                 + (summaries.count > Self.gridRows ? " (the first \(Self.gridRows) images)" : "") + ".")]))
        }
        for s in summaries {
            let stem = s.stem
            let target = s.targetText(digits: 3)
            var blocks: [HTMLReport.Block] = s.warnings.map { .paragraph("Warning: " + $0 + ".") }
            blocks.append(.figure("\(stem)/grid.\(figure)", caption: "The input and each method's map over it; colour bars in the map's units."))
            if hasCurves {
                blocks.append(.figure("\(stem)/metrics.\(figure)", caption: "Deletion and insertion curves: the target's probability as the most salient pixels are removed or inserted."))
            }
            var header = ["method", "time"]
            if hasCurves { header += ["deletion AUC", "insertion AUC", "sparseness", "complexity"] }
            let masked = s.methods.contains { $0.quality?.massAccuracy != nil }
            if masked { header += ["relevance mass", "relevance rank", "pointing game"] }
            let perturbation = s.methods.first?.scores.map(\.metric) ?? []
            header += perturbation.map { $0.rawValue.replacingOccurrences(of: "_", with: " ") + ($0.higherIsBetter ? " ↑" : " ↓") }
            let completeness = s.methods.contains { $0.completeness != nil }
            if completeness { header.append("completeness error") }
            blocks.append(.table(header: header, rows: s.methods.map { r in
                var row = [r.name, formatDuration(seconds: r.milliseconds / 1000)]
                if let auc = r.auc { row += [String(format: "%.4f", auc.deletion), String(format: "%.4f", auc.insertion)] }
                if hasCurves, let q = r.quality { row += [String(format: "%.4f", q.sparseness), String(format: "%.3f", q.complexity)] }
                if masked {
                    row += [r.quality?.massAccuracy.map { String(format: "%.4f", $0) } ?? "", r.quality?.rankAccuracy.map { String(format: "%.4f", $0) } ?? "",
                            r.quality?.pointingGame.map { $0 ? "hit" : "miss" } ?? ""]
                }
                row += r.scores.map { $0.value.isFinite ? String(format: "%.4g", $0.value) : "undefined" }
                if completeness { row.append(r.completeness.map { String(format: "%.4g", $0) } ?? "") }
                return row
            }))
            blocks.append(.gallery([("\(stem)/input.png", "input")] + s.methods.flatMap { r in
                [("\(stem)/\(r.name)_overlay.png", "\(r.name) overlay"), ("\(stem)/\(r.name).png", "\(r.name) map")]
            }))
            blocks.append(.paragraph("Files: \(stem)/summary.json (every number above), <method>.npy (the maps), <method>_raw.npy (signed attributions), <method>_layer.npy (the layer methods' attributions at the layer, channels x height x width)."))
            report.sections.append(.init("\(URL(fileURLWithPath: s.file).lastPathComponent): \(target)", blocks))
        }
        return report
    }
}
