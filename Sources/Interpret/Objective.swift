import Backend
import Foundation
import Graph

/// What feature visualization maximizes (Lucid's `objectives`), for one image of a batch.
/// Every objective is linear or quadratic in one or more layers' activations, so a batch of
/// objectives compiles to constant weight masks on the device: value_n = sum over layers of
/// sum(L_n * a_n) + sum(Q_n * a_n^2).
public indirect enum Objective: Sendable, Equatable, CustomStringConvertible {
    /// Mean activation of a channel over positions.
    case channel(layer: String, channel: Int)
    /// One unit: a channel at a position (nil: the centre, shape / 2 as Lucid).
    case neuron(layer: String, channel: Int, x: Int?, y: Int?)
    /// DeepDream: mean of the squared activations of the whole layer.
    case layer(String)
    /// A class's logit (pre-softmax).
    case classLogit(Int)
    /// Mean over positions of the dot product of the activation with `vector` (channel space).
    case direction(layer: String, vector: [Float])
    /// A weighted sum of objectives.
    case sum([WeightedObjective])

    /// The layer name that stands for the model's output (class logits).
    public static let logits = "logits"

    /// A readable form: "layer:channel", "layer:channel@x,y", "layer", "class:k", "layer:[v...]", or
    /// weighted terms joined by " + ".
    public var description: String {
        switch self {
        case .channel(let l, let c): return "\(l):\(c)"
        case .neuron(let l, let c, let x, let y): return x.map { "\(l):\(c)@\($0),\(y ?? 0)" } ?? "\(l):\(c)@centre"
        case .layer(let l): return l
        case .classLogit(let k): return "class:\(k)"
        case .direction(let l, let v): return "\(l):[\(v.map { String($0) }.joined(separator: ","))]"
        case .sum(let terms): return terms.map { "\($0.weight)*\($0.objective)" }.joined(separator: " + ")
        }
    }

    /// Every layer the objective reads.
    public var layers: [String] {
        switch self {
        case .channel(let l, _), .neuron(let l, _, _, _), .layer(let l), .direction(let l, _): return [l]
        case .classLogit: return [Self.logits]
        case .sum(let terms): return Array(Set(terms.flatMap(\.objective.layers))).sorted()
        }
    }

    /// Parses `0.2*features.10:5 + 0.8*class:948`: terms joined by + or -, each an optional
    /// `weight*` and one of `LAYER:C` (channel), `LAYER:C@X,Y` (neuron), `LAYER:C@centre`,
    /// `LAYER` (DeepDream), `class:K` (logit; `class:NAME` through `classIndex` when given),
    /// `LAYER:[v1,v2,...]` (direction).
    public static func parse(_ text: String, classIndex: ((String) throws -> Int)? = nil) throws -> Objective {
        var terms: [WeightedObjective] = []
        var current = "", sign: Float = 1, depth = 0
        func flush() throws {
            let t = current.trimmingCharacters(in: .whitespaces)
            guard !t.isEmpty else { throw InterpretError("objective \(text): an empty term") }
            var weight: Float = 1, atom = t
            if let star = t.firstIndex(of: "*") {
                guard let w = Float(t[..<star].trimmingCharacters(in: .whitespaces)) else { throw InterpretError("objective \(text): \(t[..<star]) is not a weight") }
                weight = w
                atom = String(t[t.index(after: star)...]).trimmingCharacters(in: .whitespaces)
            }
            terms.append(WeightedObjective(weight: sign * weight, objective: try parseAtom(atom, in: text, classIndex: classIndex)))
            current = ""
        }
        for ch in text {
            if ch == "[" { depth += 1 } else if ch == "]" { depth -= 1 }
            // A sign after a weight's "e" or at the start of a term belongs to a number.
            if (ch == "+" || ch == "-"), depth == 0, !current.trimmingCharacters(in: .whitespaces).isEmpty,
               !(current.last == "e" && Float(current.dropLast().trimmingCharacters(in: .whitespaces)) != nil) {
                try flush()
                sign = ch == "-" ? -1 : 1
            } else {
                current.append(ch)
            }
        }
        try flush()
        return terms.count == 1 && terms[0].weight == 1 ? terms[0].objective : .sum(terms)
    }

    static func parseAtom(_ atom: String, in text: String, classIndex: ((String) throws -> Int)?) throws -> Objective {
        func bad(_ why: String) -> InterpretError { InterpretError("objective \(text): \(atom): \(why)") }
        if atom.hasPrefix("class:") {
            let name = atom.dropFirst(6).trimmingCharacters(in: .whitespaces)
            if let k = Int(name) { return .classLogit(k) }
            guard let classIndex, !name.isEmpty else { throw bad("expected class:INDEX") }
            return .classLogit(try classIndex(name))
        }
        guard let colon = atom.firstIndex(of: ":") else {
            guard !atom.isEmpty, !atom.contains(where: \.isWhitespace) else { throw bad("expected a layer name") }
            return .layer(atom)
        }
        let layer = String(atom[..<colon]), rest = String(atom[atom.index(after: colon)...])
        if rest.hasPrefix("[") {
            guard rest.hasSuffix("]") else { throw bad("a direction is [v1,v2,...]") }
            let values = rest.dropFirst().dropLast().split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
            guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else { throw bad("a direction is a list of numbers") }
            return .direction(layer: layer, vector: values.map { $0! })
        }
        let parts = rest.split(separator: "@", omittingEmptySubsequences: false)
        guard let channel = Int(parts[0]), channel >= 0 else { throw bad("expected LAYER:CHANNEL") }
        if parts.count == 1 { return .channel(layer: layer, channel: channel) }
        guard parts.count == 2 else { throw bad("expected LAYER:C@X,Y") }
        if parts[1] == "centre" || parts[1] == "center" { return .neuron(layer: layer, channel: channel, x: nil, y: nil) }
        let xy = parts[1].split(separator: ",").map { Int($0) }
        guard xy.count == 2, let x = xy[0], let y = xy[1], x >= 0, y >= 0 else { throw bad("expected LAYER:C@X,Y with non-negative X and Y") }
        return .neuron(layer: layer, channel: channel, x: x, y: y)
    }

    /// Throws when a channel, class, neuron position or direction does not exist in the layers
    /// of `shapes` (per layer [C, H, W] or [K], one image, at the run's image size before
    /// transforms; `logits` for classes). Layers not in `shapes` are left to the layer check.
    public func check(shapes: [String: [Int]]) throws {
        func shape(_ l: String) -> [Int]? { shapes[l] }
        switch self {
        case .channel(let l, let ch):
            if let s = shape(l) { try Self.checkChannel(ch, l, s) }
        case .neuron(let l, let ch, let x, let y):
            guard let s = shape(l) else { return }
            try Self.checkChannel(ch, l, s)
            guard s.count == 3 else { throw InterpretError("a neuron objective needs a layer with positions; \(l) is \(s)") }
            if let x, let y, x >= s[2] || y >= s[1] {
                throw InterpretError("neuron position \(x),\(y) is outside \(l), which has \(s[2])x\(s[1]) positions (x 0...\(s[2] - 1), y 0...\(s[1] - 1)) at this image size")
            }
        case .classLogit(let k):
            if let s = shape(Self.logits), k < 0 || k >= s[0] { throw InterpretError("class \(k) is out of range 0...\(s[0] - 1)") }
        case .direction(let l, let v):
            if let s = shape(l), v.count != s[0] {
                throw InterpretError("direction on \(l) has \(v.count) values; the layer has \(s[0]) channels")
            }
        case .sum(let terms):
            for t in terms { try t.objective.check(shapes: shapes) }
        case .layer:
            break
        }
    }

    static func checkChannel(_ ch: Int, _ layer: String, _ shape: [Int]) throws {
        guard ch >= 0, ch < shape[0] else {
            throw InterpretError("\(layer) has \(shape[0]) channels (0...\(shape[0] - 1)); channel \(ch) does not exist")
        }
    }

    /// Adds this objective's weights for one image whose `layer` activation has `shape`
    /// ([C, H, W] or [K]) into `linear` and `quadratic` (same layout), times `scale`.
    func accumulate(layer: String, shape: [Int], scale: Float, linear: inout [Float], quadratic: inout [Float]) throws {
        let c = shape[0], plane = shape.dropFirst().reduce(1, *)
        func checkChannel(_ ch: Int) throws {
            guard ch < c else { throw InterpretError("\(layer) has \(c) channels (0...\(c - 1)); channel \(ch) does not exist") }
        }
        switch self {
        case .channel(let l, let ch) where l == layer:
            try checkChannel(ch)
            for i in 0..<plane { linear[ch * plane + i] += scale / Float(plane) }
        case .neuron(let l, let ch, let x, let y) where l == layer:
            try checkChannel(ch)
            guard shape.count == 3 else { throw InterpretError("a neuron objective needs a layer with positions; \(layer) is \(shape)") }
            let (h, w) = (shape[1], shape[2])
            let (px, py) = (x ?? w / 2, y ?? h / 2)
            // Positions shrink with the transforms' random scale; clamp to the layer.
            linear[ch * plane + Swift.min(py, h - 1) * w + Swift.min(px, w - 1)] += scale
        case .layer(let l) where l == layer:
            for i in 0..<(c * plane) { quadratic[i] += scale / Float(c * plane) }
        case .classLogit(let k) where layer == Self.logits:
            guard k >= 0, k < c else { throw InterpretError("class \(k) is out of range 0...\(c - 1)") }
            linear[k] += scale
        case .direction(let l, let v) where l == layer:
            guard v.count == c else { throw InterpretError("direction on \(layer) has \(v.count) values; the layer has \(c) channels") }
            for ch in 0..<c { for i in 0..<plane { linear[ch * plane + i] += scale * v[ch] / Float(plane) } }
        case .sum(let terms):
            for t in terms { try t.objective.accumulate(layer: layer, shape: shape, scale: scale * t.weight, linear: &linear, quadratic: &quadratic) }
        default:
            break
        }
    }
}

/// A term of a sum of objectives.
public struct WeightedObjective: Sendable, Equatable {
    /// The term's factor.
    public var weight: Float
    /// The term.
    public var objective: Objective
    /// `weight` times `objective`.
    public init(weight: Float, objective: Objective) { self.weight = weight; self.objective = objective }
}

/// A batch of objectives (one per image) compiled against the activations of a pass: the
/// per-layer masks are built once per activation shape and kept on the device.
final class CompiledObjectives {
    let objectives: [Objective]
    private var masks: [String: (linear: Tensor?, quadratic: Tensor?)] = [:]

    init(_ objectives: [Objective]) { self.objectives = objectives }

    /// The objective value of every image, [N], from `g` after a forward pass (`logits` its output).
    func value(_ g: Graph, logits: Graph.Value) throws -> Graph.Value {
        let layers = Array(Set(objectives.flatMap(\.layers))).sorted()
        var total: Graph.Value?
        for layer in layers {
            let a: Graph.Value
            if layer == Objective.logits { a = logits } else {
                guard let tapped = g.tapped(layer) else {
                    throw InterpretError("no layer \(layer); layers: \(g.tapNames.suffix(8).joined(separator: ", ")) ... (`loupe layers`)")
                }
                a = tapped
            }
            let shape = g.shape(a)
            let n = shape[0], per = shape.count / n
            let key = "\(layer) \(shape)"
            if masks[key] == nil {
                var lin = [Float](repeating: 0, count: shape.count), quad = lin
                for (i, o) in objectives.enumerated() {
                    var l = [Float](repeating: 0, count: per), q = l
                    try o.accumulate(layer: layer, shape: Array(shape.dims.dropFirst()), scale: 1, linear: &l, quadratic: &q)
                    lin.replaceSubrange((i * per)..<((i + 1) * per), with: l)
                    quad.replaceSubrange((i * per)..<((i + 1) * per), with: q)
                }
                let b = g.backend
                masks[key] = (lin.contains { $0 != 0 } ? try b.tensor(lin, shape) : nil, quad.contains { $0 != 0 } ? try b.tensor(quad, shape) : nil)
            }
            let (lin, quad) = masks[key]!
            var terms: [Graph.Value] = []
            if let lin { terms.append(try g.reduce(try g.mul(a, g.constant(lin)), .sum, axis: 1)) }
            if let quad { terms.append(try g.reduce(try g.mul(try g.mul(a, a), g.constant(quad)), .sum, axis: 1)) }
            for t in terms { total = try total.map { try g.add($0, t) } ?? t }
        }
        guard let total else { throw InterpretError("the objective reads no layer") }
        return total
    }
}

/// Lucid's diversity term for a batch of N images at one layer [N, C, H, W]: each image's Gram
/// matrix G_n = A_n A_n^T (A_n its activations as C x HW) scaled to unit Frobenius norm, and
/// the sum over pairs n != m of <G_n, G_m>, divided by N. Feature visualization subtracts
/// weight * diversity, pushing the images of a batch apart in style. All on the graph: [1].
public func diversity(_ g: Graph, _ activations: Graph.Value) throws -> Graph.Value {
    let b = g.backend
    let shape = g.shape(activations)
    guard let (n, c, h, w) = shape.nchw else { throw InterpretError("diversity needs a layer with positions; got \(shape)") }
    guard n >= 2 else { throw InterpretError("diversity needs a batch of at least 2 images") }
    let flat = try g.reshape(activations, [1, n * c, h, w])
    let ones = g.constant(try b.tensor([Float](repeating: 1, count: c * c), [c * c, 1]))
    var rows: [Graph.Value] = []
    for i in 0..<n {
        let a = try g.reshape(try g.sliceChannels(flat, from: i * c, count: c), [c, h * w])
        let gram = try g.reshape(try g.linear(a, weight: a, bias: nil), [1, c * c])
        let norm2 = try g.add(try g.reshape(try g.reduce(gram, .sumOfSquares, axis: 1), [1, 1]), g.constant(try b.tensor([1e-10], [1, 1])))
        let inverse = try g.linear(try g.pointwise(norm2, .absPower(-0.5)), weight: ones, bias: nil)  // [1, C*C], all 1 / ||G||
        rows.append(try g.reshape(try g.mul(gram, inverse), [1, c * c, 1, 1]))
    }
    let unit = try g.reshape(try g.concat(rows), [n, c * c])
    let cosines = try g.linear(unit, weight: unit, bias: nil)  // [N, N]
    var offDiagonal = [Float](repeating: 1, count: n * n)
    for i in 0..<n { offDiagonal[i * n + i] = 0 }
    let pairs = try g.mul(cosines, g.constant(try b.tensor(offDiagonal, [n, n])))
    return try g.scale(try g.reduce(try g.reshape(pairs, [1, n * n]), .sum, axis: 1), 1 / Float(n))
}
