import Backend
import Graph
import Models

/// The scores of one forward pass: logits and softmax probabilities [N, classes] on the host,
/// and each image's classes by probability. `loupe classify`, the probe pass that gives `loupe
/// saliency` and `loupe sanity` their default targets, and the C interface's `forward` and
/// default targets all read them from here.
public struct ClassScores: Sendable {
    /// [N, classes], row-major.
    public let logits: [Float]
    /// Softmax of each row of `logits` (on the model's device).
    public let probabilities: [Float]
    /// Images (N).
    public let count: Int
    /// Outputs per image.
    public let classes: Int

    /// A segmentation model's per-pixel scores, when the output is [N, classes, H, W]; nil for a
    /// classifier. `logits` then holds each class's mean score over the grid and
    /// `probabilities` each class's share of the predicted pixels, so that the classes rank by
    /// the area predicted as each.
    public let dense: DenseScores?

    /// The scores of `logits`, an [N, classes] value of a graph that ran the model, or a
    /// segmentation's [N, classes, H, W].
    public init(graph g: Graph, logits: Graph.Value) throws {
        let shape = g.shape(logits)
        guard shape.rank == 2 || shape.rank == 4 else {
            throw InterpretError("the model's output is \(shape), not [N, classes] (a classifier) or [N, classes, H, W] (a segmentation)")
        }
        let b = g.backend
        let values = try b.values(g.tensor(logits))
        // A NaN or an overflow in the logits (from the input or the weights) has no class to
        // name: refused here rather than ranked as if it were a score.
        if let i = values.firstIndex(where: { !$0.isFinite }) {
            let perImage = Swift.max(shape.count / Swift.max(shape[0], 1), 1), area = shape.rank == 4 ? Swift.max(shape[2] * shape[3], 1) : 1
            throw InterpretError("the model's output for image \(i / perImage) holds \(values[i]) (class \(i % perImage / area)): the input or the weights are not finite, or a layer overflowed")
        }
        (count, classes) = (shape[0], shape[1])
        if shape.rank == 4 {
            let dense = try DenseScores(logits: values, shape: shape)
            (self.logits, probabilities) = dense.classRows()
            self.dense = dense
        } else {
            self.logits = values
            probabilities = try b.values(b.softmax(g.tensor(logits)))
            dense = nil
        }
    }

    /// One fused forward pass of the normalized batch `input` [N, 3, H, W], after the memory
    /// budget of that pass.
    public init(_ model: Model, input: Tensor) throws {
        guard let (n, _, h, w) = input.shape.nchw else { throw InterpretError("input must be [N, 3, H, W], got \(input.shape)") }
        try MemoryBudget.requirePass(model, batch: n, height: h, width: w, what: "a forward pass")
        let g = Graph(backend: model.backend)
        g.keptLayers = []
        g.forwardOnly = true
        try self.init(graph: g, logits: try model.forward(g, g.input(input)))
    }

    /// Image `i`'s `k` most probable classes, most probable first (ties: the lower index first).
    public func ranked(_ i: Int, top k: Int) -> [Int] {
        let start = i * classes
        let row = probabilities[start..<(start + classes)]
        return row.indices.sorted { row[$0] != row[$1] ? row[$0] > row[$1] : $0 < $1 }.prefix(Swift.min(k, classes)).map { $0 - start }
    }

    /// Each image's most probable class.
    public var topClasses: [Int] { (0..<count).map { ranked($0, top: 1)[0] } }

    /// Whether image `i`'s output is flat: every class's probability within `tolerance` of
    /// 1/classes (at every pixel, for a segmentation), as untrained or random weights leave it;
    /// maps of such an output say nothing about the image.
    public func isFlat(_ i: Int, tolerance: Float = 1e-6) -> Bool {
        if let dense { return dense.isFlat(i, tolerance: Double(tolerance)) }
        let uniform = 1 / Float(classes)
        return classes > 1 && probabilities[(i * classes)..<((i + 1) * classes)].allSatisfy { abs($0 - uniform) <= tolerance }
    }

    /// Image `i`'s probability of class `k`.
    public func probability(_ i: Int, _ k: Int) -> Float { probabilities[i * classes + k] }
}
