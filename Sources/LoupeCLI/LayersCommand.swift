import ArgumentParser
import Backend
import Figures
import Foundation
import Graph
import Models

/// `loupe layers`: every layer's name, type and output shape for a 224x224 input.
public struct LayersCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "layers", abstract: "Every layer's name, type and output shape for a 224x224 input.",
        discussion: """
        Examples:
          loupe layers
          loupe layers --model resnet50.onnx --size 160
        """)

    @OptionGroup public var deviceOptions: DeviceOptions
    @OptionGroup public var modelOptions: ModelOptions
    @Option(parsing: .unconditional, help: "Input size (square).")
    public var size: Int = 224

    public init() {}

    public func run() throws {
        guard size >= 32 else { throw UserError("--size must be at least 32") }
        let backend = try deviceOptions.backend()
        let model = try LayersCommand.modelOrArchitecture(modelOptions, on: backend)
        emit(TextTable.format(try LayersCommand.rows(model, size: size)), terminator: "")
    }

    /// The model with its weights, or, when the weights of a named architecture are not on this
    /// machine, the architecture with zero weights (shapes do not depend on them).
    static func modelOrArchitecture(_ options: ModelOptions, on backend: any Backend) throws -> Model {
        if options.randomWeights == nil, let file = Architectures.torchvisionFiles[options.model],
           !FileManager.default.fileExists(atPath: ModelLocator.checkpointDirectory.appendingPathComponent(file).path) {
            let arch = try Architectures.make(options.model)
            var tensors: [String: Tensor] = [:]
            for spec in arch.parameters { tensors[spec.name] = try backend.tensor([Float](repeating: 0, count: spec.shape.count), spec.shape) }
            return Model(architecture: arch, parameters: ParameterStore(tensors), backend: backend)
        }
        return try options.load(on: backend)
    }

    static func rows(_ model: Model, size: Int) throws -> [[String]] {
        try MemoryBudget.requirePass(model, batch: 1, height: size, width: size, what: "a pass")
        let g = Graph(backend: model.backend)
        let x = g.input(try model.backend.tensor([Float](repeating: 0, count: 3 * size * size), [1, 3, size, size]))
        _ = try model.forward(g, x)
        var rows = [["layer", "type", "output shape"]]
        for name in g.tapNames {
            rows.append([name, g.tapKinds[name] ?? "", g.shape(g.tapped(name)!).description])
        }
        return rows
    }
}
