import Backend
import Graph
import Models

/// DeepLIFT with the rescale rule (Shrikumar et al. 2017), as Captum's DeepLift computes it:
/// (x - x') times the gradient of the target in which every ReLU (and ReLU6, of the kinds
/// `activations` names) passes (f(x) - f(x')) / (x - x') and every max pool Captum's rule
/// (`Graph.deepLift`). Each image and its reference x' run as the two halves of one pass (its
/// batchnorms folded, its activations apart); the logits of that pass give the completeness
/// error, sum of attributions - (f(x) - f(x')), which the rescale rule keeps near 0 on ReLU
/// networks without max pools.
public struct DeepLift: AttributionMethod {
    public var name: String { "deeplift" }
    /// The reference x' (Integrated Gradients' baselines; Captum's default is zero).
    public var baseline: IntegratedGradients.Baseline
    /// The activation kinds the rescale rule applies to; the others pass their gradient
    /// (Captum's DeepLift rescales `nn.ReLU` only: `[.relu]`).
    public var activations: Set<Activation>
    /// Images per device pass (each pass holds them and their references).
    public var batch: Int
    /// Whether max pools take DeepLIFT's rule (false: their gradient, which is what Captum
    /// 0.9's DeepLift computes, its max-pool rule not reaching the result).
    public var maxPoolRule: Bool

    /// DeepLIFT from `baseline`, rescaling `activations`, with the max-pool rule unless
    /// `maxPoolRule` is false.
    public init(baseline: IntegratedGradients.Baseline = .black, activations: Set<Activation> = Set(Activation.allCases), batch: Int = 16,
                maxPoolRule: Bool = true) {
        self.baseline = baseline; self.activations = activations; self.batch = batch; self.maxPoolRule = maxPoolRule
    }

    public func attribute(_ model: Model, input: Tensor, targets: [Int]) throws -> Attribution {
        let (n, h, w) = try checkBatch(input, targets)
        guard batch >= 1 else { throw InterpretError("deeplift needs a positive batch") }
        if let most = model.architecture.maxBatch, most < 2 {
            throw InterpretError("deeplift runs each image with its reference in one pass of 2 images; this graph is fixed at batch \(most)")
        }
        let step = Swift.min(batch, n, (model.architecture.maxBatch ?? 2 * batch) / 2)
        try MemoryBudget.requirePass(model, batch: 2 * step, height: h, width: w, what: "deeplift's pass of images and references")
        let b = model.backend
        let values = try b.values(input)
        let plane = 3 * h * w
        let references = IntegratedGradients(baseline: baseline)
        var maps: [Float] = [], raws: [Float] = [], errors: [Float] = []
        for start in stride(from: 0, to: n, by: step) {
            let count = Swift.min(step, n - start)
            let xs = Array(values[(start * plane)..<((start + count) * plane)])
            var refs: [Float] = []
            for i in start..<(start + count) {
                refs += try references.baselineValues(Array(values[(i * plane)..<((i + 1) * plane)]), h, w, model.architecture.normalization,
                                                      image: i, of: n)
            }
            let g = Graph(backend: b)
            // Batchnorms folded into their convolutions (linear, so the rule is their gradient);
            // activations kept apart, for the rescale rule compares their inputs.
            g.keptLayers = []
            g.fusesActivations = false
            let x = g.input(try b.tensor(xs + refs, [2 * count, 3, h, w]))
            let logits = try model.forward(g, x)
            let classes = g.shape(logits)[1]
            let chunkTargets = Array(targets[start..<(start + count)])
            let seed = try oneHot(b, targets: chunkTargets, classes: classes)
            let grads = try g.deepLift(from: logits, seed: seed, rescaling: activations, maxPoolRule: maxPoolRule)
            guard let gradient = grads.of(x) else { throw InterpretError("the model's output does not depend on its input") }
            let all = try b.values(gradient)
            let difference = zip(xs, refs).map { $0 - $1 }
            let attribution = zip(difference, all.prefix(count * plane)).map { $0 * $1 }
            let scores = try b.values(g.tensor(logits))
            for k in 0..<count {
                let image = attribution[(k * plane)..<((k + 1) * plane)]
                errors.append(image.reduce(0, +) - (scores[k * classes + chunkTargets[k]] - scores[(count + k) * classes + chunkTargets[k]]))
            }
            raws += attribution
            maps += try b.values(absChannelMax(b, try b.tensor(attribution, [count, 3, h, w])))
            Progress.report(name, start + count, n)
        }
        return Attribution(method: name, count: n, height: h, width: w, map: maps, raw: raws, completenessError: errors)
    }
}
