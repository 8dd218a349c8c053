import Backend
import Foundation
import Graph
import ImageIO
import Models

/// How the image parameters are updated.
public enum Optimizer: Sendable, Equatable {
    /// Adam (Kingma & Ba) with these settings, on the loss (Lucid's default, learning rate 0.05).
    case adam(AdamSettings)
    /// Plain gradient descent on the loss: p -= learningRate * gradient.
    case sgd(learningRate: Float)

    /// "adam" or "sgd".
    public var name: String { if case .adam = self { "adam" } else { "sgd" } }
    /// The step size of either optimizer.
    public var learningRate: Float {
        switch self { case .adam(let s): s.learningRate; case .sgd(let lr): lr }
    }
}

/// Optimizer state on the device: the parameters and, for Adam, the two moments.
struct OptimizerState {
    var parameters: Tensor
    var m: Tensor?, v: Tensor?
    var step = 0

    init(parameters: Tensor, backend: any Backend, optimizer: Optimizer) throws {
        self.parameters = parameters
        if case .adam = optimizer {
            m = try backend.tensor([Float](repeating: 0, count: parameters.shape.count), parameters.shape)
            v = m
        }
    }

    /// One update from dLoss/dParameters, all on the device; `learningRate` overrides the
    /// optimizer's (step schedules).
    mutating func update(_ gradient: Tensor, _ optimizer: Optimizer, learningRate: Float, backend b: any Backend) throws {
        step += 1
        switch optimizer {
        case .adam(var settings):
            settings.learningRate = learningRate
            (parameters, m, v) = try b.adamStep(parameters, gradient: gradient, m: m!, v: v!, settings, step: step)
        case .sgd:
            parameters = try b.axpy(-learningRate, gradient, parameters)
        }
    }
}

/// A NaN or infinity appeared: which step and which term.
func checkFinite(_ values: [Float], term: String, step: Int) throws {
    if let bad = values.first(where: { !$0.isFinite }) {
        throw InterpretError("the optimization diverged at step \(step): \(term) is \(bad); lower --lr or the regularizer weights")
    }
}

/// Watches an optimization's loss for NaN and infinity at every step without a host round trip
/// per step: each step's loss stays on the device, and every `every` steps (and when `force`d,
/// at reports) the ones since the last check are read together, so a divergence stops the run
/// within `every` steps and names the first step whose loss was not finite.
struct DivergenceWatch {
    var every = 8
    private var pending: [(step: Int, loss: Tensor)] = []

    mutating func record(_ loss: Tensor, step: Int, backend: any Backend, force: Bool = false) throws {
        pending.append((step, loss))
        guard force || pending.count >= every else { return }
        let due = pending
        pending.removeAll()
        for (s, t) in due { try checkFinite(try backend.values(t), term: "the loss", step: s) }
    }
}

/// Feature visualization (Olah et al., Distill 2017): images that maximize objectives, by
/// gradient ascent through a parameterization, random transformations, the model and
/// regularizers, all on the model's backend. One image per objective, optimized as one batch.
/// Per step: parameters -> image -> transforms -> ImageNet normalization -> model ->
/// objective - regularizers -> backward -> optimizer update; the only device-to-host copy is
/// the loss every `reportEvery` steps.
public struct FeatureVisualization: Sendable {
    /// One objective per image of the batch.
    public var objectives: [Objective]
    /// Side of the square images, pixels.
    public var size: Int
    /// Optimization steps.
    public var steps: Int
    /// The image's parameters: pixels, or Lucid's Fourier basis (the default).
    public var basis: ImageParameterization.Basis
    /// The Fourier basis's frequency decay exponent (1: Lucid's 1/f scaling).
    public var decay: Float
    /// Whether colours are parameterized in ImageNet's decorrelated colour space (Lucid's
    /// `decorrelate=True`).
    public var decorrelate: Bool
    /// The random transformations applied each step (transformation robustness).
    public var transforms: TransformSet
    /// How the parameters are updated.
    public var optimizer: Optimizer
    /// Penalties subtracted from the objective: L2, total variation, blur, frequency.
    public var regularizers: [Regularizer]
    /// The seed of the initial parameters and of every transformation drawn.
    public var seed: UInt64
    /// Steps between progress reports (each a download of the loss, checked for NaN and infinity).
    public var reportEvery: Int
    /// Subtract `weight` x `diversity` at `layer` from the batch's objective (Lucid's
    /// `objective - 1e2 * diversity(layer)`); needs at least 2 images.
    public var diversity: (layer: String, weight: Float)?
    /// One seed per image (nil: `seed` for the whole batch): each image's initial parameters and
    /// its jitter and rotation then come from its own seed, and only the batch's common scale
    /// from `seed`, so an image is the same whichever batch it is optimized in (an atlas seeds
    /// each channel this way, and any shard of it gives the same picture).
    public var imageSeeds: [UInt64]?

    /// A visualization with Lucid's `render_vis` defaults: 512 steps at 224 px, Fourier basis with
    /// decorrelated colour, the standard transforms, Adam at 0.05, no regularizers.
    public init(objectives: [Objective], size: Int = 224, steps: Int = 512, basis: ImageParameterization.Basis = .fourier,
                decay: Float = 1, decorrelate: Bool = true, transforms: TransformSet = .standard,
                optimizer: Optimizer = .adam(AdamSettings(learningRate: 0.05)), regularizers: [Regularizer] = [],
                seed: UInt64 = 0, reportEvery: Int = 16) {
        self.objectives = objectives; self.size = size; self.steps = steps; self.basis = basis; self.decay = decay
        self.decorrelate = decorrelate; self.transforms = transforms; self.optimizer = optimizer
        self.regularizers = regularizers; self.seed = seed; self.reportEvery = reportEvery
    }

    /// A progress report during `run`.
    public struct Progress: Sendable {
        /// Steps done.
        public let step: Int
        /// Objective of each image (before regularizers).
        public let objectives: [Float]
        /// Seconds since the run started.
        public let seconds: Double
    }

    /// The finished images with their objectives and timing.
    public struct Result: Sendable {
        /// [N, 3, size, size] in [0, 1].
        public let images: [Float]
        /// Images, and their side in pixels.
        public let count: Int, size: Int
        /// The objective of each final image, untransformed.
        public let objectives: [Float]
        /// Seconds the optimization took.
        public let seconds: Double
        /// The share of the images' values that round to 0 or 255 in the 8-bit pictures: near 1,
        /// the optimization ran into the parameterization's limits (a learning rate far too high).
        public var saturatedFraction: Double {
            Double(images.count { $0 < 0.5 / 255 || $0 > 254.5 / 255 }) / Double(Swift.max(images.count, 1))
        }
        /// Image `i` as 8-bit RGB.
        public func image(_ i: Int) -> RGBImage {
            RGBImage(planes: Array(images[(i * 3 * size * size)..<((i + 1) * 3 * size * size)]), width: size, height: size)
        }
    }

    /// The value of each image's objective, [N], on a graph that ran the model (`logits` its output).
    public static func objectiveValues(_ objectives: [Objective], _ g: Graph, logits: Graph.Value) throws -> Graph.Value {
        try CompiledObjectives(objectives).value(g, logits: logits)
    }

    /// The parameterization this run optimizes.
    public var parameterization: ImageParameterization {
        ImageParameterization(basis, batch: objectives.count, height: size, width: size, decay: decay, decorrelate: decorrelate)
    }

    /// Optimizes the images on `model`'s backend, calling `progress` every `reportEvery` steps and
    /// at the end. Throws ``InterpretError`` for no objective, a size below 8, negative steps, an
    /// objective the model cannot evaluate, or a loss that becomes NaN or infinite (naming the step).
    public func run(_ model: Model, progress: (Progress) -> Void = { _ in }) throws -> Result {
        guard !objectives.isEmpty else { throw InterpretError("no objective") }
        guard size >= 8 else { throw InterpretError("image size \(size) is too small (at least 8)") }
        guard steps >= 0 else { throw InterpretError("steps must be non-negative") }
        try MemoryBudget.requirePass(model, batch: objectives.count, height: size, width: size, what: "feature visualization")
        let b = model.backend
        let param = parameterization
        let constants = try param.constants(on: b)
        let compiled = CompiledObjectives(objectives)
        var random = SplitMix64(noiseSeed: seed)
        if let imageSeeds, imageSeeds.count != objectives.count {
            throw InterpretError("\(imageSeeds.count) image seeds for \(objectives.count) objectives")
        }
        var single = param
        single.batch = 1
        let initial = imageSeeds.map { $0.flatMap { single.initial(seed: $0) } } ?? param.initial(seed: seed)
        var own = imageSeeds.map { $0.map { SplitMix64(noiseSeed: $0 &+ 0x9E37_79B9_7F4A_7C15) } } ?? []
        var state = try OptimizerState(parameters: try b.tensor(initial, param.shape), backend: b, optimizer: optimizer)
        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        let n = objectives.count
        // Fused passes keep only the layers the objectives and the diversity term read.
        let kept = Set(objectives.flatMap(\.layers) + (diversity.map { [$0.layer] } ?? []))
        // Without a class objective the forward pass ends at the deepest layer read: the layers
        // after it add nothing to the loss or its gradient (an atlas of early layers is cheap).
        let stop = kept.contains(Objective.logits) ? [] : kept
        var watch = DivergenceWatch()
        for step in 0..<steps {
            let g = Graph(backend: b)
            g.keptLayers = kept
            g.stopWhenTapped = stop
            g.fusesResiduals = true
            let p = g.input(state.parameters)
            let image = try param.image(g, p, constants: constants)
            let (maps, th, tw) = transforms.draw(count: n, height: size, width: size, random: &random, perImage: &own)
            let seen = transforms.isIdentity ? image : try g.affineSample(image, maps, height: th, width: tw, fill: transforms.fill)
            let logits = try model.forward(g, try normalized(g, seen, model))
            let objective = try compiled.value(g, logits: logits)
            var loss = try g.scale(objective, -1)
            var terms: [(String, Graph.Value)] = []
            for r in regularizers where r.weight != 0 {
                let v = try r.value(g, image)
                terms.append((r.name, v))
                loss = try g.add(loss, try g.scale(v, r.weight))
            }
            if let diversity, diversity.weight != 0 {
                guard let a = g.tapped(diversity.layer) else { throw InterpretError("no layer \(diversity.layer) for the diversity term") }
                let v = try Interpret.diversity(g, a)
                terms.append(("diversity", v))
                loss = try g.add(try g.reduce(loss, .sum, axis: 0), try g.scale(v, diversity.weight))
            }
            let report = step % reportEvery == 0 || step == steps - 1
            if report {
                let values = try b.values(g.tensor(objective))
                try checkFinite(values, term: "the objective", step: step)
                for (name, v) in terms { try checkFinite(try b.values(g.tensor(v)), term: "regularizer \(name)", step: step) }
                progress(Progress(step: step, objectives: values, seconds: elapsed()))
            }
            try watch.record(g.tensor(loss), step: step, backend: b, force: report)
            guard let gradient = try g.backward(from: loss).of(p) else { throw InterpretError("the loss does not depend on the image") }
            try state.update(gradient, optimizer, learningRate: optimizer.learningRate, backend: b)
        }
        // The final images and their objectives without transforms.
        let g = Graph(backend: b)
        g.keptLayers = kept
        g.stopWhenTapped = stop
        let image = try param.image(g, g.input(state.parameters), constants: constants)
        let values = try b.values(g.tensor(image))
        try checkFinite(values, term: "the image", step: steps)
        let final = try b.values(g.tensor(try compiled.value(g, logits: try model.forward(g, try normalized(g, image, model)))))
        return Result(images: values, count: n, size: size, objectives: final, seconds: elapsed())
    }
}

/// (x - mean) / std per channel with the model's input normalization, on the graph.
func normalized(_ g: Graph, _ x: Graph.Value, _ model: Model) throws -> Graph.Value {
    let p = model.architecture.normalization
    return try g.channelAffine(x, scale: p.std.map { 1 / $0 }, shift: zip(p.mean, p.std).map { -$0 / $1 })
}
