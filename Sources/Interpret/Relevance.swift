import Backend
import Graph
import Models

/// Layer-wise relevance propagation (Bach et al. 2015) as zennit computes it: the target's
/// one-hot relevance carried from the output to the input, each convolution and linear layer by
/// its composite's rule (`RelevanceComposite`), on a fused pass whose convolutions have their
/// batch norms folded in (zennit's canonizers). The attributions are signed and sum to about 1
/// (the target's relevance, less what biases and stabilizers absorb).
public struct LRP: AttributionMethod {
    public var name: String { "lrp" }
    /// The composite: one of `LRP.compositeNames`, or rules by layer kind,
    /// `conv=RULE,linear=RULE[,first=RULE]` (rules as `LRP.rule(_:)` reads them).
    public var composite: String
    /// The epsilon of the named composites' epsilon rule (zennit's default 1e-6).
    public var epsilon: Float
    /// The gamma of `epsilon_gamma_box` (zennit's default 0.25).
    public var gamma: Float

    /// zennit's composites by their registry names.
    public static let compositeNames = ["epsilon_plus", "epsilon_plus_flat", "epsilon_gamma_box", "epsilon_alpha2_beta1",
                                        "epsilon_alpha2_beta1_flat"]
    /// The rules a composite assembled by layer kind may name.
    public static let ruleNames = ["epsilon[:E]", "gamma[:G]", "z_plus", "alpha_beta[:A:B]", "flat", "w_square", "z_box[:LOW:HIGH]"]

    /// LRP with `composite` (checked now: an unknown name or rule throws ``InterpretError``).
    public init(composite: String = "epsilon_plus_flat", epsilon: Float = 1e-6, gamma: Float = 0.25) throws {
        self.composite = composite; self.epsilon = epsilon; self.gamma = gamma
        _ = try resolved(for: .imagenet)
    }

    /// The composite's rules for a model whose inputs are normalized by `normalization` (z^B's
    /// box is [0, 1] pixels in that space).
    public func resolved(for normalization: Normalization) throws -> RelevanceComposite {
        guard epsilon.isFinite, epsilon >= 0 else { throw InterpretError("--epsilon \(epsilon): a finite number of at least 0") }
        guard gamma.isFinite, gamma >= 0 else { throw InterpretError("--gamma \(gamma): a finite number of at least 0") }
        let box = RelevanceRule.zBox(low: zip(normalization.mean, normalization.std).map { -$0 / $1 },
                                     high: zip(normalization.mean, normalization.std).map { (1 - $0) / $1 })
        switch composite {
        case "epsilon_plus": return RelevanceComposite(name: composite, convolution: .zPlus, linear: .epsilon(epsilon))
        case "epsilon_plus_flat": return RelevanceComposite(name: composite, convolution: .zPlus, linear: .epsilon(epsilon), first: .flat)
        case "epsilon_gamma_box": return RelevanceComposite(name: composite, convolution: .gamma(gamma), linear: .epsilon(epsilon), first: box)
        case "epsilon_alpha2_beta1":
            return RelevanceComposite(name: composite, convolution: .alphaBeta(alpha: 2, beta: 1), linear: .epsilon(epsilon))
        case "epsilon_alpha2_beta1_flat":
            return RelevanceComposite(name: composite, convolution: .alphaBeta(alpha: 2, beta: 1), linear: .epsilon(epsilon), first: .flat)
        default: break
        }
        guard composite.contains("=") else {
            throw InterpretError("unknown LRP composite \(composite); known: \(Self.compositeNames.joined(separator: ", ")), "
                                 + "or conv=RULE,linear=RULE[,first=RULE] with rules \(Self.ruleNames.joined(separator: ", "))")
        }
        var rules: [String: RelevanceRule] = [:]
        for part in composite.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, ["conv", "linear", "first"].contains(pair[0]) else {
                throw InterpretError("LRP composite \(composite): \(part) is not conv=RULE, linear=RULE or first=RULE")
            }
            guard rules[pair[0]] == nil else { throw InterpretError("LRP composite \(composite) names \(pair[0]) twice") }
            rules[pair[0]] = try Self.rule(pair[1], box: box)
        }
        guard let conv = rules["conv"], let linear = rules["linear"] else {
            throw InterpretError("LRP composite \(composite): needs both conv=RULE and linear=RULE")
        }
        return RelevanceComposite(name: composite, convolution: conv, linear: linear, first: rules["first"])
    }

    /// A rule by name and parameters: `epsilon[:E]` (default 1e-6; 0 is LRP-0), `gamma[:G]`
    /// (0.25), `z_plus`, `alpha_beta[:A:B]` (2 and 1; A - B = 1, both at least 0), `flat`,
    /// `w_square`, `z_box` (the model's input box, [0, 1] pixels normalized), `z_box:LOW:HIGH`
    /// (one box for every channel, in the normalized input space) or `z_box:L1:..:Lc:H1:..:Hc`
    /// (one per channel).
    static func rule(_ text: String, box: RelevanceRule) throws -> RelevanceRule {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let numbers = try parts.dropFirst().map { part -> Float in
            guard let v = Float(part), v.isFinite else { throw InterpretError("LRP rule \(text): \(part) is not a finite number") }
            return v
        }
        func arguments(_ count: Int) throws {
            guard numbers.count <= count else { throw InterpretError("LRP rule \(text): \(parts[0]) takes at most \(count) number(s)") }
            guard numbers.allSatisfy({ $0 >= 0 }) else { throw InterpretError("LRP rule \(text): its numbers must be at least 0") }
        }
        switch parts[0] {
        case "epsilon": try arguments(1); return .epsilon(numbers.first ?? 1e-6)
        case "gamma": try arguments(1); return .gamma(numbers.first ?? 0.25)
        case "alpha_beta":
            try arguments(2)
            guard numbers.count == 0 || numbers.count == 2 else { throw InterpretError("LRP rule \(text): alpha_beta takes alpha and beta, alpha_beta:2:1") }
            let (a, b) = numbers.count == 2 ? (numbers[0], numbers[1]) : (2, 1)
            guard abs(a - b - 1) < 1e-6 else { throw InterpretError("LRP rule \(text): alpha - beta must be 1 (zennit's AlphaBeta)") }
            return .alphaBeta(alpha: a, beta: b)
        case "z_plus": try arguments(0); return .zPlus
        case "flat": try arguments(0); return .flat
        case "w_square": try arguments(0); return .wSquare
        case "z_box":
            guard case .zBox(let low, _) = box, numbers.isEmpty || numbers.count == 2 || numbers.count == 2 * low.count else {
                throw InterpretError("LRP rule \(text): z_box takes no numbers (the model's input box), LOW:HIGH, or one low and one high per input channel")
            }
            if numbers.isEmpty { return box }
            let half = numbers.count / 2
            let (l, h) = half == 1 ? ([Float](repeating: numbers[0], count: low.count), [Float](repeating: numbers[1], count: low.count))
                : (Array(numbers[..<half]), Array(numbers[half...]))
            guard zip(l, h).allSatisfy({ $0 < $1 }) else { throw InterpretError("LRP rule \(text): each low must be below its high") }
            return .zBox(low: l, high: h)
        default:
            throw InterpretError("unknown LRP rule \(parts[0]); known: \(ruleNames.joined(separator: ", "))")
        }
    }

    public func attribute(_ model: Model, input: Tensor, targets: [Int]) throws -> Attribution {
        let (n, h, w) = try checkBatch(input, targets)
        let b = model.backend
        let g = Graph(backend: b)
        g.keptLayers = []
        let x = g.input(input)
        let logits = try model.forward(g, x)
        let seed = try oneHot(b, targets: targets, classes: g.shape(logits)[1])
        let relevance = try g.relevance(from: logits, seed: seed, composite: try resolved(for: model.architecture.normalization))
        guard let raw = relevance.of(x) else { throw InterpretError("the model's output does not depend on its input") }
        return Attribution(method: name, count: n, height: h, width: w, map: try b.values(absChannelMax(b, raw)), raw: try b.values(raw))
    }
}

/// Concept relevance (Achtibat et al. 2023), as zennit-crp's CondAttribution computes its
/// conditional heatmaps: LRP (`composite`, as `lrp`) from the target's logit (its value, as
/// zennit-crp starts) to `layer` through every path, masked there to the concept's channels,
/// then on to the input; the map is the input relevance summed over colour channels (signed).
/// With no channels given, each image's concept is the channel of largest relevance at the
/// layer (summed over positions).
public struct ConceptRelevance: AttributionMethod {
    public var name: String { "concept_relevance" }
    /// The layer the concept lives in, named as `loupe layers` prints it.
    public var layer: String
    /// The concept: channels of `layer` (dimension 1 of its output); empty: each image's most
    /// relevant channel.
    public var channels: [Int]
    /// The rules, as the `lrp` method takes them.
    public var lrp: LRP

    /// The conditional heatmap of `channels` of `layer` under `lrp`'s composite.
    public init(layer: String, channels: [Int] = [], lrp: LRP) {
        self.layer = layer; self.channels = channels; self.lrp = lrp
    }

    public func attribute(_ model: Model, input: Tensor, targets: [Int]) throws -> Attribution {
        let (n, h, w) = try checkBatch(input, targets)
        let b = model.backend
        let pass = try relevanceAtLayers(model, input: input, targets: targets, layers: [layer], lrp: lrp)
        let (g, x, value, atLayer, composite) = (pass.graph, pass.input, pass.layers[0], pass.relevance[0], pass.composite)
        let shape = atLayer.shape
        let c = shape[1], rest = shape.count / (n * c)
        let concepts: [[Int]]
        if channels.isEmpty {
            // Each image's channel of largest relevance (summed over the rest of the layer).
            let sums = try b.values(b.reduce(Tensor(shape: [n, c, rest], storage: atLayer.storage), .sum, axis: 2))
            concepts = (0..<n).map { i in [(0..<c).max { sums[i * c + $0] < sums[i * c + $1] }!] }
        } else {
            for ch in channels where ch < 0 || ch >= c {
                throw InterpretError("\(layer) has \(c) channels (0...\(c - 1)); channel \(ch) does not exist")
            }
            concepts = [[Int]](repeating: channels, count: n)
        }
        // The relevance at the layer times 1 on the concept's channels and 0 elsewhere, per image.
        var keep = [Float](repeating: 0, count: n * c)
        for (i, concept) in concepts.enumerated() { for ch in concept { keep[i * c + ch] = 1 } }
        let zeros = try b.tensor([Float](repeating: 0, count: n * c), [n * c]), ones = try b.tensor([Float](repeating: 1, count: n * c), [n * c])
        let masked = try b.batchNorm2d(Tensor(shape: [1, n * c, rest, 1], storage: atLayer.storage),
                                       BatchNormParams(gamma: try b.tensor(keep, [n * c]), beta: zeros, mean: zeros, variance: ones, eps: 0))
        let relevance = try g.relevance(from: value, seed: Tensor(shape: shape, storage: masked.storage), composite: composite)
        guard let raw = relevance.of(x) else { throw InterpretError("the model's output does not depend on its input") }
        let sums = try b.matmul(try b.tensor([Float](repeating: 1, count: n * 3), [n, 1, 3]), Tensor(shape: [n, 3, h * w], storage: raw.storage),
                                transposeA: false, transposeB: false)
        var result = Attribution(method: name, count: n, height: h, width: w, map: try b.values(sums), raw: try b.values(raw))
        result.concepts = concepts
        return result
    }
}

/// LRP by `lrp`'s composite from each image's target logit (its value, as zennit-crp starts) to
/// `layers`, through every path, in one forward and one backward pass: the pass's graph, its
/// input, each layer's output and the relevance there, the composite resolved for the model,
/// and the targets (nil given: each image's top class, the first of equal logits).
func relevanceAtLayers(_ model: Model, input: Tensor, targets given: [Int]?, layers: [String], lrp: LRP) throws
    -> (graph: Graph, input: Graph.Value, layers: [Graph.Value], relevance: [Tensor], composite: RelevanceComposite, targets: [Int]) {
    let b = model.backend
    let g = Graph(backend: b)
    g.keptLayers = Set(layers)
    let x = g.input(input)
    let logits = try model.forward(g, x)
    for layer in layers { try checkLayerName(layer, in: g.layerNames, model: model.architecture.name) }
    let composite = try lrp.resolved(for: model.architecture.normalization)
    let (n, classes) = (g.shape(logits)[0], g.shape(logits)[1]), scores = try b.values(g.tensor(logits))
    let targets = given ?? (0..<n).map { i in (0..<classes).max { scores[i * classes + $0] < scores[i * classes + $1] || (scores[i * classes + $0] == scores[i * classes + $1] && $0 > $1) }! }
    let seed = try oneHot(b, targets: targets, classes: classes, scale: try targets.enumerated().map { i, t in
        guard t >= 0, t < classes else { throw InterpretError("target class \(t) is out of range 0...\(classes - 1)") }
        return scores[i * classes + t]
    })
    let values = layers.map { g.tapped($0)! }
    let relevance = try g.relevance(from: logits, seed: seed, composite: composite)
    let atLayers = try zip(layers, values).map { layer, value in
        guard let r = relevance.of(value) else { throw InterpretError("layer \(layer) does not influence the output") }
        return r
    }
    return (g, x, values, atLayers, composite, targets)
}
