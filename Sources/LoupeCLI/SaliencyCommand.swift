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
        let input = try backend.tensor(prepared.flatMap { preprocessing.normalize($0) }, [files.count, 3, h, w])
        // Probabilities and default targets from one forward pass.
        let probe = try Probe(model: model, input: input, names: { try modelOptions.classNames(classes: $0) },
                              synonyms: { modelOptions.classSynonyms(classes: $0) })
        let camLayer = try probe.camLayer(methodOptions.layer, for: methods, model: model)
        let targets = try probe.targets(methodOptions.target, count: files.count)
        let run = try SaliencyRun(model: model, input: input, methods: try methods.map {
            ($0, try methodOptions.makeMethod($0, layer: camLayer, model: model), methodOptions.parameters($0, layer: camLayer, model: model))
        }, targets: targets, metrics: metrics ? (metricStep, methodOptions.deviceBatch(for: model)) : nil)
        let record = try RunRecord(modelOptions: modelOptions, model: model, preprocessing: preprocessing, backend: backend)
        let result = SaliencyOutput(run: run, files: files, stems: stems, prepared: prepared, probe: probe, targets: targets, model: model,
                                    layer: camLayer, device: backend.name, style: style, figures: try figureOptions.writer(), record: record)
        try output.publish(result.entries) { try result.write(into: $0) }
        let (names, classes, probabilities) = (probe.names, probe.scores.classes, probe.scores.probabilities)
        let curves = run.curves
        for (i, stem) in stems.enumerated() {
            emit("\(stem): target \(targets[i]) \(classLabel(targets[i], names: names)) (p = \(String(format: "%.4f", probabilities[i * classes + targets[i]]))) -> \(output.shown(stem))")
        }
        for (m, r) in run.results.enumerated() {
            let (name, result, ms) = (r.name, r.attribution, r.milliseconds)
            var extra = result.completenessError.map { "  completeness error " + $0.map { String(format: "%.4g", $0) }.joined(separator: ", ") } ?? ""
            if !curves.isEmpty {
                extra += "  deletion AUC " + curves.map { String(format: "%.4f", $0[m][0].auc) }.joined(separator: ", ")
                    + "  insertion AUC " + curves.map { String(format: "%.4f", $0[m][1].auc) }.joined(separator: ", ")
            }
            emit("  " + name.padding(toLength: 22, withPad: " ", startingAt: 0) + String(format: "%9.1f ms", ms) + extra)
        }
        if let metricsSeconds = run.metricsSeconds { emit("  deletion and insertion metrics: \(String(format: "%.1f", metricsSeconds)) s") }
        emit("report: \(output.shown("index.html"))")
    }
}
