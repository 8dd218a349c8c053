import ArgumentParser
import Backend
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
        discussion: "Methods: \(SaliencyCommand.methodNames.joined(separator: ", ")), or all.")

    static let methodNames = ["gradient", "gradient_x_input", "guided_backprop", "deconvnet", "gradcam", "gradcam++",
                              "guided_gradcam", "layercam", "scorecam", "smoothgrad", "integrated_gradients", "occlusion"]

    @OptionGroup public var deviceOptions: DeviceOptions
    @OptionGroup public var modelOptions: ModelOptions
    @Option(name: .customLong("image"), parsing: .upToNextOption, help: "PNG or JPEG images, or folders of them.")
    public var images: [String]
    @Option(help: "Comma-separated methods, or all.")
    public var method: String = "gradient,guided_backprop,gradcam"
    @Option(help: "Target class per image: an index or a class name; one for all images or one per image (comma-separated). Default: the top-1 class.")
    public var target: String?
    @Option(help: "Layer of the CAM methods (`loupe layers`); default: the model's last convolutional block.")
    public var layer: String?
    @Option(help: "Output folder; one subfolder per image, named after the image file.")
    public var out: String
    @Flag(help: "Use the images at their own size instead of resize 256 + center crop 224 (all images must then share a size).")
    public var noResize = false
    @Option(help: "SmoothGrad samples.") public var samples: Int = 25
    @Option(help: "SmoothGrad noise, as a fraction of the image's value range.") public var noise: Float = 0.15
    @Option(help: "Integrated Gradients steps (Gauss-Legendre).") public var steps: Int = 50
    @Option(help: "Integrated Gradients baseline: black, zero, or blur.") public var baseline: String = "black"
    @Option(help: "Occlusion window (pixels).") public var window: Int = 16
    @Option(help: "Occlusion stride (pixels).") public var stride: Int = 8
    @Option(help: "Images per device batch for the batched methods (Score-CAM, SmoothGrad, IG, occlusion).") public var batch: Int = 16
    @Option(help: "Seed of SmoothGrad's noise.") public var seed: UInt64 = 0
    @Flag(help: "Also score each map by deletion and insertion (Petsiuk et al.): curves and AUC in summary.json, metrics.png.")
    public var metrics = false
    @Option(help: "Pixels removed or inserted per step of the deletion and insertion curves.") public var metricStep: Int = 224

    public init() {}

    public func run() throws {
        let methods = try parseMethods()
        let files = try imageFiles()
        let preprocessing: Preprocessing = noResize ? .normalizeOnly : .imagenet
        var prepared: [RGBImage] = []
        for file in files { prepared.append(try preprocessing.prepare(try RGBImage(contentsOf: URL(fileURLWithPath: file)))) }
        guard Set(prepared.map { "\($0.width)x\($0.height)" }).count == 1 else {
            throw UserError("with --no-resize every image must have the same size")
        }
        let (h, w) = (prepared[0].height, prepared[0].width)
        let outURL = URL(fileURLWithPath: out)
        let stems = files.map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent }
        guard Set(stems).count == stems.count else { throw UserError("two images share a file name; their output folders would collide") }
        try checkWritable(outURL)

        let backend = try deviceOptions.backend()
        let model = try modelOptions.load(on: backend)
        let camLayer = layer ?? model.architecture.lastConvLayer
        let values = prepared.flatMap { preprocessing.normalize($0) }
        let input = try backend.tensor(values, [files.count, 3, h, w])
        // Probabilities and default targets from one forward pass.
        let g = Graph(backend: backend)
        let logits = try model.forward(g, g.input(input))
        let classes = g.shape(logits)[1]
        if methods.contains(where: { ["gradcam", "gradcam++", "guided_gradcam", "layercam", "scorecam"].contains($0) }) {
            try checkLayerName(camLayer, in: g.tapNames, model: model.architecture.name)
            let shape = g.shape(g.tapped(camLayer)!)
            guard shape.rank == 4 else {
                let valid = g.tapNames.filter { g.shape(g.tapped($0)!).rank == 4 }.suffix(6)
                throw UserError("--layer \(camLayer) has a \(shape.rank)-D output \(shape); CAM methods need a 4-D one, e.g. \(valid.joined(separator: ", "))")
            }
        }
        let probabilities = try backend.values(backend.softmax(g.tensor(logits)))
        let targets = try resolveTargets(count: files.count, classes: classes, probabilities: probabilities)

        var results: [(String, Attribution, Double)] = []
        for name in methods {
            let start = DispatchTime.now().uptimeNanoseconds
            let result = try makeMethod(name, layer: camLayer).attribute(model, input: input, targets: targets)
            results.append((name, result, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6))
        }
        // curves[image][method][mode] = (curve, auc)
        var curves: [[[(curve: [Float], auc: Float)]]] = []
        if metrics {
            guard metricStep >= 1 else { throw UserError("--metric-step must be positive") }
            for i in 0..<files.count {
                let image = try backend.tensor(Array(values[(i * 3 * h * w)..<((i + 1) * 3 * h * w)]), [1, 3, h, w])
                curves.append(try results.map { _, result, _ in
                    try CausalMetric.Mode.allCases.map { mode in
                        try CausalMetric(mode, step: metricStep, batch: batch).evaluate(model, image: image, target: targets[i], map: result.map(i))
                    }
                })
            }
        }
        try write(results, curves: curves, stems: stems, prepared: prepared, targets: targets, probabilities: probabilities, classes: classes,
                  model: model, layer: camLayer, backend: backend, to: outURL)
        for (i, stem) in stems.enumerated() {
            emit("\(stem): target \(targets[i]) \(label(targets[i], classes: classes)) (p = \(String(format: "%.4f", probabilities[i * classes + targets[i]]))) -> \(outURL.appendingPathComponent(stem).path)")
        }
        for (m, (name, result, ms)) in results.enumerated() {
            var extra = result.completenessError.map { "  completeness error " + $0.map { String(format: "%.4g", $0) }.joined(separator: ", ") } ?? ""
            if !curves.isEmpty {
                extra += "  deletion AUC " + curves.map { String(format: "%.4f", $0[m][0].auc) }.joined(separator: ", ")
                    + "  insertion AUC " + curves.map { String(format: "%.4f", $0[m][1].auc) }.joined(separator: ", ")
            }
            emit("  " + name.padding(toLength: 22, withPad: " ", startingAt: 0) + String(format: "%9.1f ms", ms) + extra)
        }
    }

    func parseMethods() throws -> [String] {
        let names = method == "all" ? SaliencyCommand.methodNames : method.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        for name in names where !SaliencyCommand.methodNames.contains(name) {
            throw UserError("unknown method \(name); known: \(SaliencyCommand.methodNames.joined(separator: ", ")), all")
        }
        guard !names.isEmpty else { throw UserError("--method names no method") }
        return names
    }

    func imageFiles() throws -> [String] {
        var files: [String] = []
        for path in images {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw UserError("\(path): no such file or folder") }
            if isDirectory.boolValue {
                let entries = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
                files += entries.filter { ["png", "jpg", "jpeg"].contains(URL(fileURLWithPath: $0).pathExtension.lowercased()) }
                    .map { URL(fileURLWithPath: path).appendingPathComponent($0).path }
            } else {
                files.append(path)
            }
        }
        guard !files.isEmpty else { throw UserError("--image: no PNG or JPEG images found") }
        return files
    }

    func resolveTargets(count: Int, classes: Int, probabilities: [Float]) throws -> [Int] {
        let top = (0..<count).map { i in (0..<classes).max { probabilities[i * classes + $0] < probabilities[i * classes + $1] }! }
        guard let target else { return top }
        let parts = target.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        guard parts.count == 1 || parts.count == count else {
            throw UserError("--target: \(parts.count) targets for \(count) images (give one, or one per image)")
        }
        let resolved = try parts.map { part -> Int in
            if let index = Int(part) {
                guard index >= 0, index < classes else { throw UserError("--target \(index) is out of range 0...\(classes - 1)") }
                return index
            }
            guard classes == imageNetClasses.count, let index = imageNetClasses.firstIndex(where: { $0.lowercased() == part.lowercased() }) else {
                let near = nearestNames(to: part, in: imageNetClasses)
                throw UserError("--target \(part): no such class; nearest: \(near.joined(separator: ", "))")
            }
            return index
        }
        return parts.count == 1 ? [Int](repeating: resolved[0], count: count) : resolved
    }

    func makeMethod(_ name: String, layer: String) throws -> any AttributionMethod {
        switch name {
        case "gradient": return VanillaGradient()
        case "gradient_x_input": return GradientTimesInput()
        case "guided_backprop": return GuidedBackprop()
        case "deconvnet": return Deconvnet()
        case "gradcam": return CAM(.gradCAM, layer: layer)
        case "gradcam++": return CAM(.gradCAMPlusPlus, layer: layer)
        case "layercam": return CAM(.layerCAM, layer: layer)
        case "scorecam": return CAM(.scoreCAM, layer: layer, batch: batch)
        case "guided_gradcam": return GuidedGradCAM(layer: layer)
        case "smoothgrad": return SmoothGrad(samples: samples, noiseLevel: noise, batch: batch, seed: seed)
        case "integrated_gradients":
            let base: IntegratedGradients.Baseline
            switch baseline {
            case "black": base = .black
            case "zero": base = .zero
            case "blur": base = .blur(sigma: 10)
            default: throw UserError("--baseline \(baseline): expected black, zero or blur")
            }
            return IntegratedGradients(steps: steps, baseline: base, batch: batch)
        case "occlusion": return Occlusion(window: window, stride: stride, batch: batch)
        default: throw UserError("unknown method \(name)")
        }
    }

    func checkWritable(_ url: URL) throws {
        do { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) } catch {
            throw UserError("--out \(url.path): cannot create the folder (\(error.localizedDescription))")
        }
        guard FileManager.default.isWritableFile(atPath: url.path) else { throw UserError("--out \(url.path): not writable") }
    }

    /// Everything goes into a hidden folder inside --out first; each image's folder is then
    /// renamed into place, so an error leaves nothing partial behind.
    func write(_ results: [(String, Attribution, Double)], curves: [[[(curve: [Float], auc: Float)]]], stems: [String], prepared: [RGBImage], targets: [Int],
               probabilities: [Float], classes: Int, model: Model, layer: String, backend: any Backend, to out: URL) throws {
        let staging = out.appendingPathComponent(".loupe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: staging) }
        for (i, stem) in stems.enumerated() {
            let dir = staging.appendingPathComponent(stem)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let image = prepared[i]
            try image.writePNG(to: dir.appendingPathComponent("input.png"))
            var tiles = [image]
            var methodsJSON: [[String: Any]] = []
            for (m, (name, result, ms)) in results.enumerated() {
                let (h, w) = (result.height, result.width)
                try npyData(Array(result.map(i)), shape: [h, w]).write(to: dir.appendingPathComponent("\(name).npy"))
                if let raw = result.raw(i) {
                    try npyData(Array(raw), shape: [3, h, w]).write(to: dir.appendingPathComponent("\(name)_raw.npy"))
                }
                let heat = MapImages.colorize(result.map(i), width: w, height: h, clip: result.raw == nil ? 1 : 0.99)
                try heat.writePNG(to: dir.appendingPathComponent("\(name).png"))
                let overlay = try MapImages.overlay(heat, on: image)
                try overlay.writePNG(to: dir.appendingPathComponent("\(name)_overlay.png"))
                tiles.append(overlay)
                var entry: [String: Any] = ["method": name, "milliseconds": ms, "parameters": parameters(name)]
                if let e = result.completenessError { entry["completeness_error"] = e[i] }
                if !curves.isEmpty {
                    for (k, mode) in CausalMetric.Mode.allCases.enumerated() {
                        entry["\(mode.rawValue)_auc"] = curves[i][m][k].auc
                        entry["\(mode.rawValue)_curve"] = curves[i][m][k].curve
                    }
                }
                methodsJSON.append(entry)
            }
            try MapImages.row(tiles).writePNG(to: dir.appendingPathComponent("grid.png"))
            if !curves.isEmpty {
                // Left: deletion, right: insertion; one colour per method, in summary.json's order.
                let chart = MapImages.lineChart(panels: (0..<2).map { k in curves[i].map { $0[k].curve } }, colors: MapImages.palette(results.count))
                try chart.writePNG(to: dir.appendingPathComponent("metrics.png"))
            }
            let summary: [String: Any] = [
                "image": stem, "model": model.architecture.name, "layer": layer, "device": backend.name,
                "target": ["index": targets[i], "label": label(targets[i], classes: classes),
                           "probability": probabilities[i * classes + targets[i]]],
                "input_size": [image.height, image.width], "methods": methodsJSON,
                "grid": ["input"] + results.map { $0.0 },
            ]
            try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys])
                .write(to: dir.appendingPathComponent("summary.json"))
        }
        for stem in stems {
            let destination = out.appendingPathComponent(stem)
            if FileManager.default.fileExists(atPath: destination.path) { try FileManager.default.removeItem(at: destination) }
            try FileManager.default.moveItem(at: staging.appendingPathComponent(stem), to: destination)
        }
    }

    func parameters(_ name: String) -> [String: Any] {
        switch name {
        case "gradcam", "gradcam++", "layercam", "guided_gradcam": return ["layer": layer ?? "default"]
        case "scorecam": return ["layer": layer ?? "default", "batch": batch]
        case "smoothgrad": return ["samples": samples, "noise": noise, "seed": seed, "batch": batch]
        case "integrated_gradients": return ["steps": steps, "baseline": baseline, "method": "gausslegendre", "batch": batch]
        case "occlusion": return ["window": window, "stride": stride, "baseline": 0, "batch": batch]
        default: return [:]
        }
    }
}
