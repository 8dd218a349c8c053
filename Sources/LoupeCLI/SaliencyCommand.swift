import ArgumentParser
import Backend
import Figures
import Foundation
import Graph
import ImageIO
import Interpret
import Models
import Workflows

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
            (scorecam, ablationcam and occlusion: hundreds of passes per image); all+slow runs them too.

            Examples:
              loupe saliency --image Assets/chelsea.png --method gradient,guided_backprop,gradcam --out out/sal
              loupe saliency --image photos/ --method integrated_gradients,gradcam --target "tabby cat" --metrics --figure-format png,pdf --out out/sal
              loupe saliency --image Assets/chelsea.png --method gradient,integrated_gradients --objective features.16:5@3,3 --out out/neuron
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

    @Flag(help: "Also score each map by deletion and insertion (Petsiuk et al.: curves and AUC in summary.json, a metrics figure) and by Quantus' sparseness and complexity.")
    public var metrics = false
    @Option(help: "With --metrics: mask images (white where the evidence is), one for all images or one per image, comma-separated; adds Quantus' relevance mass accuracy, relevance rank accuracy and pointing game.")
    public var mask: String?
    @Option(help: "LIME's and KernelSHAP's features: slic[:N[:C]] (SLIC superpixels of each image, about N of them, default 100, compactness C, default 10: scikit-image's slic), or segmentation images (each colour one feature), prepared as the inputs are (nearest pixel), one for all images or one per image, comma-separated; default: a grid of --window pixels.")
    public var featureMask: String?
    @Option(parsing: .unconditional, help: "Pixels removed or inserted per step of the deletion and insertion curves (and set to black per step of pixel flipping).") public var metricStep: Int = 224
    @Option(help: "Also score each map by metrics that run the model on perturbed copies, comma-separated or all: \(PerturbationMetric.names) (Quantus' and Captum's definitions; implies --metrics).")
    public var perturbationMetrics: String?
    @Option(parsing: .unconditional, help: "Faithfulness correlation: random subsets per image (Quantus' nr_runs).") public var metricRuns: Int = 100
    @Option(parsing: .unconditional, help: "Faithfulness correlation: values per subset (Quantus' subset_size).") public var metricSubset: Int = 224
    @Option(parsing: .unconditional, help: "Region perturbation: the side of a region, pixels.") public var metricPatch: Int = 8
    @Option(parsing: .unconditional, help: "Region perturbation: regions set to black, most relevant first.") public var metricRegions: Int = 100
    @Option(parsing: .unconditional, help: "Max and avg sensitivity and infidelity: samples per map (each sensitivity sample runs the method once; Quantus' default is 200).") public var metricSamples: Int = 10
    @Option(parsing: .unconditional, help: "Max and avg sensitivity: the uniform noise's bound in the normalized input (Quantus' 0.2; Captum's sensitivity_max 0.02).") public var metricRadius: Float = 0.2
    @Option(parsing: .unconditional, help: "Infidelity: the Gaussian perturbations' standard deviation in the normalized input.") public var metricStdev: Float = 0.1
    @Option(help: "ROAD: the percentages of pixels imputed, comma-separated (default Quantus' 1, 3, ..., 99; each point solves the imputation once).")
    public var metricPercentages: String?
    @Option(help: "Explain an objective instead of a class, in visualize's syntax, one for all images: a channel's mean (features.16:5), a neuron (features.16:5@3,3: channel 5 at x 3, y 3), a direction, a class (class:281) or a weighted sum (\"0.5*layer4:3 + class:281\"); every method then attributes its value.")
    public var objective: String?
    @Option(help: "A segmentation model's target (output [N, classes, H, W]): the target class summed over a region, pytorch-grad-cam's SemanticSegmentationTarget: predicted (the pixels predicted as the target class; the default), box:x0,y0,x1,y1 (columns x0..<x1, rows y0..<y1 of the prepared input), or mask images (white where the region is), prepared as the inputs are, one for all images or one per image, comma-separated. The default target is the class predicted on the most pixels, background aside.")
    public var region: String?

    public init() {}

    public func run() throws {
        let methods = try methodOptions.parseMethods()
        let style = try mapStyle.style()
        _ = try figureOptions.formats()
        let files = try imageFiles(images)
        _ = try modelOptions.preprocessing(noResize: noResize)  // refused before the model loads
        let stems = files.map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent }
        guard Set(stems).count == stems.count else { throw UserError("two images share a file name; their output folders would collide") }
        let targetSpecs = try methodOptions.target.map { try perImage($0, count: files.count) }
        let maskFiles = try mask.map { try perImage($0, count: files.count, flag: "--mask", noun: "masks") }
        if maskFiles != nil, !metrics, perturbationMetrics == nil { throw UserError("--mask is scored with the metrics: add --metrics") }
        if featureMask != nil, !methods.contains(where: { ["lime", "kernel_shap"].contains($0) }) {
            throw UserError("--feature-mask is the features of lime and kernel_shap; --method names neither")
        }
        let features = try featureMask.map { try featureSource($0, count: files.count) }
        if case .files(let list) = features {
            for file in Set(list) where !FileManager.default.fileExists(atPath: file) {
                throw UserError("--feature-mask \(printable(file)): there is no file there")
            }
        }
        for file in Set(maskFiles ?? []) where !FileManager.default.fileExists(atPath: file) {
            throw UserError("--mask \(printable(file)): there is no file there")
        }
        for file in methodOptions.baselineFiles where !FileManager.default.fileExists(atPath: file) {
            throw UserError("--baseline \(printable(file)): expected black, zero, blur, uniform or an image file (there is no file there)")
        }
        if objective != nil, methodOptions.target != nil { throw UserError("--objective and --target both name what to explain; give one") }
        if objective != nil, region != nil { throw UserError("--objective and --region both name what to explain; give one") }
        let regionFiles = try region.flatMap { text -> [String]? in
            text == "predicted" || text.hasPrefix("box:") ? nil : try perImage(text, count: files.count, flag: "--region", noun: "masks")
        }
        let fixedRegion = try region.flatMap { text -> Region? in
            guard regionFiles == nil else { return nil }
            do { return try Region.parse(text) } catch { throw UserError("--region: \(error)") }
        }
        for file in Set(regionFiles ?? []) where !FileManager.default.fileExists(atPath: file) {
            throw UserError("--region \(printable(file)): expected predicted, box:x0,y0,x1,y1 or a mask image (there is no file there)")
        }
        let perturbation = try perturbationMetrics.map { text -> (metrics: [PerturbationMetric], settings: PerturbationMetric.Settings) in
            let list: [PerturbationMetric]
            do { list = try PerturbationMetric.parse(text) } catch { throw UserError("--perturbation-metrics: \(error)") }
            var s = PerturbationMetric.Settings()
            (s.step, s.runs, s.subsetSize, s.patch, s.regions) = (metricStep, metricRuns, metricSubset, metricPatch, metricRegions)
            (s.samples, s.radius, s.stdev, s.seed) = (metricSamples, metricRadius, metricStdev, methodOptions.seed)
            if let text = metricPercentages {
                let percentages = text.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
                guard !percentages.isEmpty, percentages.allSatisfy({ $0.map { $0 > 0 && $0 < 100 } ?? false }) else {
                    throw UserError("--metric-percentages: expected numbers between 0 and 100, comma-separated, got \(printable(text))")
                }
                s.percentages = percentages.map { $0! }
            }
            guard s.runs >= 2, s.subsetSize >= 1, s.patch >= 1, s.regions >= 1, s.samples >= 1 else {
                throw UserError("--metric-runs must be at least 2, and --metric-subset, --metric-patch, --metric-regions and --metric-samples positive")
            }
            guard s.radius > 0, s.radius.isFinite, s.stdev > 0, s.stdev.isFinite else { throw UserError("--metric-radius and --metric-stdev must be positive") }
            return (list, s)
        }
        let metrics = self.metrics || perturbation != nil
        if objective != nil, metrics { throw UserError("--metrics score a class's probability; with --objective there is none (leave out --metrics)") }
        let output = try OutputFolder(out, force: force)

        let backend = try deviceOptions.backend()
        let model = try modelOptions.load(on: backend)
        let preprocessing = try modelOptions.preprocessing(noResize: noResize, for: model)
        let goal = try objective.map { text -> Objective in
            let lookup = { (name: String) throws -> Int in
                let classes = try model.classCount()
                return try Probe.resolveClass(name, names: try modelOptions.classNames(classes: classes), synonyms: modelOptions.classSynonyms(classes: classes),
                                              flag: "--objective class:")
            }
            do { return try Objective.parse(text, classIndex: lookup) } catch let error as WorkflowError { throw error } catch {
                throw UserError("--objective: \(error)")
            }
        }
        let explained = goal.map { model.targeting($0) } ?? model
        let record = try RunRecord(modelOptions: modelOptions, model: model, preprocessing: preprocessing, backend: backend)
        // The images go through in batches of --batch: memory holds one batch's passes and maps,
        // whatever the number of images; each batch's folders are written before the next runs.
        // As many images per batch as --batch asks and the memory holds (the first image's size
        // is every image's: the preset's crop, or with --no-resize checked below).
        let first = try preprocessing.prepare(try RGBImage(contentsOf: URL(fileURLWithPath: files[0])))
        // Features that differ between images (SLIC, a file per image) go one image at a time:
        // LIME and KernelSHAP take one feature mask per call.
        var perBatch = features?.perImage == true ? 1
            : try MemoryBudget.fittingBatch(model, upTo: methodOptions.deviceBatch(for: model), height: first.height, width: first.width,
                                            what: "saliency's pass")
        // Image baselines are prepared as the inputs are, and must come out at their size.
        var baselineImages: [String: RGBImage] = [:]
        for file in methodOptions.baselineFiles where baselineImages[file] == nil {
            baselineImages[file] = try preprocessing.prepare(try RGBImage(contentsOf: URL(fileURLWithPath: file)))
        }
        var report: SaliencyReport?
        var size: (h: Int, w: Int)?
        try output.publish { folder in
            var start = 0
            while start < files.count {
                let range = start..<Swift.min(start + perBatch, files.count)
                let prepared = try range.map { try preprocessing.prepare(try RGBImage(contentsOf: URL(fileURLWithPath: files[$0]))) }
                if size == nil { size = (prepared[0].height, prepared[0].width) }
                let (h, w) = size!
                for p in prepared where (p.height, p.width) != (h, w) {
                    throw UserError("with --no-resize every image must have the same size (\(w)x\(h), then \(p.width)x\(p.height))")
                }
                for (file, b) in baselineImages where (b.height, b.width) != (h, w) {
                    throw UserError("--baseline \(printable(file)) is \(b.width)x\(b.height) after preprocessing, the images \(w)x\(h)")
                }
                let baselineValues = baselineImages.mapValues { preprocessing.normalize($0) }
                let features = try features.map { source -> FeatureMask in
                    switch source {
                    case .slic(let segments, let compactness):
                        let cut = try Superpixels.slic(prepared[0], segments: segments, compactness: compactness)
                        return try FeatureMask(labels: cut.labels, count: cut.count)
                    case .files(let list):
                        let file = list[range.lowerBound]
                        let regions = try preprocessing.prepareLabels(try RGBImage(contentsOf: URL(fileURLWithPath: file)))
                        guard regions.count == h * w else {
                            throw UserError("--feature-mask \(printable(file)) is \(regions.count) pixels after preprocessing, the images \(w)x\(h)")
                        }
                        return try FeatureMask(regions: regions)
                    }
                }
                let masks = try maskFiles.map { files in
                    try files[range].map { file -> [Bool] in
                        let m = try preprocessing.prepareMask(try RGBImage(contentsOf: URL(fileURLWithPath: file)))
                        guard m.count == h * w else {
                            throw UserError("--mask \(printable(file)) is \(m.count) pixels after preprocessing, the images \(w)x\(h)")
                        }
                        return m
                    }
                }
                let input = try backend.tensor(prepared.flatMap { preprocessing.normalize($0) }, [range.count, 3, h, w])
                // Probabilities and default targets from one forward pass.
                let probe = try Probe(model: model, input: input, names: { try modelOptions.classNames(classes: $0) },
                                      synonyms: { modelOptions.classSynonyms(classes: $0) })
                // A segmentation's target is a region of each image: one image at a time (the first
                // batch's probe is run again for its first image alone).
                if probe.scores.dense != nil, range.count > 1 { perBatch = 1; continue }
                if probe.scores.dense == nil, region != nil {
                    throw UserError("--region: the model's output is [N, \(probe.scores.classes)], a classifier's; a region is a segmentation's target ([N, classes, H, W])")
                }
                if probe.scores.dense != nil {
                    if goal != nil { throw UserError("--objective: this model's output is a segmentation's [N, classes, H, W]; explain a class over a region (--target, --region)") }
                    if metrics { throw UserError("--metrics score a class's probability; a segmentation's region target has none (leave out --metrics)") }
                }
                let camLayer = try probe.camLayer(methodOptions.layer, for: methods, model: model)
                let targets = goal == nil ? try probe.targets(targetSpecs.map { $0[range].joined(separator: ",") }, count: range.count)
                    : [Int](repeating: 0, count: range.count)
                let regions = try probe.scores.dense.map { _ in
                    let chosen = try regionFiles.map { list -> Region in
                        let m = try preprocessing.prepareMask(try RGBImage(contentsOf: URL(fileURLWithPath: list[range.lowerBound])))
                        guard m.count == h * w else {
                            throw UserError("--region \(printable(list[range.lowerBound])) is \(m.count) pixels after preprocessing, the images \(w)x\(h)")
                        }
                        return .mask(m)
                    } ?? fixedRegion ?? .predicted
                    do { return [try RegionTarget(probe: probe, image: 0, target: targets[0], region: chosen, height: h, width: w)] } catch {
                        throw UserError("\(printable(files[range.lowerBound])): --region: \(error)")
                    }
                }
                let regionModel = try regions.map { try model.summed(over: $0[0].mask) }
                let run = try SaliencyRun(model: regionModel ?? explained, input: input, methods: try methods.map {
                    ($0, try methodOptions.makeMethod($0, layer: camLayer, model: model, baselineImages: baselineValues, featureMask: features),
                     methodOptions.parameters($0, layer: camLayer, model: model, baselineImages: baselineValues, featureMask: features))
                }, targets: targets, metrics: metrics ? (metricStep, methodOptions.deviceBatch(for: model)) : nil, masks: masks,
                   perturbation: perturbation.map { p in var s = p.settings; s.batch = methodOptions.deviceBatch(for: model); return (p.metrics, s) })
                var result = SaliencyOutput(run: run, files: Array(files[range]), stems: Array(stems[range]), prepared: prepared, probe: probe,
                                            targets: targets, model: model, layer: camLayer, device: backend.name, style: style,
                                            figures: try figureOptions.writer(), record: record)
                if let objective, goal != nil { result.objective = (objective, try explained.outputValues(input)) }
                result.regions = regions
                try result.writeImages(into: folder)
                if report == nil { report = SaliencyReport(record: record, figures: try figureOptions.writer(), layer: camLayer, metrics: run.metrics) }
                report!.add(result)
                start = range.upperBound
            }
            try report!.writeGrid(into: folder)
            try report!.html().write(to: folder.appendingPathComponent("index.html"))
        }
        guard let report else { return }
        for s in report.summaries {
            emit("\(s.stem): \(s.targetText(digits: 4)) -> \(output.shown(s.stem))")
            for line in s.warnings { warn("warning: \(s.stem): \(line)") }
        }
        for (m, time) in report.methodTimes.enumerated() {
            let rows = report.summaries.map { $0.methods[m] }
            var extra = rows.contains { $0.completeness != nil }
                ? "  completeness error " + rows.map { $0.completeness.map { String(format: "%.4g", $0) } ?? "-" }.joined(separator: ", ") : ""
            if rows.first?.auc != nil {
                extra += "  deletion AUC " + rows.map { String(format: "%.4f", $0.auc?.deletion ?? .nan) }.joined(separator: ", ")
                    + "  insertion AUC " + rows.map { String(format: "%.4f", $0.auc?.insertion ?? .nan) }.joined(separator: ", ")
                    + "  sparseness " + rows.map { String(format: "%.3f", $0.quality?.sparseness ?? .nan) }.joined(separator: ", ")
            }
            if rows.contains(where: { $0.quality?.massAccuracy != nil }) {
                extra += "  relevance mass " + rows.map { $0.quality?.massAccuracy.map { String(format: "%.3f", $0) } ?? "-" }.joined(separator: ", ")
                    + "  pointing " + rows.map { $0.quality?.pointingGame.map { $0 ? "hit" : "miss" } ?? "-" }.joined(separator: ", ")
            }
            for (k, score) in (rows.first?.scores ?? []).enumerated() {
                extra += "  \(score.metric.rawValue) " + rows.map { k < $0.scores.count ? String(format: "%.4g", $0.scores[k].value) : "-" }.joined(separator: ", ")
            }
            emit("  " + time.name.padding(toLength: 28, withPad: " ", startingAt: 0) + String(format: "%9.1f ms", time.milliseconds) + extra)
        }
        if let metricsSeconds = report.metricsSeconds {
            emit("  \(perturbation == nil ? "deletion and insertion metrics" : "metrics"): \(String(format: "%.1f", metricsSeconds)) s")
        }
        emit("report: \(output.shown("index.html"))")
    }

    /// `--target`'s items, one per image: one item for all, or as many as there are images.
    /// Where LIME's and KernelSHAP's features come from.
    enum FeatureSource {
        /// SLIC superpixels of each image.
        case slic(segments: Int, compactness: Double)
        /// A segmentation image per image (the same file repeated for one for all).
        case files([String])
        /// Whether the features differ between images.
        var perImage: Bool {
            switch self {
            case .slic: true
            case .files(let list): Set(list).count > 1
            }
        }
    }

    /// `--feature-mask`'s value: slic[:N[:C]], or files for `count` images.
    func featureSource(_ text: String, count: Int) throws -> FeatureSource {
        guard text == "slic" || text.hasPrefix("slic:") else {
            return .files(try perImage(text, count: count, flag: "--feature-mask", noun: "feature masks"))
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).dropFirst()
        guard parts.count <= 2, let segments = parts.first.map({ Int($0) }) ?? 100, segments >= 1, segments <= 100_000,
              let compactness = parts.dropFirst().first.map({ Double($0) }) ?? 10, compactness > 0, compactness.isFinite else {
            throw UserError("--feature-mask \(printable(text)): expected slic, slic:N or slic:N:C (N segments from 1, compactness C above 0)")
        }
        return .slic(segments: segments, compactness: compactness)
    }

    func perImage(_ spec: String, count: Int, flag: String = "--target", noun: String = "targets") throws -> [String] {
        let items = spec.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        if items.count == 1 { return [String](repeating: items[0], count: count) }
        guard items.count == count else { throw UserError("\(flag): \(items.count) \(noun) for \(count) images (give one, or one per image)") }
        return items
    }
}
