import Backend
import Interpret
import Models

/// One ranked class of an image.
public struct Prediction: Codable, Equatable, Sendable {
    /// The class index.
    public let index: Int
    /// Its name ("class K" without names).
    public let label: String
    /// Its softmax probability.
    public let probability: Float

    /// A prediction of class `index` named `label` with `probability`.
    public init(index: Int, label: String, probability: Float) {
        self.index = index; self.label = label; self.probability = probability
    }
}

/// `loupe classify`'s work: the top classes of one image.
public enum Classifier {
    /// The `top` most probable classes of `input` (one image, `shape` [1, 3, H, W]), named by
    /// `names(classes)` (ImageNet's for 1000 outputs by default).
    public static func classify(model: Model, input: [Float], shape: Shape, top: Int,
                                names: (Int) throws -> [String]? = { $0 == imageNetClasses.count ? imageNetClasses : nil }) throws -> [Prediction] {
        let scores = try ClassScores(model, input: try model.backend.tensor(input, shape))
        let named = try names(scores.classes)
        return scores.ranked(0, top: top).map { Prediction(index: $0, label: classLabel($0, names: named), probability: scores.probability(0, $0)) }
    }
}
