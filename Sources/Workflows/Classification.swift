import Backend
import Interpret
import Models

/// One ranked class of an image.
public struct Prediction: Codable, Equatable, Sendable {
    /// The class index.
    public let index: Int
    /// Its name ("class K" without names).
    public let label: String
    /// Its softmax probability; for a segmentation, the share of the pixels predicted as it.
    public let probability: Float
    /// For a segmentation, the pixels predicted as the class (nil for a classifier).
    public let pixels: Int?

    /// A prediction of class `index` named `label` with `probability` (and a segmentation's
    /// predicted `pixels`).
    public init(index: Int, label: String, probability: Float, pixels: Int? = nil) {
        self.index = index; self.label = label; self.probability = probability; self.pixels = pixels
    }
}

/// `loupe classify`'s work: the top classes of one image.
public enum Classifier {
    /// The `top` most probable classes of `input` (one image, `shape` [1, 3, H, W]), named by
    /// `names(classes)` (ImageNet's for 1000 outputs by default; Pascal VOC's for a segmentation
    /// of 21 classes without names); a segmentation's classes by the pixels predicted as each.
    public static func classify(model: Model, input: [Float], shape: Shape, top: Int,
                                names: (Int) throws -> [String]? = { $0 == imageNetClasses.count ? imageNetClasses : nil }) throws -> [Prediction] {
        try classification(model: model, input: input, shape: shape, top: top, names: names).predictions
    }

    /// `classify`'s top classes, with the lines that say when they say nothing
    /// (`ResultWarnings.flatOutput`: a flat output).
    public static func classification(model: Model, input: [Float], shape: Shape, top: Int,
                                      names: (Int) throws -> [String]? = { $0 == imageNetClasses.count ? imageNetClasses : nil })
        throws -> (predictions: [Prediction], warnings: [String]) {
        let scores = try ClassScores(model, input: try model.backend.tensor(input, shape))
        let named = try names(scores.classes) ?? (scores.dense != nil && scores.classes == vocClasses.count ? vocClasses : nil)
        let counts = scores.dense?.pixelCounts(0)
        let predictions = scores.ranked(0, top: top).map {
            Prediction(index: $0, label: classLabel($0, names: named), probability: scores.probability(0, $0), pixels: counts?[$0])
        }
        return (predictions, [ResultWarnings.flatOutput(scores, 0)].compactMap { $0 })
    }
}
