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

    public init() {}

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

/// The class name of `index` for a model with `classes` outputs.
func label(_ index: Int, classes: Int) -> String {
    classes == imageNetClasses.count ? imageNetClasses[index] : "class \(index)"
}
