import Backend
import Graph
import Models

/// The same model on two backends (the CPU reference and a device), compared layer by layer:
/// what `loupe compare` prints and judges.
public enum BackendComparison {
    /// One compared tensor: a layer's activation, its gradient, the logits or the input gradient.
    public struct Row: Sendable {
        /// What was compared: a layer's name, "logits", "input gradient", or a layer's gradient.
        public let what: String
        /// The tensor's shape.
        public let shape: Shape
        /// max |device - reference|
        public let maxAbs: Float
        /// max |device - reference| / max |reference|
        public let relative: Float
        /// ||device - reference|| / ||reference||
        public let relativeL2: Float
        /// Whether the tensor is a gradient (judged by `relativeL2`) rather than an activation
        /// (judged by `relative`).
        public let isGradient: Bool
        /// Activations are judged by their worst element; gradients by their L2 error, because a
        /// ReLU whose input is within float rounding of 0 (|x| ~ 1e-7) may pass the gradient on
        /// one device and block it on the other, and that one element says nothing about the kernels.
        public var judged: Float { isGradient ? relativeL2 : relative }

        /// `device` against `reference` (same length).
        /// A value that is not finite on either side (NaN, infinity) makes every error NaN: the
        /// worst there is, never a small number from the finite values around it.
        public init(what: String, shape: Shape, reference a: [Float], device b: [Float], isGradient: Bool) {
            (self.what, self.shape, self.isGradient) = (what, shape, isGradient)
            guard a.allSatisfy(\.isFinite), b.allSatisfy(\.isFinite) else {
                (maxAbs, relative, relativeL2) = (.nan, .nan, .nan)
                return
            }
            maxAbs = zip(a, b).map { abs($0 - $1) }.max() ?? 0
            relative = maxAbs / Swift.max(a.map(abs).max() ?? 0, 1e-12)
            relativeL2 = BackendComparison.relativeL2(a, b)
        }
    }

    /// The worst of `errors`: NaN when any is NaN (`max()` would skip it).
    public static func worst(_ errors: [Float]) -> Float {
        errors.contains { $0.isNaN } ? .nan : errors.max() ?? 0
    }

    /// ||b - a|| / max(||a||, floor), in double precision: with `floor` 1, values near 0 (a
    /// barely started optimization's objective) are judged against 1, not against themselves.
    public static func relativeL2(_ a: [Float], _ b: [Float], floor: Double = 1e-30) -> Float {
        let diff = zip(a, b).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
        let norm = a.reduce(0.0) { $0 + Double($1) * Double($1) }
        return Float((diff / Swift.max(norm, floor * floor)).squareRoot())
    }

    /// One forward pass and one backward pass (from the reference's top-1 logit, the same seed
    /// on both) of `reference` and `device` on `input` [shape]; a row for every tapped layer
    /// (or those named in `layers`) and its gradient, then the logits and the input gradient.
    public static func layers(reference: Model, device: Model, input: [Float], shape: Shape, layers: [String]?) throws -> [Row] {
        var passes: [(Graph, Graph.Value, Graph.Value, Gradients)] = []
        var seedValues: [Float] = []
        for model in [reference, device] {
            let b = model.backend
            let g = Graph(backend: b)
            let x = g.input(try b.tensor(input, shape))
            let y = try model.forward(g, x)
            if seedValues.isEmpty {
                let logits = try b.values(g.tensor(y))
                guard let top = logits.indices.max(by: { logits[$0] < logits[$1] }) else { throw InterpretError("the model has no outputs") }
                seedValues = [Float](repeating: 0, count: logits.count)
                seedValues[top] = 1
            }
            passes.append((g, x, y, try g.backward(from: y, seed: try b.tensor(seedValues, g.shape(y)))))
        }
        let (cg, cx, cy, cgrads) = passes[0], (dg, dx, dy, dgrads) = passes[1]
        let names = cg.tapNames
        if let layers { for name in layers { try checkLayerName(name, in: cg.layerNames, model: reference.architecture.name) } }
        func row(_ what: String, _ a: Tensor?, _ b: Tensor?, gradient: Bool) throws -> Row? {
            guard let a, let b else { return nil }
            return Row(what: what, shape: a.shape, reference: try reference.backend.values(a), device: try device.backend.values(b),
                       isGradient: gradient)
        }
        var rows: [Row] = []
        for name in layers ?? names {
            guard let c = cg.tapped(name), let d = dg.tapped(name) else { continue }
            if let r = try row(name, cg.tensor(c), dg.tensor(d), gradient: false) { rows.append(r) }
            if let r = try row(name + " (gradient)", cgrads.tapped(name), dgrads.tapped(name), gradient: true) { rows.append(r) }
        }
        if let r = try row("logits", cg.tensor(cy), dg.tensor(dy), gradient: false) { rows.append(r) }
        if let r = try row("input gradient", cgrads.of(cx), dgrads.of(dx), gradient: true) { rows.append(r) }
        return rows
    }
}
