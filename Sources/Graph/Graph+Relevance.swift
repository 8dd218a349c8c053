import BackendCore
import Synchronization

/// One rule of layer-wise relevance propagation (Bach et al. 2015; Montavon et al. 2019) for a
/// convolution or linear layer, as zennit defines it (`zennit.rules`): with z = W x + b the
/// layer's output and R its relevance, each rule divides R by a stabilized denominator
/// (z + e s(z), s = 1 for z >= 0, else -1) and spreads the quotient back through modified
/// weights. Weight and input modifiers apply to the bias too, as zennit's do.
public enum RelevanceRule: Sendable, Equatable, CustomStringConvertible {
    /// LRP-epsilon (LRP-0 at 0): x (W^T (R / (z + e s(z)))).
    case epsilon(Float)
    /// Generalized LRP-gamma: positive contributions to positive outputs (and negative to
    /// negative) boosted by gamma times the weights' positive (negative) part.
    case gamma(Float)
    /// z-plus (alpha 1, beta 0): positive contributions only.
    case zPlus
    /// alpha-beta: alpha times the positive contributions' share minus beta times the
    /// negative ones' (alpha - beta = 1, both at least 0).
    case alphaBeta(alpha: Float, beta: Float)
    /// Flat: every input of a window shares its output's relevance equally (weights all 1, no
    /// bias, inputs all 1); for the first layer.
    case flat
    /// w-square: in proportion to the squared weights (inputs all 1); for the first layer.
    case wSquare
    /// z^B: for the first layer of a network whose input lies in a box, [low, high] per input
    /// channel (in the network's normalized input space).
    case zBox(low: [Float], high: [Float])

    /// The rule as `--composite` spells it ("gamma:0.25", "z_plus"; a box without its bounds).
    public var description: String {
        switch self {
        case .epsilon(let e): "epsilon:\(e)"
        case .gamma(let g): "gamma:\(g)"
        case .zPlus: "z_plus"
        case .alphaBeta(let a, let b): "alpha_beta:\(a):\(b)"
        case .flat: "flat"
        case .wSquare: "w_square"
        case .zBox: "z_box"
        }
    }
}

/// Which rule each layer takes: zennit's composites. Activations (ReLU, ReLU6, sigmoid, GELU,
/// hard swish...) and batch norms left unfolded pass relevance unchanged; additions and average
/// pools split it in proportion to each input's contribution (zennit's Norm rule, which its
/// canonizers give ResNet's additions: Loupe gives it every addition); max pools and every other
/// op take the gradient, as zennit does for modules its composites do not name. Batch norms are
/// folded into the convolution before them (zennit's SequentialMergeBatchNorm) by the fused pass
/// relevance runs on.
public struct RelevanceComposite: Sendable, Equatable, CustomStringConvertible {
    /// The rule of every convolution but the first.
    public var convolution: RelevanceRule
    /// The rule of every linear (fully connected) layer but the first.
    public var linear: RelevanceRule
    /// The rule of the network's first convolution or linear layer (nil: its kind's rule).
    public var first: RelevanceRule?
    /// The stabilizer of every rule but epsilon (zennit's `stabilizer`, 1e-6).
    public var stabilizer: Float
    /// The composite's name (zennit's registry name, or the assignment it was parsed from).
    public var name: String

    /// A composite: `convolution` for convolutions, `linear` for linear layers, `first` for the
    /// first of either.
    public init(name: String, convolution: RelevanceRule, linear: RelevanceRule, first: RelevanceRule? = nil, stabilizer: Float = 1e-6) {
        self.name = name
        self.convolution = convolution; self.linear = linear; self.first = first; self.stabilizer = stabilizer
    }

    /// The composite's name.
    public var description: String { name }
}

/// How relevance propagation treats an op.
enum RelevanceRole {
    /// A convolution or linear layer: its input, weights and bias, the op with other weights,
    /// and its transpose (the backward to its input) with other weights.
    case layer(RelevanceLayer)
    /// A sum of its inputs or an average pool: relevance split in proportion to each input's
    /// contribution, R_i = x_i spread_i(R / stabilized(y)) (zennit's Norm). `spread` is the
    /// op's backward to each input.
    case proportional([Tensor], Tensor, (Tensor) throws -> [Tensor])
    /// An elementwise activation or a batch norm: relevance passes unchanged (zennit's Pass).
    case pass

    static func convolution(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParams, nonNegative: Bool, on b: any Backend) -> RelevanceRole {
        .layer(RelevanceLayer(x: x, weight: weight, bias: bias, isConvolution: true, nonNegative: nonNegative,
                              forward: { try b.conv2d($0, weight: $1, bias: $2, p) },
                              transpose: { try b.conv2dBackwardInput($0, weight: $1, inputShape: x.shape, p) }))
    }

    static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?, nonNegative: Bool, on b: any Backend) -> RelevanceRole {
        .layer(RelevanceLayer(x: x, weight: weight, bias: bias, isConvolution: false, nonNegative: nonNegative,
                              forward: { try b.linear($0, weight: $1, bias: $2) },
                              transpose: { try b.linearBackwardInput($0, weight: $1) }))
    }
}

/// A convolution or linear layer as relevance propagation sees it.
struct RelevanceLayer {
    let x: Tensor, weight: Tensor, bias: Tensor?
    let isConvolution: Bool
    /// Whether x holds no negative number (it comes from an activation): the rules' terms in
    /// x's negative part are zero and skipped.
    let nonNegative: Bool
    /// The layer with other inputs, weights and bias.
    let forward: (Tensor, Tensor, Tensor?) throws -> Tensor
    /// Its backward to the input for an output gradient and other weights.
    let transpose: (Tensor, Tensor) throws -> Tensor
}

extension Pointwise {
    /// Whether relevance passes this function unchanged (zennit's `Activation` types take the
    /// Pass rule): sigmoid, the hard functions, GELU and tanh.
    var isActivation: Bool {
        switch self {
        case .sigmoid, .hardSigmoid, .hardSwish, .gelu, .tanh: true
        case .absPower, .erf, .offset, .stabilizedReciprocal: false
        }
    }
}

extension Graph {
    /// Layer-wise relevance propagation from `output`, seeded with `seed` (its relevance: a
    /// one-hot row per image, as zennit's `attributor(x, one_hot)`), each op by its role under
    /// `composite`. Returns the relevance of every value that gets one; the input's is the
    /// heatmap, a tap's the relevance of that layer's output.
    public func relevance(from output: Value, seed: Tensor, composite: RelevanceComposite) throws -> Gradients {
        guard seed.shape == shape(output) else {
            throw BackendError("relevance", "seed \(seed.shape) does not match the output \(shape(output))")
        }
        let first = nodes.firstIndex { node in
            if case .layer? = node?.relevance, let input = node?.inputs.first { return requiresGrad[input] }
            return false
        }
        let taps = Set(tapIndex.values)
        var relevances: [Int: Tensor] = [output.id: seed]
        for id in stride(from: output.id, through: 0, by: -1) {
            guard let r = relevances[id], let node = nodes[id] else { continue }
            let needs = node.inputs.map { requiresGrad[$0] }
            let incoming: [Tensor?]
            switch node.relevance {
            case .layer(let layer)? where needs[0]:
                let rule = id == first ? composite.first ?? (layer.isConvolution ? composite.convolution : composite.linear)
                    : layer.isConvolution ? composite.convolution : composite.linear
                incoming = [try relevance(r, through: layer, rule, stabilizer: composite.stabilizer)]
            case .proportional(let inputs, let y, let spread)?:
                let ratio = try backend.mul(r, try backend.pointwise(y, .stabilizedReciprocal(composite.stabilizer)))
                incoming = try zip(zip(inputs, try spread(ratio)), needs).map { pair, need in need ? try backend.mul(pair.0, pair.1) : nil }
            case .pass?:
                incoming = [r] + [Tensor?](repeating: nil, count: node.inputs.count - 1)
            default:
                incoming = try node.backward(r, .standard, needs)
            }
            for (input, ri) in zip(node.inputs, incoming) {
                guard let ri, requiresGrad[input] else { continue }
                relevances[input] = try relevances[input].map { try backend.add($0, ri) } ?? ri
            }
            if id != output.id, !taps.contains(id) { relevances[id] = nil }
        }
        return Gradients(graph: self, grads: relevances)
    }

    /// The relevance of a layer's input from that of its output under `rule` (zennit's
    /// BasicHook: modified forward passes, their stabilized quotients, modified backward passes).
    private func relevance(_ r: Tensor, through layer: RelevanceLayer, _ rule: RelevanceRule, stabilizer: Float) throws -> Tensor {
        let b = backend
        let (x, w, bias) = (layer.x, layer.weight, layer.bias)
        let (f, t) = (layer.forward, layer.transpose)
        func positive(_ v: Tensor) throws -> Tensor { try b.activation(v, .relu) }
        func negative(_ v: Tensor) throws -> Tensor { try b.axpy(-1, try positive(v), v) }
        /// A modified weight or bias, made once per weight tensor and kept while it lives.
        func modified(_ v: Tensor?, _ key: String, _ make: (Tensor) throws -> Tensor) throws -> Tensor? {
            try v.map { v in try DerivedTensors.shared.tensor(of: v, key) { try make(v) } }
        }
        /// R / stabilized(z).
        func quotient(_ z: Tensor, _ e: Float) throws -> Tensor { try b.mul(r, try b.pointwise(z, .stabilizedReciprocal(e))) }
        func ones(_ shape: Shape) throws -> Tensor { try b.tensor([Float](repeating: 1, count: shape.count), shape) }
        /// a + c where c may be absent (a term of x's negative part when x has none).
        func plus(_ a: Tensor, _ c: Tensor?) throws -> Tensor { try c.map { try b.add(a, $0) } ?? a }
        let (xp, xn) = layer.nonNegative ? (x, nil) : (try positive(x), try negative(x))
        switch rule {
        case .epsilon(let e):
            return try b.mul(x, try t(try quotient(try f(x, w, bias), e), w))
        case .zPlus, .alphaBeta:
            let (alpha, beta): (Float, Float) = if case .alphaBeta(let a, let c) = rule { (a, c) } else { (1, 0) }
            let wp = try modified(w, "positive", positive)!, wn = try modified(w, "negative", negative)!
            // Positive contributions: x+ w+ (+ b+) and x- w-; negative ones: x+ w- (+ b-) and x- w+.
            let sp = try quotient(try plus(try f(xp, wp, try modified(bias, "positive", positive)), try xn.map { try f($0, wn, nil) }), stabilizer)
            var result = try plus(try b.mul(xp, try t(sp, wp)), try xn.map { try b.mul($0, try t(sp, wn)) })
            if beta != 0 {
                let sn = try quotient(try plus(try f(xp, wn, try modified(bias, "negative", negative)), try xn.map { try f($0, wp, nil) }), stabilizer)
                let rn = try plus(try b.mul(xp, try t(sn, wn)), try xn.map { try b.mul($0, try t(sn, wp)) })
                result = try b.axpy(-beta, rn, alpha == 1 ? result : try b.scale(result, alpha))
            }
            return result
        case .gamma(let gamma):
            // W + gamma W+ and W + gamma W- (the bias likewise).
            let grown = { (part: @escaping (Tensor) throws -> Tensor) in { (v: Tensor) in try b.axpy(gamma, try part(v), v) } }
            let wp = try modified(w, "gamma \(gamma) positive", grown(positive))!, wn = try modified(w, "gamma \(gamma) negative", grown(negative))!
            let bp = try modified(bias, "gamma \(gamma) positive", grown(positive)), bn = try modified(bias, "gamma \(gamma) negative", grown(negative))
            let z = try f(x, w, bias)
            // Outputs above zero take the positive contributions' share, those below the negative's.
            let above = try b.activationBackward(try quotient(try plus(try f(xp, wp, bp), try xn.map { try f($0, wn, nil) }), stabilizer),
                                                 input: z, .relu, rule: .standard)
            let below = try b.activationBackward(try quotient(try plus(try f(xp, wn, bn), try xn.map { try f($0, wp, nil) }), stabilizer),
                                                 input: try b.scale(z, -1), .relu, rule: .standard)
            return try plus(try b.mul(xp, try b.add(try t(above, wp), try t(below, wn))),
                            try xn.map { try b.mul($0, try b.add(try t(above, wn), try t(below, wp))) })
        case .flat:
            let unit = try modified(w, "ones") { try ones($0.shape) }!
            return try t(try quotient(try f(try ones(x.shape), unit, nil), stabilizer), unit)
        case .wSquare:
            let square = try modified(w, "square") { try b.mul($0, $0) }!
            return try t(try quotient(try f(try ones(x.shape), square, try modified(bias, "square") { try b.mul($0, $0) }), stabilizer), square)
        case .zBox(let low, let high):
            let (l, h) = (try box(low, like: x), try box(high, like: x))
            let wp = try modified(w, "positive", positive)!, wn = try modified(w, "negative", negative)!
            // The biases of the three terms cancel: b - relu(b) - min(b, 0) = 0.
            let z = try b.axpy(-1, try b.add(try f(l, wp, nil), try f(h, wn, nil)), try f(x, w, nil))
            let s = try quotient(z, stabilizer)
            return try b.axpy(-1, try b.add(try b.mul(l, try t(s, wp)), try b.mul(h, try t(s, wn))), try b.mul(x, try t(s, w)))
        }
    }

    /// A tensor of `x`'s shape [N, C, ...] holding `perChannel[c]` along channel c.
    private func box(_ perChannel: [Float], like x: Tensor) throws -> Tensor {
        let s = x.shape
        guard s.rank >= 2, perChannel.count == s[1] else {
            throw BackendError("relevance", "the z_box rule has bounds for \(perChannel.count) channels; the first layer's input is \(s)")
        }
        let inner = s.dims.dropFirst(2).reduce(1, *)
        var v = [Float](repeating: 0, count: s.count)
        for i in 0..<s.count { v[i] = perChannel[(i / inner) % s[1]] }
        return try backend.tensor(v, s)
    }
}

/// Tensors derived from a weight (its positive part, its square) by the relevance rules, made
/// once per weight tensor and per key and kept while that tensor lives, so that a backend's own
/// per-weight work (packed panels, Winograd transforms) is done once too. An entry whose weight
/// was freed is found stale by its weak reference and dropped.
final class DerivedTensors: Sendable {
    static let shared = DerivedTensors()

    private struct Entry {
        weak var owner: (any TensorStorage)?
        var tensors: [String: Tensor]
    }
    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])

    func tensor(of source: Tensor, _ key: String, _ make: () throws -> Tensor) throws -> Tensor {
        let id = ObjectIdentifier(source.storage)
        let shapeKey = "\(key) \(source.shape)"
        if let made = entries.withLock({ $0[id].flatMap { $0.owner === source.storage ? $0.tensors[shapeKey] : nil } }) { return made }
        let made = try make()
        entries.withLock { entries in
            if entries[id]?.owner !== source.storage {
                entries = entries.filter { $0.value.owner != nil }
                entries[id] = Entry(owner: source.storage, tensors: [:])
            }
            entries[id]!.tensors[shapeKey] = made
        }
        return made
    }
}
