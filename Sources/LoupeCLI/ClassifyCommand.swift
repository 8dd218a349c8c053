import ArgumentParser
import Backend
import Foundation
import Graph
import Models

/// `loupe classify`: the top-K classes of an image with softmax probabilities.
public struct ClassifyCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "classify", abstract: "Top-K classes of an image.")

    @OptionGroup public var deviceOptions: DeviceOptions
    @OptionGroup public var modelOptions: ModelOptions
    @OptionGroup public var imageOptions: ImageOptions
    @Option(parsing: .unconditional, help: "How many classes to print.")
    public var top: Int = 5
    @Flag(help: "Print {\"top\":[{\"index\":..,\"label\":..,\"probability\":..}, ...]}.")
    public var json = false

    public init() {}

    public struct Prediction: Codable, Equatable {
        public let index: Int
        public let label: String
        public let probability: Float
    }

    public func run() throws {
        guard top >= 1 else { throw UserError("--top must be at least 1") }
        let (_, prepared, input, shape) = try imageOptions.load(try modelOptions.preprocessing(noResize: imageOptions.noResize))
        let backend = try deviceOptions.backend()
        let model = try modelOptions.load(on: backend)
        let predictions = try ClassifyCommand.classify(model: model, input: input, shape: shape, top: top) { try modelOptions.classNames(classes: $0) }
        if json {
            struct Output: Codable { let top: [Prediction] }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            emit(String(decoding: try encoder.encode(Output(top: predictions)), as: UTF8.self))
        } else {
            emit("\(model.architecture.name) on \(backend.name), input \(prepared.width)x\(prepared.height)")
            for (rank, p) in predictions.enumerated() {
                emit(String(format: "%2d. %4d  ", rank + 1, p.index) + p.label.padding(toLength: Swift.max(32, p.label.count + 1), withPad: " ", startingAt: 0)
                      + String(format: "%.4f", p.probability))
            }
        }
    }

    /// The top classes, named by `names(classes)` (ImageNet's for 1000 outputs by default).
    public static func classify(model: Model, input: [Float], shape: Shape, top: Int,
                                names: (Int) throws -> [String]? = { $0 == imageNetClasses.count ? imageNetClasses : nil }) throws -> [Prediction] {
        try MemoryBudget.requirePass(model, batch: shape[0], height: shape[2], width: shape[3], what: "classifying")
        let g = Graph(backend: model.backend)
        g.keptLayers = []
        let logits = try model.forward(g, g.input(try model.backend.tensor(input, shape)))
        let probabilities = try model.backend.values(try model.backend.softmax(g.tensor(logits)))
        let classes = probabilities.count, named = try names(classes)
        return probabilities.indices.sorted { probabilities[$0] > probabilities[$1] }.prefix(Swift.min(top, classes)).map {
            Prediction(index: $0, label: label($0, names: named), probability: probabilities[$0])
        }
    }
}
