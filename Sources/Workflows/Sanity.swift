import Figures
import Foundation
import ImageIO
import Interpret
import Models

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
    /// The methods' names, in order, and their settings as sanity.json records them.
    public var methods: [String], parameters: [String: [String: Any]]
    /// How maps are drawn and in which formats figures are written.
    public var style: MapStyle, figures: FigureWriter
    /// The run's record.
    public var record: RunRecord

    /// The output of `check` on `image`.
    public init(check: SanityCheck, image: String, stem: String, prepared: RGBImage, probe: Probe, target: Int, model: Model, layer: String,
                device: String, weightsSeed: UInt64, seconds: Double, methods: [(name: String, parameters: [String: Any])], style: MapStyle,
                figures: FigureWriter, record: RunRecord) {
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
        try writeFigures(title: title, subtitle: "\(model.architecture.name) · weights re-drawn from the top down (seed \(weightsSeed)) · \(device)",
                         into: dir)
        let json: [String: Any] = [
            "image": stem, "model": model.architecture.name, "layer": layer, "device": device,
            "target": ["index": target, "label": classLabel(target, names: names), "probability": probabilities[target]],
            "weights_seed": weightsSeed, "seconds": seconds, "image_path": image, "run": record.json,
            "methods": methods.map { ["method": $0, "parameters": parameters[$0] ?? [:]] as [String: Any] },
            "stages": check.stages.map { stage in
                ["randomized_through": stage.name,
                 "spearman": stage.spearman.map { $0.isNaN ? NSNull() : $0 as Any },
                 "ssim": stage.ssim.map { $0 as Any }] as [String: Any]
            },
        ]
        try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]).write(to: dir.appendingPathComponent("sanity.json"))
        let figure = figures.preferred
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

    /// The curves and maps figures, and maps.npy.
    private func writeFigures(title: String, subtitle: String, into dir: URL) throws {
        let image = prepared
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
        try figures.write(try LineChart.canvas(title: title, panels: panels), stem: "curves", into: dir)
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
        try figures.write(grid, stem: "maps", into: dir)
        try npyData(check.stages.flatMap { $0.maps.flatMap { $0 } }, shape: [check.stages.count, check.methods.count, h, w])
            .write(to: dir.appendingPathComponent("maps.npy"))
    }
}
