import ArgumentParser
import Backend
import Foundation
import Graph
import ImageIO
import Models

/// `--model` and `--arch`, shared by every command that runs a network.
public struct ModelOptions: ParsableArguments {
    @Option(help: "An architecture name (its torchvision weights are looked up in $TORCH_HOME/hub/checkpoints), a weight file (.pth, .safetensors) or an ONNX model (.onnx).")
    public var model: String = ModelLocator.defaultModel
    @Option(help: "The architecture of --model PATH when neither its file name nor its keys tell: \(Architectures.names.joined(separator: ", ")).")
    public var arch: String?

    @Option(parsing: .unconditional, help: "Seeded random weights instead of a weight file (to try an architecture whose weights are not on this machine); --model names the architecture.")
    public var randomWeights: UInt64?

    @Option(help: "The names of the model's classes: a text file with one name per line, or a JSON list of strings, as many as the model has outputs (default: ImageNet's names for 1000 outputs).")
    public var labels: String?

    public init() {}

    /// The class names of a model with `classes` outputs: `--labels`, else ImageNet's for 1000
    /// outputs, else none (classes are then "class K").
    public func classNames(classes: Int) throws -> [String]? {
        guard let labels else { return classes == imageNetClasses.count ? imageNetClasses : nil }
        var info = stat()
        guard stat(labels, &info) == 0 else { throw UserError("--labels \(labels): cannot read it (\(String(cString: strerror(errno))))") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw UserError("--labels \(labels): not a regular file") }
        guard info.st_size <= 16 << 20 else { throw UserError("--labels \(labels): \(info.st_size) bytes is too large for a list of names") }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: labels)) } catch {
            throw UserError("--labels \(labels): cannot read it (\(error.localizedDescription))")
        }
        let names: [String]
        if let list = try? JSONSerialization.jsonObject(with: data) as? [Any] {
            guard let strings = list as? [String] else { throw UserError("--labels \(labels): a JSON file must hold a list of strings") }
            names = strings
        } else {
            guard let text = String(data: data, encoding: .utf8) else { throw UserError("--labels \(labels): not UTF-8 text or a JSON list") }
            var lines = text.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            while lines.last?.isEmpty == true { lines.removeLast() }
            if let empty = lines.firstIndex(where: \.isEmpty) { throw UserError("--labels \(labels): line \(empty + 1) is empty (one class name per line)") }
            names = lines
        }
        guard names.count == classes else {
            throw UserError("--labels \(labels) has \(names.count) name(s) but the model has \(classes) outputs")
        }
        return names
    }

    public func load(on backend: any Backend) throws -> Model {
        if let seed = randomWeights {
            let architecture = ModelLocator.isONNX(model) ? try ModelLocator.onnx(model, weightsRequired: false).0 : try Architectures.make(arch ?? model)
            return Model(architecture: architecture, parameters: try SeededWeights.parameters(for: architecture, seed: seed, on: backend), backend: backend)
        }
        return try ModelLocator.load(model: model, arch: arch, on: backend)
    }
}

/// `--image` and `--no-resize`.
public struct ImageOptions: ParsableArguments {
    @Option(help: "A PNG or JPEG image.")
    public var image: String
    @Flag(help: "Use the image at its own size (normalization only) instead of resize 256 + center crop 224.")
    public var noResize = false

    public init() {}

    public var preprocessing: Preprocessing { noResize ? .normalizeOnly : .imagenet }

    /// The decoded image, the 8-bit picture the network sees, and its normalized [1, 3, H, W] values.
    public func load() throws -> (original: RGBImage, prepared: RGBImage, input: [Float], shape: Shape) {
        let original = try RGBImage(contentsOf: URL(fileURLWithPath: image))
        let prepared = try preprocessing.prepare(original)
        return (original, prepared, preprocessing.normalize(prepared), [1, 3, prepared.height, prepared.width])
    }
}

/// The name of class `index` (ModelOptions.classNames), or "class K" without names.
func label(_ index: Int, names: [String]?) -> String {
    names.map { $0[index] } ?? "class \(index)"
}
