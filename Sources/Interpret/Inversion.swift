import Backend
import Foundation
import Graph
import ImageIO
import Models

/// Feature inversion (Mahendran & Vedaldi, "Understanding deep image representations by
/// inverting them", 2015): from noise, find the image x in [0, 1] whose features at `layers`
/// match those of a photo x0, by minimizing
///
///   sum_l ||phi_l(x) - phi_l(x0)||^2 / ||phi_l(x0)||^2  +  alphaWeight * mean |x - 0.5|^alpha
///   + tvWeight * mean ((dx^2 + dy^2) + 1e-8)^(beta/2)
///
/// (the paper's normalization of the data term by the target's energy; regularizers as
/// `Regularizer`, means over pixels). The image comes from an `ImageParameterization`
/// (default: Fourier basis, decorrelated colour, sigmoid), optimized by Adam with a step
/// schedule (the learning rate drops tenfold at 60% and again at 85% of the steps),
/// optionally under random jitter. All on the model's backend; the forward pass stops at the
/// deepest inverted layer.
public struct FeatureInversion: Sendable {
    /// The layers whose features are matched (each term normalized by the target's energy).
    public var layers: [String]
    /// Optimization steps.
    public var steps: Int
    /// Adam's initial learning rate (dropped tenfold at 60% and 85% of the steps).
    public var learningRate: Float
    /// The alpha-norm regularizer's exponent and weight.
    public var alpha: Float, alphaWeight: Float
    /// The total variation regularizer's exponent and weight.
    public var beta: Float, tvWeight: Float
    /// Random translation of up to this many pixels each step (0: none).
    public var jitter: Int
    /// The seed of the initial image and the jitter.
    public var seed: UInt64
    /// Steps between progress reports.
    public var reportEvery: Int
    /// The Fourier basis with decorrelated colour (default: it halves the error a plain pixel
    /// loop reaches in the same steps), or pixels through a sigmoid (the paper's choice).
    public var basis: ImageParameterization.Basis
    /// Whether colours are decorrelated (Fourier basis only).
    public var decorrelate: Bool

    /// An inversion of `layers`; the defaults are 600 steps at learning rate 0.1, alpha 6 and beta 2
    /// with zero weights (set `tvWeight`, e.g. `defaultTVWeight(stride:)`), the Fourier basis.
    public init(layers: [String], steps: Int = 600, learningRate: Float = 0.1, alpha: Float = 6, alphaWeight: Float = 0,
                beta: Float = 2, tvWeight: Float = 0, jitter: Int = 0, seed: UInt64 = 0, reportEvery: Int = 25,
                basis: ImageParameterization.Basis = .fourier, decorrelate: Bool = true) {
        self.basis = basis; self.decorrelate = decorrelate
        self.layers = layers; self.steps = steps; self.learningRate = learningRate; self.alpha = alpha
        self.alphaWeight = alphaWeight; self.beta = beta; self.tvWeight = tvWeight; self.jitter = jitter
        self.seed = seed; self.reportEvery = reportEvery
    }

    /// TV weight for a layer by its stride (input size / layer size), as the paper raises
    /// lambda_TV for deeper layers, whose features pin down less of the image:
    /// 10 (stride / 16)^2, i.e. 0.625 at stride 4, 2.5 at 8, 10 at 16, 40 at 32.
    public static func defaultTVWeight(stride: Int) -> Float {
        let s = Float(Swift.min(Swift.max(stride, 1), 32)) / 16
        return 10 * s * s
    }

    /// A progress report during `run`.
    public struct Progress: Sendable {
        /// Steps done.
        public let step: Int
        /// Relative feature error ||phi(x) - phi0|| / ||phi0|| per layer.
        public let errors: [Float]
        /// Seconds since the run started.
        public let seconds: Double
    }

    /// The reconstructed image with its errors and timing.
    public struct Result: Sendable {
        /// [3, H, W] in [0, 1].
        public let image: [Float]
        /// The image's height and width (the target's).
        public let height: Int, width: Int
        /// Relative feature error per layer, of the final image.
        public let errors: [Float]
        /// Seconds the optimization took.
        public let seconds: Double
        /// The image as 8-bit RGB.
        public var picture: RGBImage { RGBImage(planes: image, width: width, height: height) }
    }

    /// Inverts `target` ([1, 3, H, W], values in [0, 1] before ImageNet normalization).
    public func run(_ model: Model, target: Tensor, progress: (Progress) -> Void = { _ in }) throws -> Result {
        guard let (n, c, h, w) = target.shape.nchw, n == 1, c == 3 else { throw InterpretError("inversion: expected one [1, 3, H, W] image, got \(target.shape)") }
        guard !layers.isEmpty else { throw InterpretError("inversion: no layer") }
        guard steps >= 1 else { throw InterpretError("inversion: steps must be at least 1") }
        try MemoryBudget.requirePass(model, batch: 1, height: h, width: w, what: "feature inversion")
        let b = model.backend
        let (negatives, energies) = try targetFeatures(model, target)
        let param = ImageParameterization(basis, batch: 1, height: h, width: w, decorrelate: decorrelate,
                                          initialScale: basis == .pixel ? 1 : 0.01)
        let constants = try param.constants(on: b)
        var state = try OptimizerState(parameters: try b.tensor(param.initial(seed: seed), param.shape), backend: b,
                                       optimizer: .adam(AdamSettings(learningRate: learningRate)))
        var random = SplitMix64(noiseSeed: seed)
        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        let regularizers = [Regularizer(.alphaNorm(alpha), weight: alphaWeight), Regularizer(.totalVariation(beta), weight: tvWeight)].filter { $0.weight != 0 }

        var watch = DivergenceWatch()
        for step in 0..<steps {
            let fraction = Float(step) / Float(steps)
            let lr = learningRate * (fraction < 0.6 ? 1 : fraction < 0.85 ? 0.1 : 0.01)
            let g = Graph(backend: b)
            g.stopWhenTapped = Set(layers)
            g.keptLayers = Set(layers)
            let p = g.input(state.parameters)
            let image = try param.image(g, p, constants: constants)
            var seen = image
            if jitter > 0 {
                // The photo's features stay put: jitter asks for a match that survives small
                // shifts, a robustness prior, not an alignment.
                let (dx, dy) = (random.index(2 * jitter + 1) - jitter, random.index(2 * jitter + 1) - jitter)
                seen = try g.affineSample(image, [AffineMap(a: 1, b: 0, c: Float(dx), d: 0, e: 1, f: Float(dy))], height: h, width: w, fill: 0.5)
            }
            _ = try model.forward(g, try normalized(g, seen, model))
            var terms: [Graph.Value] = []
            for (i, layer) in layers.enumerated() {
                guard let v = g.tapped(layer) else { throw InterpretError("no layer \(layer)") }
                let diff = try g.add(v, g.constant(negatives[i]))
                terms.append(try g.scale(try g.reduce(diff, .sumOfSquares, axis: 0), 1 / energies[i]))
            }
            var loss = terms[0]
            for t in terms.dropFirst() { loss = try g.add(loss, t) }
            for r in regularizers { loss = try g.add(loss, try g.scale(try r.value(g, image), r.weight)) }
            if step % reportEvery == 0 || step == steps - 1 {
                let errors = try terms.map { try b.values(g.tensor($0))[0] }
                try checkFinite(errors, term: "the feature error", step: step)
                progress(Progress(step: step, errors: errors.map { $0.squareRoot() }, seconds: elapsed()))
            }
            try watch.record(g.tensor(loss), step: step, backend: b, force: step % reportEvery == 0 || step == steps - 1)
            guard let gradient = try g.backward(from: loss).of(p) else { throw InterpretError("the loss does not depend on the image") }
            try state.update(gradient, .adam(AdamSettings(learningRate: learningRate)), learningRate: lr, backend: b)
        }
        let g = Graph(backend: b)
        let image = try b.values(g.tensor(try param.image(g, g.input(state.parameters), constants: constants)))
        try checkFinite(image, term: "the image", step: steps)
        let errors = try relativeErrors(model, image: image, height: h, width: w, negatives: negatives, energies: energies)
        return Result(image: image, height: h, width: w, errors: errors, seconds: elapsed())
    }

    /// ||phi(x) - phi0|| / ||phi0|| per layer for an image [3, H, W] in [0, 1] (e.g. the saved
    /// 8-bit picture, to report what a user gets).
    public func relativeErrors(_ model: Model, image: [Float], height: Int, width: Int, target: Tensor) throws -> [Float] {
        let (negatives, energies) = try targetFeatures(model, target)
        return try relativeErrors(model, image: image, height: height, width: width, negatives: negatives, energies: energies)
    }

    /// The photo's features at each layer, negated (kept on the device), and their energies ||phi0||^2.
    func targetFeatures(_ model: Model, _ target: Tensor) throws -> (negatives: [Tensor], energies: [Float]) {
        let b = model.backend
        let g = Graph(backend: b)
        g.stopWhenTapped = Set(layers)
        g.keptLayers = Set(layers)
        _ = try model.forward(g, try normalized(g, g.input(target), model))
        var negatives: [Tensor] = [], energies: [Float] = []
        for layer in layers {
            guard let v = g.tapped(layer) else {
                try checkLayerName(layer, in: g.layerNames, model: model.architecture.name)
                throw InterpretError("no layer \(layer)")
            }
            let phi = g.tensor(v)
            let energy = try b.values(b.reduce(phi, .sumOfSquares, axis: 0))[0]
            guard energy > 0 else { throw InterpretError("\(layer): the photo's features are all zero; nothing to invert") }
            negatives.append(try b.scale(phi, -1))
            energies.append(energy)
        }
        return (negatives, energies)
    }

    func relativeErrors(_ model: Model, image: [Float], height: Int, width: Int, negatives: [Tensor], energies: [Float]) throws -> [Float] {
        let b = model.backend
        let g = Graph(backend: b)
        g.stopWhenTapped = Set(layers)
        g.keptLayers = Set(layers)
        _ = try model.forward(g, try normalized(g, g.input(try b.tensor(image, [1, 3, height, width])), model))
        return try layers.enumerated().map { i, layer in
            guard let v = g.tapped(layer) else { throw InterpretError("no layer \(layer)") }
            let sq = try b.values(b.reduce(try b.add(g.tensor(v), negatives[i]), .sumOfSquares, axis: 0))[0]
            return (sq / energies[i]).squareRoot()
        }
    }
}
