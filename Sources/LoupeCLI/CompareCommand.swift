import ArgumentParser
import Backend
import Device
import Figures
import Foundation
import Graph
import ImageIO
import Interpret
import Models
import Workflows

/// `loupe compare`: the same forward and backward pass on the CPU reference and on an OpenCL
/// device, layer by layer.
public struct CompareCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Run the forward pass and the backward pass to the input on the CPU reference and on an OpenCL device; print the error of every layer.",
        discussion: """
            The backward pass starts from the CPU reference's top-1 logit. For every tapped layer: max |device - cpu|, \
            that over max |cpu| (relative error), and ||device - cpu|| / ||cpu|| (relative L2 error). Exits 1 when an \
            activation's relative error exceeds --tolerance or a gradient's relative L2 error exceeds --gradient-tolerance. (Gradients are judged by L2: \
            a ReLU whose input is within rounding of 0 may let the gradient through on one device and not on the other.) \
            With --visualize EXPR or --invert LAYER it runs a short feature visualization or inversion (--steps, --size) on \
            both instead and compares the images and objective values by relative L2 error (--image-tolerance).

            Examples:
              loupe compare --image Assets/chelsea.png --layer features.0,features.9,features.18
              loupe compare --visualize "features.10:5" --steps 8
            """)

    @OptionGroup public var deviceOptions: DeviceOptions
    @OptionGroup public var modelOptions: ModelOptions
    @Option(name: .customLong("image"), parsing: .upToNextOption, help: "A PNG or JPEG image (not needed with --visualize).")
    public var images: [String] = []
    @Option(help: "Also write the table, the verdict and the run record as compare.json and index.html in this folder.")
    public var out: String?
    @Flag(help: "Replace --out whole when it holds an earlier Loupe run.")
    public var force = false
    @Flag(help: "Use the image at its own size instead of the preset's resize and centre crop (--preset, --resize, --crop).") public var noResize = false
    @Option(help: "Compare a short feature visualization of this objective (as `loupe visualize --objective`).") public var visualize: String?
    @Option(help: "Compare a short feature inversion of --image from this layer.") public var invert: String?
    @Option(parsing: .unconditional, help: "Steps of the --visualize / --invert run.") public var steps: Int = 4
    @Option(parsing: .unconditional, help: "Image size of the --visualize run.") public var size: Int = 64
    @Option(help: "--visualize optimizer: sgd (default: plain gradient ascent, so rounding is not amplified) or adam.") public var optimizer: String = "sgd"
    @Option(parsing: .unconditional, help: "--visualize learning rate. The default is small: at visualize's 0.05, gradient ascent on the Fourier basis overshoots and the trajectory turns chaotic, so rounding differences grow.") public var lr: Float = 0.005
    @Option(parsing: .unconditional, help: "Largest accepted relative L2 error of the --visualize / --invert images and objectives.") public var imageTolerance: Float = 1e-2
    @Option(parsing: .unconditional, help: "Largest accepted relative error of an activation (max |device - cpu| / max |cpu|).")
    public var tolerance: Float = 1e-3
    @Option(parsing: .unconditional, help: "Largest accepted relative L2 error of a gradient.")
    public var gradientTolerance: Float = 1e-2
    @Option(name: .customLong("layer"), help: "Comma-separated layer names to report (default: every layer).")
    public var layerList: String?
    /// The spelling before 0.9 (hidden; one release).
    @Option(name: .customLong("layers"), help: .hidden) public var layersAlias: String?
    var layers: String? { layerList ?? layersAlias }

    public init() {}

    /// The one image (a second is refused), or nil.
    func image() throws -> String? {
        guard !images.isEmpty else { return nil }
        var options = ImageOptions()
        options.images = images
        return try options.image
    }

    public func run() throws {
        let image = try image()
        let output = try out.map { try OutputFolder($0, force: force) }
        for (flag, value) in [("--tolerance", tolerance), ("--gradient-tolerance", gradientTolerance),
                              ("--image-tolerance", imageTolerance), ("--lr", lr)] {
            try requireNumber(flag, value, above: 0)
        }
        guard let device = try deviceOptions.openCLDevice() else {
            throw UserError("loupe compare needs an OpenCL device to compare with the CPU reference (see `loupe devices`)")
        }
        let gpu = try OpenCLBackend(device: device)
        let reference = try modelOptions.load(on: CPUBackend())
        if visualize != nil || invert != nil {
            return try compareOptimization(reference: reference, device: try reference.moved(to: gpu), image: image, output: output)
        }
        guard let image else { throw UserError("--image is required (except with --visualize)") }
        var imageOptions = ImageOptions()
        imageOptions.images = [image]
        imageOptions.noResize = noResize
        let (_, _, input, shape) = try imageOptions.load(try imageOptions.image, try modelOptions.preprocessing(noResize: noResize, for: reference))
        // Both passes keep every activation (a --no-resize photo can be any size): checked first.
        try MemoryBudget.requirePass(reference, batch: shape[0], height: shape[2], width: shape[3], what: "comparing")
        let onDevice = try reference.moved(to: gpu)
        try MemoryBudget.requirePass(onDevice, batch: shape[0], height: shape[2], width: shape[3], what: "comparing")
        let rows = try BackendComparison.layers(reference: reference, device: onDevice, input: input, shape: shape,
                                                layers: layers?.split(separator: ",").map(String.init))
        emit("\(reference.architecture.name): CPU reference vs \(gpu.name)")
        var table = [["", "shape", "max abs error", "relative error", "relative L2 error"]]
        for r in rows {
            table.append([r.what, r.shape.description, String(format: "%.3g", r.maxAbs), String(format: "%.3g", r.relative),
                          String(format: "%.3g", r.relativeL2)])
        }
        emit(TextTable.format(table), terminator: "")
        let worstForward = BackendComparison.worst(rows.filter { !$0.isGradient }.map(\.judged))
        let worstGradient = BackendComparison.worst(rows.filter(\.isGradient).map(\.judged))
        let verdict = String(format: "worst relative error of activations %.3g (tolerance %.3g), worst relative L2 error of gradients %.3g (tolerance %.3g)",
                             worstForward, tolerance, worstGradient, gradientTolerance)
        let passed = worstForward <= tolerance && worstGradient <= gradientTolerance
        if let output {
            try writeReport(output, title: "\(reference.architecture.name): CPU reference vs \(gpu.name)", table: table,
                            verdict: (passed ? "OK: " : "FAIL: ") + verdict, model: reference, image: image, backend: gpu)
        }
        guard passed else {
            emit("FAIL: " + verdict)
            throw ExitCode(1)
        }
        emit("OK: " + verdict)
    }

    /// compare.json and index.html in --out: the table, the verdict, the run.
    func writeReport(_ output: OutputFolder, title: String, table: [[String]], verdict: String, model: Model, image: String?, backend: any Backend) throws {
        let preprocessing = image == nil ? nil : try modelOptions.preprocessing(noResize: noResize, for: model)
        let record = try RunRecord(modelOptions: modelOptions, model: model, preprocessing: preprocessing, backend: backend)
        let result = ComparisonOutput(title: title, table: table, verdict: verdict, image: image,
                                      tolerances: ["activation": tolerance, "gradient": gradientTolerance, "image": imageTolerance], record: record)
        try output.publish { try result.write(into: $0) }
        emit("report: \(output.shown("index.html"))")
    }

    /// `--visualize` / `--invert`: the same short optimization on both backends.
    func compareOptimization(reference: Model, device: Model, image: String?, output: OutputFolder?) throws -> Void {
        guard steps >= 1 else { throw UserError("--steps must be at least 1") }
        var compared: [OptimizationComparison.Row] = []
        do {
            if let visualize {
                guard ["sgd", "adam"].contains(optimizer) else { throw UserError("--optimizer \(optimizer): expected sgd or adam") }
                let objective: Objective
                do { objective = try Objective.parse(visualize) } catch { throw UserError("--visualize: \(error)") }
                compared += try OptimizationComparison.visualization(
                    objective, size: size, steps: steps, optimizer: optimizer == "sgd" ? .sgd(learningRate: lr) : .adam(AdamSettings(learningRate: lr)),
                    reference: reference, device: device)
                emit("\(reference.architecture.name): visualize \(objective), \(steps) steps at \(size)x\(size) (\(optimizer)), CPU reference vs \(device.backend.name)")
            }
            if let invert {
                guard let image else { throw UserError("--invert needs --image") }
                let photo = try modelOptions.preprocessing(noResize: noResize, for: reference).prepare(try RGBImage(contentsOf: URL(fileURLWithPath: image)))
                compared += try OptimizationComparison.inversion(layer: invert, photo: photo, steps: steps, reference: reference, device: device)
                emit("\(reference.architecture.name): invert \(invert), \(steps) steps, CPU reference vs \(device.backend.name)")
            }
        } catch let error as InterpretError { throw UserError(error.description) }
        let worst = BackendComparison.worst(compared.map(\.relativeL2))
        let rows = [["", "relative L2 error", "CPU reference", "device"]] + compared.map { r in
            [r.what, String(format: "%.3g", r.relativeL2)]
                + (r.reference.count <= 4 ? [r.reference, r.device].map { $0.map { String(format: "%.4g", $0) }.joined(separator: " ") } : ["", ""])
        }
        emit(TextTable.format(rows), terminator: "")
        let verdict = String(format: "worst relative L2 error %.3g (tolerance %.3g)", worst, imageTolerance)
        if let output {
            try writeReport(output, title: "\(reference.architecture.name): \(visualize.map { "visualize \($0)" } ?? "invert \(invert ?? "")") CPU reference vs \(device.backend.name)",
                            table: rows, verdict: (!(worst <= imageTolerance) ? "FAIL: " : "OK: ") + verdict, model: reference, image: image, backend: device.backend)
        }
        if !(worst <= imageTolerance) {  // NaN fails
            emit("FAIL: " + verdict)
            throw ExitCode(1)
        }
        emit("OK: " + verdict)
    }
}
