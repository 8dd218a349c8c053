import Backend
import Foundation
import ImageIO
import Models
import Workflows

extension RunRecord {
    /// The record of this command's run: its arguments, `modelOptions`' model file (none for
    /// seeded random weights), the preprocessing and the backend.
    init(modelOptions: ModelOptions, model: Model, preprocessing: Preprocessing?, backend: any Backend) throws {
        let modelFile: String?
        if modelOptions.randomWeights != nil, !ModelLocator.isONNX(modelOptions.model) {
            modelFile = nil
        } else {
            modelFile = ModelLocator.isONNX(modelOptions.model) ? URL(fileURLWithPath: modelOptions.model).standardizedFileURL.path
                : try ModelLocator.resolve(model: modelOptions.model, arch: modelOptions.arch).url.standardizedFileURL.path
        }
        try self.init(arguments: ["loupe"] + (Console.arguments ?? Array(CommandLine.arguments.dropFirst())), modelName: modelOptions.model,
                      modelFile: modelFile, model: model, preprocessing: preprocessing, preset: modelOptions.preset, device: backend.name)
    }
}
