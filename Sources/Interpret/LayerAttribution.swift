import Backend
import Graph
import Models

extension Model {
    /// This model with its output replaced by the value of `objective` for each image, [N, 1]
    /// (the objective `visualize` parses: a channel or neuron of a layer, a direction, a class, a
    /// weighted sum of them). Every attribution method then explains that value with target
    /// class 0: the gradient of a neuron is Captum's NeuronGradient, Integrated Gradients of it
    /// NeuronIntegratedGradients. The layers the objective reads are kept in fused passes.
    public func targeting(_ objective: Objective) -> Model {
        var architecture = self.architecture
        let inner = architecture.head
        let layers = Set(objective.layers).subtracting([Objective.logits])
        architecture.head = Architecture.Head(layers: layers.union(inner?.layers ?? [])) { g, y in
            let logits = try inner?.apply(g, y) ?? y
            let n = g.shape(logits)[0]
            let value = try CompiledObjectives([Objective](repeating: objective, count: n)).value(g, logits: logits)
            return try g.reshape(value, [n, 1])
        }
        return Model(architecture: architecture, parameters: parameters, backend: backend)
    }

    /// The outputs of one fused forward pass of `input` [N, 3, H, W], on the host (N x K: a
    /// targeted model's objective values, K = 1).
    public func outputValues(_ input: Tensor) throws -> [Float] {
        let g = Graph(backend: backend)
        g.keptLayers = []
        return try backend.values(g.tensor(try forward(g, g.input(input))))
    }
}

/// Captum's layer attributions at `layer` (4-D, or a transformer's tokens on their grid): what
/// each unit of the layer contributes to the target. `Attribution.layerValues` holds them
/// ([C, lh, lw] per image); the map is their sum over channels, resized to the input
/// (bilinear, half-pixel centres), signed.
public struct LayerAttribution: AttributionMethod {
    /// Which of Captum's layer methods.
    public enum Kind: String, Sendable, CaseIterable {
        /// LayerGradientXActivation: the layer's activation times the target's gradient there.
        case gradientXActivation = "layer_gradient_x_activation"
        /// LayerConductance (Dhamdhere et al. 2018): along the straight path from the baseline
        /// to the input, at Gauss-Legendre points a_0 < ... < a_steps, the sum over k of the
        /// gradient at the layer at a_k times the change of the layer's activation from a_k to
        /// a_k+1 (Captum's `_attribute`, steps + 1 passes).
        case conductance = "layer_conductance"
        /// LayerIntegratedGradients: Integrated Gradients in the layer's space, from the
        /// layer's activation for the baseline to the input's, the rest of the network run from
        /// each point (the layer's output replaced, as Captum's forward hook does).
        case integratedGradients = "layer_integrated_gradients"
    }

    public var name: String { kind.rawValue }
    /// Which method.
    public var kind: Kind
    /// The layer, named as `loupe layers` prints it.
    public var layer: String
    /// Conductance and layer IG: Gauss-Legendre points.
    public var steps: Int
    /// Conductance and layer IG: the input the path starts from.
    public var baseline: IntegratedGradients.Baseline
    /// Conductance and layer IG: points per device pass.
    public var batch: Int

    /// Captum's layer method `kind` at `layer`; conductance and layer IG from `baseline` in
    /// `steps` points, `batch` per pass.
    public init(_ kind: Kind, layer: String, steps: Int = 50, baseline: IntegratedGradients.Baseline = .black, batch: Int = 16) {
        self.kind = kind; self.layer = layer; self.steps = steps; self.baseline = baseline; self.batch = batch
    }

    public func attribute(_ model: Model, input: Tensor, targets: [Int]) throws -> Attribution {
        let (n, h, w) = try checkBatch(input, targets)
        if kind != .gradientXActivation {
            guard steps >= 1, batch >= 1 else { throw InterpretError("\(name) needs at least one step and a positive batch") }
            guard steps <= IntegratedGradients.maxSteps else {
                throw InterpretError("\(name) with \(steps) steps: at most \(IntegratedGradients.maxSteps) (each is a forward and backward pass; Captum's default is 50)")
            }
            try MemoryBudget.requirePass(model, batch: Swift.min(batch, steps + 1), height: h, width: w, what: "\(name)'s batch of path points")
        }
        let b = model.backend
        var attributions: [Tensor] = [], errors: [Float] = []
        switch kind {
        case .gradientXActivation:
            let pass = try targetGradient(model, input, targets, keeping: [layer], stoppingAtKept: true)
            let (activations, gradients, _) = try layerTensors(pass.graph, pass.grads, layer: layer, model: model)
            guard let gradients else { throw InterpretError("layer \(layer) does not influence the output") }
            attributions = [try b.mul(gradients, activations)]
        case .conductance, .integratedGradients:
            let values = try b.values(input)
            let plane = 3 * h * w
            for i in 0..<n {
                let x = Array(values[(i * plane)..<((i + 1) * plane)])
                let reference = try IntegratedGradients(baseline: baseline).baselineValues(x, h, w, model.architecture.normalization, image: i, of: n)
                let (attribution, error) = kind == .conductance
                    ? try conductance(model, x, reference, target: targets[i], h, w, image: i, of: n)
                    : try layerIntegratedGradients(model, x, reference, target: targets[i], h, w, image: i, of: n)
                attributions.append(attribution)
                errors.append(error)
            }
        }
        let all = attributions.count == 1 ? attributions[0] : try b.concat(attributions.map { Tensor(shape: [1, $0.shape.count, 1, 1], storage: $0.storage) })
        let first = attributions[0].shape
        let (c, lh, lw) = (first[1], first[2], first[3])
        let grid = Tensor(shape: [n, c, lh, lw], storage: all.storage)
        let ones = try b.tensor([Float](repeating: 1, count: n * c), [n, 1, c])
        let sums = try b.matmul(ones, Tensor(shape: [n, c, lh * lw], storage: grid.storage), transposeA: false, transposeB: false)
        let map = try b.resizeBilinear(Tensor(shape: [n, 1, lh, lw], storage: sums.storage), height: h, width: w)
        var result = Attribution(method: name, count: n, height: h, width: w, map: try b.values(map), raw: nil,
                                 completenessError: kind == .gradientXActivation ? nil : errors)
        result.layerValues = try b.values(grid)
        result.layerShape = [c, lh, lw]
        return result
    }

    /// The input x and its reference x0 (normalized CHW values) in one pass (two for a graph
    /// fixed at batch 1): the layer's activations [1, ...] and the target's scores of each.
    private func endpoints(_ model: Model, _ x: [Float], _ x0: [Float], target: Int, _ h: Int, _ w: Int)
        throws -> (layer: Tensor, reference: Tensor, score: Float, referenceScore: Float) {
        let b = model.backend
        func run(_ values: [Float], _ count: Int) throws -> ([Tensor], [Float]) {
            let g = Graph(backend: b)
            g.keptLayers = [layer]
            let logits = try model.forward(g, g.constant(try b.tensor(values, [count, 3, h, w])))
            try checkLayerName(layer, in: g.layerNames, model: model.architecture.name)
            let a = g.tensor(g.tapped(layer)!)
            let per = a.shape.count / count
            let rows = count == 1 ? [a] : try b.split(Tensor(shape: [1, a.shape.count, 1, 1], storage: a.storage), sizes: [per, per])
            let one = Shape([1] + Array(a.shape.dims.dropFirst()))
            let classes = g.shape(logits)[1]
            guard target >= 0, target < classes else { throw InterpretError("target class \(target) is out of range 0...\(classes - 1)") }
            let scores = try b.values(g.tensor(logits))
            return (rows.map { Tensor(shape: one, storage: $0.storage) }, (0..<count).map { scores[$0 * classes + target] })
        }
        if (model.architecture.maxBatch ?? 2) >= 2 {
            let (a, s) = try run(x + x0, 2)
            return (a[0], a[1], s[0], s[1])
        }
        let (a1, s1) = try run(x, 1), (a0, s0) = try run(x0, 1)
        return (a1[0], a0[0], s1[0], s0[0])
    }

    /// Layer IG of one image: [1, C, lh, lw] and the completeness error.
    private func layerIntegratedGradients(_ model: Model, _ x: [Float], _ x0: [Float], target: Int, _ h: Int, _ w: Int,
                                          image: Int, of n: Int) throws -> (Tensor, Float) {
        let b = model.backend
        let (a1, a0, score, referenceScore) = try endpoints(model, x, x0, target: target, h, w)
        guard a1.shape.rank == 4 || tokenGrid(a1.shape) != nil else {
            throw InterpretError("layer \(layer) has a \(a1.shape.rank)-D output \(a1.shape); layer methods need a 4-D one (or a transformer's tokens [N, s^2, C] or [N, 1 + s^2, C])")
        }
        let size = a1.shape.count
        let flat = { (t: Tensor) in Tensor(shape: [1, size, 1, 1], storage: t.storage) }
        let diff = try b.axpy(-1, flat(a0), flat(a1))
        let (nodes, weights) = gaussLegendre(steps)
        let xt = try b.tensor(x, [1, 3, h, w])
        var total: Tensor?
        var start = 0
        while start < steps {
            let count = Swift.min(batch, steps - start)
            let alphas = try b.tensor(Array(nodes[start..<(start + count)]), [count, 1, 1, 1])
            let ones = try b.tensor([Float](repeating: 1, count: count), [count, 1, 1, 1])
            let points = try b.add(try b.broadcastMul(diff, masks: alphas), try b.broadcastMul(flat(a0), masks: ones))
            let g = Graph(backend: b)
            g.keptLayers = [layer]
            let leaf = g.input(Tensor(shape: Shape([count] + Array(a1.shape.dims.dropFirst())), storage: points.storage))
            g.patches[layer] = { _, _ in leaf }
            let inputs = try b.broadcastMul(xt, masks: b.tensor([Float](repeating: 1, count: count * h * w), [count, 1, h, w]))
            let logits = try model.forward(g, g.constant(inputs))
            let seed = try oneHot(b, targets: [Int](repeating: target, count: count), classes: g.shape(logits)[1], scale: Array(weights[start..<(start + count)]))
            guard let gradient = try g.backward(from: logits, seed: seed).of(leaf) else { throw InterpretError("layer \(layer) does not influence the output") }
            let sum = try batchSum(b, Tensor(shape: [count, size, 1, 1], storage: gradient.storage))
            total = try total.map { try b.add($0, sum) } ?? sum
            start += count
            Progress.report(name, image * steps + start, n * steps)
        }
        let attribution = try b.mul(diff, total!)
        let (grid, _) = try layerGrid(b, Tensor(shape: a1.shape, storage: attribution.storage))
        return (grid, try b.values(attribution).reduce(0, +) - (score - referenceScore))
    }

    /// Conductance of one image: [1, C, lh, lw] and the completeness error.
    private func conductance(_ model: Model, _ x: [Float], _ x0: [Float], target: Int, _ h: Int, _ w: Int,
                             image: Int, of n: Int) throws -> (Tensor, Float) {
        let b = model.backend
        let points = steps + 1
        let nodes = gaussLegendre(points).nodes
        let xt = try b.tensor(x, [1, 3, h, w]), x0t = try b.tensor(x0, [1, 3, h, w])
        let diff = try b.axpy(-1, x0t, xt)
        var total: Tensor?, previous: (a: Tensor, g: Tensor)?
        var start = 0, shape: Shape = []
        while start < points {
            let count = Swift.min(batch, points - start)
            let path = try pathPoints(b, from: x0t, difference: diff, alphas: nodes[start..<(start + count)], height: h, width: w)
            let pass = try targetGradient(model, path, [Int](repeating: target, count: count), keeping: [layer], stoppingAtKept: true)
            let (activations, gradients, gridShape) = try layerTensors(pass.graph, pass.grads, layer: layer, model: model)
            guard let gradients else { throw InterpretError("layer \(layer) does not influence the output") }
            shape = Shape([1] + Array(gridShape.dims.dropFirst()))
            let size = shape.count
            let rows = { (t: Tensor) throws -> [Tensor] in
                count == 1 ? [t] : try b.split(Tensor(shape: [1, count * size, 1, 1], storage: t.storage), sizes: [Int](repeating: size, count: count))
            }
            for (a, g) in zip(try rows(activations), try rows(gradients)) {
                if let previous {
                    let step = try b.mul(previous.g, try b.axpy(-1, previous.a, a))
                    total = try total.map { try b.add($0, step) } ?? step
                }
                previous = (a, g)
            }
            start += count
            Progress.report(name, image * points + start, n * points)
        }
        let attribution = try total ?? b.tensor([Float](repeating: 0, count: shape.count), [1, shape.count, 1, 1])
        let scores = (model.architecture.maxBatch ?? 2) >= 2
            ? try targetScores(model, try b.tensor(x + x0, [2, 3, h, w]), [target, target])
            : try targetScores(model, xt, [target]) + targetScores(model, x0t, [target])
        return (Tensor(shape: shape, storage: attribution.storage), try b.values(attribution).reduce(0, +) - (scores[0] - scores[1]))
    }
}
