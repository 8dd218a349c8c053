import ArgumentParser
import Backend
import Foundation
import Graph
import Interpret
import Models
import Workflows

/// `loupe classify`: the top-K classes of an image with softmax probabilities.
public struct ClassifyCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "classify", abstract: "Top-K classes of one or more images.",
        discussion: """
        Examples:
          loupe classify --image Assets/chelsea.png
          loupe classify --image photos/ more.jpg --top 3 --csv > predictions.csv
        """)

    @OptionGroup public var deviceOptions: DeviceOptions
    @OptionGroup public var modelOptions: ModelOptions
    @OptionGroup public var imageOptions: ImageOptions
    @Option(parsing: .unconditional, help: "How many classes to print.")
    public var top: Int = 5
    @Flag(help: "Print one JSON object per image: {\"image\":..,\"top\":[{\"index\":..,\"label\":..,\"probability\":..}, ...],\"warnings\":[..]}.")
    public var json = false
    @Flag(help: "Print CSV: image,rank,index,label,probability.")
    public var csv = false

    public init() {}

    public func run() throws {
        guard top >= 1 else { throw UserError("--top must be at least 1") }
        guard !(json && csv) else { throw UserError("give --json or --csv, not both") }
        let files = try imageFiles(imageOptions.images)
        _ = try modelOptions.preprocessing(noResize: imageOptions.noResize)  // refused before the model loads
        let backend = try deviceOptions.backend()
        let model = try modelOptions.load(on: backend)
        let preprocessing = try modelOptions.preprocessing(noResize: imageOptions.noResize, for: model)
        if !json && !csv { emit("\(model.architecture.name) on \(backend.name)") }
        if csv { emit("image,rank,index,label,probability") }
        for file in files {
            let (_, prepared, input, shape) = try imageOptions.load(file, preprocessing)
            let (predictions, warnings) = try Classifier.classification(model: model, input: input, shape: shape, top: top) {
                try modelOptions.classNames(classes: $0)
            }
            for line in warnings { warn("warning: \(printable(file)): \(line)") }
            if json {
                struct Output: Codable { let image: String; let top: [Prediction]; let warnings: [String] }
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                emit(String(decoding: try encoder.encode(Output(image: file, top: predictions, warnings: warnings)), as: UTF8.self))
            } else if csv {
                for (rank, p) in predictions.enumerated() {
                    emit([csvField(file), "\(rank + 1)", "\(p.index)", csvField(p.label), String(format: "%.6f", p.probability)].joined(separator: ","))
                }
            } else {
                let dense = predictions.first?.pixels != nil
                emit("\(file) (input \(prepared.width)x\(prepared.height)\(dense ? "; a segmentation: each class's share of the predicted pixels" : ""))")
                for (rank, p) in predictions.enumerated() {
                    emit(String(format: "%2d. %4d  ", rank + 1, p.index) + p.label.padding(toLength: Swift.max(32, p.label.count + 1), withPad: " ", startingAt: 0)
                          + String(format: "%.4f", p.probability) + (p.pixels.map { "  \($0) px" } ?? ""))
                }
            }
        }
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
func csvField(_ text: String) -> String {
    text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
}
