import Backend
import Graph
import Models

/// What an attribution method returns for a batch of N images of H x W.
public struct Attribution: Sendable {
    /// The method's name.
    public let method: String
    /// Images (N).
    public let count: Int
    /// Map height (H, the input's).
    public let height: Int
    /// Map width (W, the input's).
    public let width: Int
    /// N maps of H x W, row-major. Gradient methods: the largest |attribution| over colour
    /// channels. CAM methods: in [0, 1] (min-max normalized, as pytorch-grad-cam).
    public let map: [Float]
    /// N x 3 x H x W signed attributions of the gradient methods (nil for CAMs).
    public let raw: [Float]?
    /// Integrated Gradients and DeepLIFT: sum of attributions minus (f(x) - f(baseline)), per image.
    public var completenessError: [Float]?
    /// The layer methods' attributions at their layer: N blocks of `layerShape` ([C, lh, lw]).
    public var layerValues: [Float]?
    /// The shape of one image's `layerValues`.
    public var layerShape: [Int]?
    /// Concept relevance: each image's concept (channels of the layer).
    public var concepts: [[Int]]?

    /// Whether the attributions are signed contributions that add up to a change of the score
    /// (gradient x input, integrated gradients, occlusion, LRP, DeepLIFT, the SHAP methods and LIME): drawn on a diverging scale by default.
    public var isSigned: Bool { Self.signedMethods.contains(method) }
    /// The names of the methods whose attributions are signed contributions.
    public static let signedMethods: Set<String> = ["gradient_x_input", "integrated_gradients", "occlusion", "lrp", "deeplift", "gradient_shap", "deeplift_shap", "lime", "kernel_shap",
                                                     "layer_gradient_x_activation", "layer_conductance", "layer_integrated_gradients", "concept_relevance"]

    /// An attribution of `count` maps of height x width (and raw attributions, when the method
    /// has them).
    public init(method: String, count: Int, height: Int, width: Int, map: [Float], raw: [Float]?, completenessError: [Float]? = nil) {
        (self.method, self.count, self.height, self.width, self.map, self.raw) = (method, count, height, width, map, raw)
        self.completenessError = completenessError
    }

    /// Map `i` as H x W values.
    public func map(_ i: Int) -> ArraySlice<Float> { map[(i * height * width)..<((i + 1) * height * width)] }
    /// Image `i`'s attributions at the layer, `layerShape` (nil but for the layer methods).
    public func layer(_ i: Int) -> ArraySlice<Float>? {
        guard let layerValues, let layerShape else { return nil }
        let size = layerShape.reduce(1, *)
        return layerValues[(i * size)..<((i + 1) * size)]
    }
    /// Image `i`'s raw attributions, 3 x H x W (nil for CAMs).
    public func raw(_ i: Int) -> ArraySlice<Float>? { raw?[(i * 3 * height * width)..<((i + 1) * 3 * height * width)] }

    /// The attributions of `parts` (of one method, each of its own images) as one batch, in
    /// order.
    public static func joined(_ parts: [Attribution]) throws -> Attribution {
        guard let first = parts.first else { throw InterpretError("no attributions to join") }
        guard parts.allSatisfy({ $0.method == first.method && $0.height == first.height && $0.width == first.width
                                 && ($0.raw == nil) == (first.raw == nil) && $0.layerShape == first.layerShape }) else {
            throw InterpretError("attributions of different methods or sizes do not join")
        }
        func all<T>(_ key: (Attribution) -> [T]?) -> [T]? {
            parts.allSatisfy { key($0) != nil } ? parts.flatMap { key($0)! } : nil
        }
        var joined = Attribution(method: first.method, count: parts.reduce(0) { $0 + $1.count }, height: first.height, width: first.width,
                                 map: parts.flatMap(\.map), raw: all(\.raw), completenessError: all(\.completenessError))
        joined.layerValues = all(\.layerValues)
        joined.layerShape = first.layerShape
        joined.concepts = all(\.concepts)
        return joined
    }
}

/// An attribution, visualization or inversion that cannot run: a bad batch or target, an
/// unknown layer or method, a loss that diverged (the description says which).
public struct InterpretError: Error, CustomStringConvertible, Sendable {
    /// What is wrong, one line.
    public let description: String
    /// An error with this description.
    public init(_ description: String) { self.description = description }
}

/// One attribution method, one entry point (as Captum's `attribute`): `input` is the normalized
/// batch [N, 3, H, W] on the model's backend, `targets` one class index per image. The network
/// passes run on the model's backend; nothing else moves to the host but the final maps and
/// the few numbers a method needs (target scores; Score-CAM's layer activations).
public protocol AttributionMethod: Sendable {
    /// The name `loupe saliency --method` takes and its reports show ("gradient", "gradcam", ...).
    var name: String { get }
    /// The attribution of each image's target class: maps (and raw attributions for gradient
    /// methods) for the N images of `input`. Throws ``InterpretError`` for a batch that is not
    /// [N, 3, H, W], a target count other than N, or a target out of the model's classes.
    func attribute(_ model: Model, input: Tensor, targets: [Int]) throws -> Attribution
}

// MARK: Shared passes

/// [N, classes] with `scale[i]` (default 1) at (i, targets[i]).
func oneHot(_ backend: any Backend, targets: [Int], classes: Int, scale: [Float]? = nil) throws -> Tensor {
    var v = [Float](repeating: 0, count: targets.count * classes)
    for (i, t) in targets.enumerated() {
        guard t >= 0, t < classes else { throw InterpretError("target class \(t) is out of range 0...\(classes - 1)") }
        v[i * classes + t] = scale?[i] ?? 1
    }
    return try backend.tensor(v, [targets.count, classes])
}

func checkBatch(_ input: Tensor, _ targets: [Int]) throws -> (n: Int, h: Int, w: Int) {
    guard let (n, c, h, w) = input.shape.nchw, c == 3 else { throw InterpretError("input must be [N, 3, H, W], got \(input.shape)") }
    guard targets.count == n else { throw InterpretError("\(targets.count) targets for \(n) images") }
    return (n, h, w)
}

/// The forward pass and the backward pass from each image's target logit (times `scale`; `rule`
/// on the activations of the kinds `ruleActivations` holds); a
/// fused pass that keeps the layers `keeping` (see `Graph.keptLayers`); with `stoppingAtKept`, the
/// backward pass ends at those layers (no gradient reaches the input) and the convolutions
/// before them take forward-only forms (`Graph.differentiatedFrom`).
func targetGradient(_ model: Model, _ input: Tensor, _ targets: [Int], rule: GradientRule = .standard,
                    ruleActivations: Set<Activation> = Set(Activation.allCases),
                    scale: [Float]? = nil, keeping: Set<String> = [], stoppingAtKept: Bool = false)
    throws -> (graph: Graph, x: Graph.Value, logits: Graph.Value, grads: Gradients) {
    let g = Graph(backend: model.backend)
    g.keptLayers = keeping
    g.fusesResiduals = true
    if stoppingAtKept { g.differentiatedFrom = keeping }
    let x = g.input(input)
    let logits = try model.forward(g, x)
    let seed = try oneHot(model.backend, targets: targets, classes: g.shape(logits)[1], scale: scale)
    if stoppingAtKept { for layer in keeping.sorted() { try checkLayerName(layer, in: g.layerNames, model: model.architecture.name) } }
    let stops = stoppingAtKept ? keeping.compactMap { g.tapped($0) } : []
    return (g, x, logits, try g.backward(from: logits, seed: seed, rule: rule, ruleActivations: ruleActivations, stoppingAt: stops))
}

/// dL/d(input) of a `targetGradient` pass; an error, not a trap, if the input got none.
func inputGradient(_ pass: (graph: Graph, x: Graph.Value, logits: Graph.Value, grads: Gradients)) throws -> Tensor {
    guard let gradient = pass.grads.of(pass.x) else { throw InterpretError("the model's output does not depend on its input") }
    return gradient
}

/// The target logits of a forward pass, on the host.
func targetScores(_ model: Model, _ input: Tensor, _ targets: [Int]) throws -> [Float] {
    let g = Graph(backend: model.backend)
    g.keptLayers = []
    g.forwardOnly = true
    let logits = try model.forward(g, g.input(input))
    let values = try model.backend.values(g.tensor(logits))
    let classes = g.shape(logits)[1]
    return try targets.enumerated().map { i, t in
        guard t >= 0, t < classes else { throw InterpretError("target class \(t) is out of range 0...\(classes - 1)") }
        return values[i * classes + t]
    }
}

/// max over channels of |x|, on the device: [N, C, H, W] -> [N, 1, H, W].
func absChannelMax(_ b: any Backend, _ x: Tensor) throws -> Tensor {
    try b.channelMax(try b.add(try b.activation(x, .relu), try b.activation(try b.scale(x, -1), .relu)))
}

/// Sum over the batch: [B, ...] -> [1, ...] on the device (ones^T X through linear's weight gradient).
func batchSum(_ b: any Backend, _ x: Tensor) throws -> Tensor {
    let n = x.shape[0], d = x.shape.count / Swift.max(n, 1)
    let ones = try b.tensor([Float](repeating: 1, count: n), [n, 1])
    let flat = Tensor(shape: [n, d], storage: x.storage)
    let sum = try b.linearBackwardWeight(ones, input: flat)
    return Tensor(shape: Shape([1] + Array(x.shape.dims.dropFirst())), storage: sum.storage)
}
