import ArgumentParser
import Backend
import Figures
import Foundation
import Graph
import Models

/// `loupe layers`: every layer's name, type and output shape for a 224x224 input; for an
/// imported graph whose file names its torch modules, those modules as a tree.
public struct LayersCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "layers", abstract: "Every layer's name, type and output shape for a 224x224 input.",
        discussion: """
        An ONNX file exported from torch lists its modules as torch names them (`layer4`,
        `layer4.1.conv2`), indented under their parents, each with the node output it stands
        for; `--layer` takes either name. `--nodes` lists every node output instead.

        Examples:
          loupe layers
          loupe layers --model resnet50.onnx --size 160
          loupe layers --model resnet50.onnx --nodes
        """)

    @OptionGroup public var deviceOptions: DeviceOptions
    @OptionGroup public var modelOptions: ModelOptions
    @Option(parsing: .unconditional, help: "Input size (square; default: the size an ONNX file declares, else 224).")
    public var size: Int?
    @Flag(help: "An imported graph: list every node output, not the module tree.")
    public var nodes = false

    public init() {}

    public func run() throws {
        if let size, size < 32 { throw UserError("--size must be at least 32") }
        let backend = try deviceOptions.backend()
        let model = try LayersCommand.modelOrArchitecture(modelOptions, on: backend)
        let size = size ?? model.architecture.inputSize ?? 224
        emit(TextTable.format(try LayersCommand.rows(model, size: size, nodes: nodes)), terminator: "")
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

    static func rows(_ model: Model, size: Int, nodes: Bool = false) throws -> [[String]] {
        try MemoryBudget.requirePass(model, batch: 1, height: size, width: size, what: "a pass")
        let g = Graph(backend: model.backend)
        let x = g.input(try model.backend.tensor([Float](repeating: 0, count: 3 * size * size), [1, 3, size, size]))
        _ = try model.forward(g, x)
        let modules = model.architecture.modules
        if !nodes, !modules.isEmpty {
            var rows = [["layer", "type", "output shape", "node"]]
            for m in modules {
                guard let v = g.tapped(m.layer) else { continue }
                rows.append([String(repeating: "  ", count: m.depth) + m.name, m.type, g.shape(v).description, m.layer])
            }
            return rows
        }
        var rows = [["layer", "type", "output shape"]]
        for name in g.tapNames {
            rows.append([name, g.tapKinds[name] ?? "", g.shape(g.tapped(name)!).description])
        }
        return rows
    }
}
