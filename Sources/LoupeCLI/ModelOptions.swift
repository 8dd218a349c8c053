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

    /// WordNet synonyms of the class names when they are ImageNet's (no --labels, 1000 outputs).
    public func classSynonyms(classes: Int) -> [String]? {
        labels == nil && classes == imageNetSynonyms.count ? imageNetSynonyms : nil
    }

    /// The class names of a model with `classes` outputs: `--labels`, else ImageNet's for 1000
    /// outputs, else none (classes are then "class K").
    public func classNames(classes: Int) throws -> [String]? {
        guard let labels else { return classes == imageNetClasses.count ? imageNetClasses : nil }
        let data = try InputFile.read(labels, what: "--labels", limit: 16 << 20)
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

    @Option(help: "Input preprocessing preset: imagenet (resize 256, crop 224: torchvision's V1 weights), imagenet-v2 (232, 224: the V2 weights of ResNet50, MobileNetV2, MobileNetV3-Large, RegNet), convnext (236, 224), inception (342, 299), efficientnet (256, 224, bicubic: EfficientNet-B0), swin (232, 224, bicubic); all with ImageNet's mean and std, bilinear unless named.")
    public var preset: String = "imagenet"
    @Option(parsing: .unconditional, help: "Shorter image side after resizing (default: the preset's).")
    public var resize: Int?
    @Option(parsing: .unconditional, help: "Centre crop size, the network's input size (default: the preset's).")
    public var crop: Int?
    @Option(help: "Resampling filter of the resize, as PIL's: bilinear or bicubic (default: the preset's).")
    public var interpolation: String?
    @Option(parsing: .unconditional, help: "Per-channel mean of the input normalization, three comma-separated numbers for R, G, B (default: ImageNet's, 0.485,0.456,0.406).")
    public var mean: String?
    @Option(parsing: .unconditional, help: "Per-channel standard deviation of the input normalization, three comma-separated numbers (default: ImageNet's, 0.229,0.224,0.225).")
    public var std: String?

    /// The input normalization `--mean` and `--std` give (ImageNet's by default).
    public func normalization() throws -> Normalization {
        func three(_ flag: String, _ text: String?, _ fallback: [Float], positive: Bool) throws -> [Float] {
            guard let text else { return fallback }
            let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Float($0.trimmingCharacters(in: .whitespaces)) }
            let values = parts.compactMap { $0 }
            guard parts.count == 3, values.count == 3, values.allSatisfy({ $0.isFinite && (!positive || $0 > 0) }) else {
                throw UserError("\(flag) \(text): expected three comma-separated \(positive ? "positive " : "")numbers (R, G, B)")
            }
            return values
        }
        return Normalization(mean: try three("--mean", mean, Normalization.imagenet.mean, positive: false),
                             std: try three("--std", std, Normalization.imagenet.std, positive: true))
    }

    /// Resize, crop and normalization from the preset and the options (`noResize`: the image at
    /// its own size, normalized only). `model`'s declared input size (an ONNX file's), when it
    /// has one, is the default crop, resized from the preset's ratio (224 of 256).
    public func preprocessing(noResize: Bool, for model: Model? = nil) throws -> Preprocessing {
        guard let sizes = Preprocessing.presets[preset] else {
            throw UserError("--preset \(preset): expected \(Preprocessing.presets.keys.sorted().joined(separator: ", "))")
        }
        var (shorter, side) = (resize ?? sizes.resize, crop ?? sizes.crop)
        if crop == nil, let declared = model?.architecture.inputSize {
            side = declared
            if resize == nil { shorter = Swift.max(declared, Int((Double(declared) * Double(sizes.resize) / Double(sizes.crop)).rounded())) }
        }
        guard (1...16384).contains(shorter), (1...16384).contains(side), side <= shorter else {
            throw UserError("--resize \(shorter) and --crop \(side): both from 1 to 16384, the crop no larger than the resized side")
        }
        var filter = sizes.filter
        if let interpolation {
            guard let chosen = Interpolation(rawValue: interpolation) else {
                throw UserError("--interpolation \(interpolation): expected \(Interpolation.allCases.map(\.rawValue).joined(separator: " or "))")
            }
            filter = chosen
        }
        var p = Preprocessing(resizeShorter: noResize ? nil : shorter, crop: side, interpolation: filter)
        let n = try normalization()
        (p.mean, p.std) = (n.mean, n.std)
        return p
    }

    public func load(on backend: any Backend) throws -> Model {
        let normalization = try normalization()
        let loaded: Model
        if let seed = randomWeights {
            let architecture = ModelLocator.isONNX(model) ? try ModelLocator.onnx(model, weightsRequired: false).0 : try Architectures.make(arch ?? model)
            loaded = Model(architecture: architecture, parameters: try SeededWeights.parameters(for: architecture, seed: seed, on: backend), backend: backend)
        } else {
            loaded = try ModelLocator.load(model: model, arch: arch, on: backend)
        }
        var architecture = loaded.architecture
        architecture.normalization = normalization
        return Model(architecture: architecture, parameters: loaded.parameters, backend: backend)
    }
}

/// `--image` and `--no-resize`.
public struct ImageOptions: ParsableArguments {
    @Option(name: .customLong("image"), parsing: .upToNextOption, help: "A PNG or JPEG image (classify: several files or folders of them).")
    public var images: [String]
    @Flag(help: "Use the image at its own size (normalization only) instead of the preset's resize and centre crop (--preset, --resize, --crop).")
    public var noResize = false

    public init() {}

    /// The one image of a command that takes one; a second is refused, never dropped.
    public var image: String {
        get throws {
            let files = try imageFiles(images)
            guard files.count == 1 else {
                throw UserError("--image: this command takes one image, got \(files.count) (\(files.prefix(3).joined(separator: ", "))\(files.count > 3 ? ", ..." : "")); run it once per image")
            }
            return files[0]
        }
    }

    /// The decoded image at `path`, the 8-bit picture the network sees (after `preprocessing`:
    /// ModelOptions.preprocessing), and its normalized [1, 3, H, W] values.
    public func load(_ path: String, _ preprocessing: Preprocessing) throws -> (original: RGBImage, prepared: RGBImage, input: [Float], shape: Shape) {
        let original = try RGBImage(contentsOf: URL(fileURLWithPath: path))
        let prepared = try preprocessing.prepare(original)
        return (original, prepared, preprocessing.normalize(prepared), [1, 3, prepared.height, prepared.width])
    }
}

/// Image paths from `--image` arguments: files as given, folders as their PNG and JPEG files
/// (sorted by name, not recursing).
func imageFiles(_ paths: [String]) throws -> [String] {
    var files: [String] = []
    for path in paths {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw UserError("\(path): no such file or folder") }
        if isDirectory.boolValue {
            let entries: [String]
            do { entries = try FileManager.default.contentsOfDirectory(atPath: path).sorted() } catch {
                throw UserError("\(path): cannot list the folder (\(String(cString: strerror(errno))))")
            }
            files += entries.filter { ["png", "jpg", "jpeg"].contains(URL(fileURLWithPath: $0).pathExtension.lowercased()) }
                .map { URL(fileURLWithPath: path).appendingPathComponent($0).path }
        } else {
            files.append(path)
        }
    }
    guard !files.isEmpty else { throw UserError("--image: no PNG or JPEG images found") }
    return files
}
