import Figures
import Foundation
import ImageIO
import Interpret
import Models

/// A value with three decimals, "n/a" when not finite.
private func fixed(_ v: Float) -> String { v.isFinite ? String(format: "%.3f", v) : "n/a" }

/// What `loupe sanity` writes for one image: sanity.json, the curves and maps figures,
/// maps.npy, and the run's report.
public struct SanityOutput {
    /// The finished check.
    public var check: SanityCheck
    /// The image file, its folder name (stem) and its prepared image.
    public var image: String, stem: String, prepared: RGBImage
    /// The probe pass (probabilities and class names) and the target class.
    public var probe: Probe, target: Int
    /// The model, its CAM layer and the backend's name.
    public var model: Model, layer: String, device: String
    /// The seed of the re-drawn weights and the check's wall time in seconds.
    public var weightsSeed: UInt64, seconds: Double
    /// The test by name, its randomization and its smoothing (nil: plain maps).
    public var test: RandomizationTest, randomization: ModelRandomization, smoothing: MapSmoothing?
    /// The methods' names, in order, and their settings as sanity.json records them.
    public var methods: [String], parameters: [String: [String: Any]]
    /// How maps are drawn and in which formats figures are written.
    public var style: MapStyle, figures: FigureWriter
    /// The run's record.
    public var record: RunRecord
    /// Why the trained model's maps may say nothing (`ResultWarnings`); empty when nothing was seen.
    public var warnings: [String] = []

    /// The output of `check` on `image`.
    public init(check: SanityCheck, image: String, stem: String, prepared: RGBImage, probe: Probe, target: Int, model: Model, layer: String,
                device: String, weightsSeed: UInt64, seconds: Double, methods: [(name: String, parameters: [String: Any])], style: MapStyle,
                figures: FigureWriter, record: RunRecord, test: RandomizationTest = .cascade, randomization: ModelRandomization? = nil,
                smoothing: MapSmoothing? = nil) {
        self.test = test; self.randomization = randomization ?? test.randomization(seed: weightsSeed); self.smoothing = smoothing
        self.check = check; self.image = image; self.stem = stem; self.prepared = prepared; self.probe = probe; self.target = target
        self.model = model; self.layer = layer; self.device = device; self.weightsSeed = weightsSeed; self.seconds = seconds
        self.methods = methods.map(\.name)
        self.parameters = Dictionary(methods.map { ($0.name, $0.parameters) }, uniquingKeysWith: { a, _ in a })
        self.style = style; self.figures = figures; self.record = record
    }

    /// Writes the image's folder and index.html into `staging` (the caller's staging folder).
    public func write(into staging: URL) throws {
        let (probabilities, names) = (probe.scores.probabilities, probe.names)
        let dir = staging.appendingPathComponent(stem)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: false)
        let title = "\(URL(fileURLWithPath: image).lastPathComponent) · target \(target) \(classLabel(target, names: names)) (p = \(String(format: "%.3f", probabilities[target])))"
        try writeFigures(title: title, subtitle: "\(model.architecture.name) · \(test.rawValue): \(procedure) (seed \(weightsSeed))\(figures.detail(device))",
                         into: dir)
        let json: [String: Any] = [
            "image": stem, "model": model.architecture.name, "layer": layer, "device": device,
            "target": ["index": target, "label": classLabel(target, names: names), "probability": probabilities[target]],
            "weights_seed": weightsSeed, "seconds": seconds, "image_path": image, "run": record.json, "warnings": warnings,
            "test": test.rawValue, "granularity": randomization.granularity.rawValue, "order": randomization.order.rawValue,
            "smoothing": smoothing.map { ["samples": $0.samples, "noise": $0.magnitude, "seed": $0.seed] as [String: Any] } ?? NSNull(),
            "methods": methods.map { ["method": $0, "parameters": parameters[$0] ?? [:]] as [String: Any] },
            "stages": check.stages.map { stage in
                ["randomized_through": stage.name,
                 "spearman": stage.spearman.map(jsonNumber),
                 "ssim": stage.ssim.map(jsonNumber),
                 "entropy": stage.entropy.map(jsonNumber)] as [String: Any]
            },
            "scores": Dictionary(uniqueKeysWithValues: check.methods.indices.map { m in
                (check.methods[m], ["mean_spearman": jsonNumber(check.meanSpearman[m]),
                                    "last_spearman": jsonNumber(check.stages.last!.spearman[m]),
                                    "entropy_rise": jsonNumber(check.entropyRise[m])] as [String: Any])
            }),
        ]
        try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]).write(to: dir.appendingPathComponent("sanity.json"))
        let figure = figures.preferred
        let report = HTMLReport(title: "loupe sanity: \(URL(fileURLWithPath: image).lastPathComponent)", sections: [
            .init("Run", [.facts(record.facts + [("methods", methods.joined(separator: ", ")), ("target", title), ("weights seed", "\(weightsSeed)"),
                                                  ("time", String(format: "%.1f s", seconds))])] + warnings.map { .paragraph("Warning: " + $0 + ".") }),
            .init("Similarity to the trained model's map", [
                .figure("\(stem)/curves.\(figure)", caption: "Spearman rank correlation and SSIM of each method's map with its map on the trained model, and each map's discrete entropy (100 bins), as the weights are re-drawn: \(procedure). A method that passes falls away from 1."),
                .table(header: ["weights re-drawn through"] + methods.flatMap { ["\($0) ρ", "\($0) SSIM", "\($0) entropy"] }, rows: check.stages.map { stage in
                    [stage.name] + stage.spearman.indices.flatMap { m in
                        [fixed(stage.spearman[m]), fixed(stage.ssim[m]), fixed(stage.entropy[m])]
                    }
                }),
                .table(header: ["score"] + methods, rows: [
                    ["mean ρ over the randomized stages"] + check.meanSpearman.map(fixed),
                    ["ρ at the last stage"] + check.stages.last!.spearman.map(fixed),
                    ["entropy rise, original to last stage" + (test == .efficientMPRT ? " (eMPRT)" : "")] + check.entropyRise.map(fixed),
                ]),
            ]),
            .init("Maps", [.figure("\(stem)/maps.\(figure)", caption: "A row per method: the input, then its map at each stage (each scaled on its own; at most \(Self.mapColumns) stages, evenly spaced, first and last kept)."),
                           .paragraph("Files: \(stem)/sanity.json, \(stem)/maps.npy [stages, methods, H, W].")]),
        ])
        try report.write(to: staging.appendingPathComponent("index.html"))
    }

    /// The most stages the maps figure shows.
    static let mapColumns = 12

    /// `limit` indices of 0..<count, evenly spaced, the first and last kept (all when they fit).
    static func spaced(_ count: Int, _ limit: Int) -> [Int] {
        guard count > limit, limit >= 2 else { return Array(0..<count) }
        return (0..<limit).map { Int((Double($0) * Double(count - 1) / Double(limit - 1)).rounded()) }
    }

    /// How the weights are re-drawn, in words.
    public var procedure: String {
        let units = randomization.granularity == .block ? "blocks" : "layers"
        let path: String
        switch randomization.order {
        case .topDown: path = "\(units) re-drawn from the top down"
        case .bottomUp: path = "\(units) re-drawn from the bottom up"
        case .independent: path = "one of the \(units) re-drawn at a time"
        }
        let smooth = smoothing.map { String(format: ", each map the mean over %d copies with noise %g", $0.samples, $0.magnitude) } ?? ""
        return path + (test.finalOnly ? ", only the fully random model scored" : "") + smooth
    }

    /// The curves and maps figures, and maps.npy.
    private func writeFigures(title: String, subtitle: String, into dir: URL) throws {
        let image = prepared
        let (h, w) = (image.height, image.width)
        let stageNames = check.stages.map(\.name)
        let ssimLow = Swift.min(0, Double(check.stages.flatMap(\.ssim).filter { !$0.isNaN }.min() ?? 0))
        let entropies = check.stages.flatMap(\.entropy).filter { $0.isFinite }
        let panels = [
            LineChart.Panel(title: "Spearman rank correlation", xLabel: "weights re-drawn through", yLabel: "with the trained model's map",
                            yRange: -1...1, x: .categories(stageNames),
                            series: check.methods.indices.map { m in .init(name: check.methods[m], values: check.stages.map { $0.spearman[m] }) },
                            zeroLine: true),
            LineChart.Panel(title: "SSIM", xLabel: "weights re-drawn through", yLabel: "with the trained model's map",
                            yRange: (ssimLow.rounded(.down))...1, x: .categories(stageNames),
                            series: check.methods.indices.map { m in .init(name: check.methods[m], values: check.stages.map { $0.ssim[m] }) },
                            zeroLine: true),
            LineChart.Panel(title: "Discrete entropy", xLabel: "weights re-drawn through", yLabel: "of the map (100 bins, nats)",
                            yRange: 0...Swift.max(1, Double(entropies.max() ?? 1).rounded(.up)), x: .categories(stageNames),
                            series: check.methods.indices.map { m in .init(name: check.methods[m], values: check.stages.map { $0.entropy[m] }) },
                            zeroLine: false),
        ]
        try figures.write(try LineChart.canvas(title: title, panels: panels), stem: "curves", into: dir)
        // One row per method: the input, then the map at each stage (each scaled on its own: the
        // figure shows structure, the curves show similarity).
        let shown = Self.spaced(check.stages.count, Self.mapColumns).map { check.stages[$0] }
        var rows: [[ImageGrid.Cell?]] = []
        for m in check.methods.indices {
            var cells: [ImageGrid.Cell?] = [.init(image)]
            for stage in shown {
                let (scaled, colormap) = style.scaled(map: stage.maps[m][...], raw: nil, signed: false)
                cells.append(.init(scaled.colorized(colormap, width: w, height: h),
                                   caption: String(format: "ρ %.2f · SSIM %.2f", stage.spearman[m], stage.ssim[m])))
            }
            rows.append(cells)
        }
        let grid = try ImageGrid.canvas(title: title, subtitle: subtitle, rows: rows, columnHeaders: ["input"] + shown.map(\.name),
                                        rowHeaders: check.methods, tile: 112)
        try figures.write(grid, stem: "maps", into: dir)
        try npyData(check.stages.flatMap { $0.maps.flatMap { $0 } }, shape: [check.stages.count, check.methods.count, h, w])
            .write(to: dir.appendingPathComponent("maps.npy"))
    }
}
