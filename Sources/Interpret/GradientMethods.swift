import Backend
import Foundation
import Graph
import Models

/// Vanilla gradient (Simonyan et al. 2013): d logit_target / d input. Map: max over channels of |gradient|.
public struct VanillaGradient: AttributionMethod {
    public var name: String { "gradient" }
    /// The vanilla gradient; it has no settings.
    public init() {}
    public func attribute(_ model: Model, input: Tensor, targets: [Int]) throws -> Attribution {
        try gradientAttribution(name, model, input, targets, rule: .standard, timesInput: false)
    }
}

/// Gradient x input (Shrikumar et al.; Captum's InputXGradient).
public struct GradientTimesInput: AttributionMethod {
    public var name: String { "gradient_x_input" }
    /// Gradient x input; it has no settings.
    public init() {}
    public func attribute(_ model: Model, input: Tensor, targets: [Int]) throws -> Attribution {
        try gradientAttribution(name, model, input, targets, rule: .standard, timesInput: true)
    }
}

/// Guided backprop (Springenberg et al. 2014): every ReLU and ReLU6 (of the kinds
/// `activations` names) passes a gradient only where its input was positive and the incoming
/// gradient is positive.
public struct GuidedBackprop: AttributionMethod {
    public var name: String { "guided_backprop" }
    /// The activation kinds the rule applies to; the others pass the true gradient (Captum's
    /// GuidedBackprop hooks `nn.ReLU` only: `[.relu]`).
    public var activations: Set<Activation>
    /// Guided backprop on `activations` (every ReLU and ReLU6 by default).
    public init(activations: Set<Activation> = Set(Activation.allCases)) { self.activations = activations }
    public func attribute(_ model: Model, input: Tensor, targets: [Int]) throws -> Attribution {
        try gradientAttribution(name, model, input, targets, rule: .guided, ruleActivations: activations, timesInput: false)
    }
}

/// Deconvnet (Zeiler & Fergus 2014): every ReLU and ReLU6 (of the kinds `activations` names)
/// passes the positive part of the incoming gradient, whatever its input was.
public struct Deconvnet: AttributionMethod {
    public var name: String { "deconvnet" }
    /// The activation kinds the rule applies to (Captum's Deconvolution: `[.relu]`).
    public var activations: Set<Activation>
    /// Deconvnet on `activations` (every ReLU and ReLU6 by default).
    public init(activations: Set<Activation> = Set(Activation.allCases)) { self.activations = activations }
    public func attribute(_ model: Model, input: Tensor, targets: [Int]) throws -> Attribution {
        try gradientAttribution(name, model, input, targets, rule: .deconvnet, ruleActivations: activations, timesInput: false)
    }
}

func gradientAttribution(_ name: String, _ model: Model, _ input: Tensor, _ targets: [Int], rule: GradientRule,
                         ruleActivations: Set<Activation> = Set(Activation.allCases), timesInput: Bool) throws -> Attribution {
    let (n, h, w) = try checkBatch(input, targets)
    let b = model.backend
    let pass = try targetGradient(model, input, targets, rule: rule, ruleActivations: ruleActivations)
    var raw = try inputGradient(pass)
    if timesInput { raw = try b.mul(raw, input) }
    return Attribution(method: name, count: n, height: h, width: w, map: try b.values(absChannelMax(b, raw)), raw: try b.values(raw))
}

/// SmoothGrad (Smilkov et al. 2017): the mean of |gradient| over noisy copies of the input,
/// noise N(0, sigma^2) with sigma = noiseLevel * (max - min of the image); what Captum's
/// NoiseTunnel(Saliency) computes, and its other two types: SmoothGrad-squared, the mean of
/// gradient^2, and VarGrad (Adebayo et al. 2018), the variance of |gradient| over the copies
/// (mean of squares minus the square of the mean). Samples run `batch` at a time; the noisy
/// copies are drawn on the device (`Backend.noisyCopies`: image i's sample s uses the stream
/// from (i * samples + s) * the image size, so results do not depend on the batch).
public struct SmoothGrad: AttributionMethod {
    /// What is taken over the noisy copies' gradients g: Captum NoiseTunnel's `nt_type`.
    public enum Statistic: String, Sendable, CaseIterable {
        /// mean |g|
        case mean = "smoothgrad"
        /// mean g^2
        case meanOfSquares = "smoothgrad_sq"
        /// mean g^2 - (mean |g|)^2
        case variance = "vargrad"
    }

    public var name: String { statistic.rawValue }
    /// Which of NoiseTunnel's statistics.
    public var statistic: Statistic
    /// Noisy copies per image (Captum: n_samples).
    public var samples: Int
    /// The noise's standard deviation as a fraction of the image's value range (max - min).
    public var noiseLevel: Float
    /// Noisy copies per device pass.
    public var batch: Int
    /// The noise generator's seed: the same seed gives the same map on every backend and batch size.
    public var seed: UInt64
    /// Fixed noise, [samples, 3, H, W] per image (tests); drawn from `seed` when nil.
    public var noise: [[Float]]?

    /// The most samples a run takes (each is a forward and backward pass).
    public static let maxSamples = 100_000

    /// SmoothGrad (or `statistic`): by default 25 samples, noise 0.15 of the value range, 16
    /// copies per pass.
    public init(_ statistic: Statistic = .mean, samples: Int = 25, noiseLevel: Float = 0.15, batch: Int = 16, seed: UInt64 = 0,
                noise: [[Float]]? = nil) {
        self.statistic = statistic
        self.samples = samples; self.noiseLevel = noiseLevel; self.batch = batch; self.seed = seed; self.noise = noise
    }

    public func attribute(_ model: Model, input: Tensor, targets: [Int]) throws -> Attribution {
        let (n, h, w) = try checkBatch(input, targets)
        guard samples >= 1, batch >= 1 else { throw InterpretError("\(name) needs at least one sample and a positive batch") }
        guard samples <= Self.maxSamples else {
            throw InterpretError("\(name) with \(samples) samples: at most \(Self.maxSamples) (each is a forward and backward pass; SmoothGrad's paper uses 50)")
        }
        guard noiseLevel.isFinite, noiseLevel >= 0, noiseLevel <= 10 else {
            throw InterpretError("\(name) noise \(noiseLevel): between 0 and 10 times the image's value range (the paper uses 0.1 to 0.2; more drowns the image)")
        }
        try MemoryBudget.requirePass(model, batch: Swift.min(batch, samples), height: h, width: w, what: "\(name)'s batch of noisy copies")
        let b = model.backend
        let values = try b.values(input)
        let plane = 3 * h * w
        var maps: [Float] = [], raws: [Float] = []
        for i in 0..<n {
            let x = Array(values[(i * plane)..<((i + 1) * plane)])
            let sigma = noiseLevel * ((x.max() ?? 0) - (x.min() ?? 0))
            let image = try b.tensor(x, [1, 3, h, w])
            var total: Tensor?, squares: Tensor?
            var start = 0
            while start < samples {
                let count = Swift.min(batch, samples - start)
                let noisy: Tensor
                if let noise {
                    var v = [Float](repeating: 0, count: count * plane)
                    for k in 0..<count { for j in 0..<plane { v[k * plane + j] = x[j] + noise[i][(start + k) * plane + j] } }
                    noisy = try b.tensor(v, [count, 3, h, w])
                } else {
                    noisy = try b.noisyCopies(image, copies: count, sigma: sigma, seed: seed, offset: UInt64((i * samples + start) * plane))
                }
                let pass = try targetGradient(model, noisy, [Int](repeating: targets[i], count: count))
                let g = try inputGradient(pass)
                if statistic != .meanOfSquares {
                    let absSum = try batchSum(b, try b.add(try b.activation(g, .relu), try b.activation(try b.scale(g, -1), .relu)))
                    total = try total.map { try b.add($0, absSum) } ?? absSum
                }
                if statistic != .mean {
                    let squareSum = try batchSum(b, try b.mul(g, g))
                    squares = try squares.map { try b.add($0, squareSum) } ?? squareSum
                }
                start += count
                Progress.report(name, i * samples + start, n * samples)
            }
            let mean: Tensor
            switch statistic {
            case .mean:
                mean = try b.scale(total!, 1 / Float(samples))
            case .meanOfSquares:
                mean = try b.scale(squares!, 1 / Float(samples))
            case .variance:
                let m = try b.scale(total!, 1 / Float(samples))
                mean = try b.add(try b.scale(squares!, 1 / Float(samples)), try b.scale(try b.mul(m, m), -1))
            }
            raws += try b.values(mean)
            maps += try b.values(b.channelMax(mean))
        }
        return Attribution(method: name, count: n, height: h, width: w, map: maps, raw: raws)
    }
}

/// Integrated Gradients (Sundararajan et al. 2017): (x - x') * integral over a in [0, 1] of the
/// gradient at x' + a (x - x'), by Gauss-Legendre quadrature with `steps` nodes (Captum's
/// default). Interpolated inputs run `batch` at a time, built on the device. Reports the
/// completeness error, sum of attributions - (f(x) - f(x')).
public struct IntegratedGradients: AttributionMethod {
    /// The input x' the integration path starts from.
    public enum Baseline: Sendable {
        /// Zeros in the model's (normalized) input space: Captum's default.
        case zero
        /// A black image (zero pixels, normalized).
        case black
        /// The image blurred with a Gaussian of this sigma, in pixels.
        case blur(sigma: Float)
        /// Normalized images of the input's size: one [3, H, W] for every image, or one per
        /// image of the batch, [N, 3, H, W] (each image integrates from its own).
        case image([Float])
        /// Uniform noise: each pixel value drawn from [0, 1) (SplitMix64 from `seed`, image i's
        /// stream from seed + i), then normalized as the input was.
        case uniform(seed: UInt64)
    }

    public var name: String { "integrated_gradients" }
    /// Quadrature nodes (Gauss-Legendre, as Captum's default).
    public var steps: Int
    /// The input x' the path starts from.
    public var baseline: Baseline
    /// Interpolated inputs per device pass.
    public var batch: Int

    /// Integrated Gradients with `steps` Gauss-Legendre nodes from `baseline`.
    public init(steps: Int = 50, baseline: Baseline = .black, batch: Int = 16) {
        self.steps = steps; self.baseline = baseline; self.batch = batch
    }

    /// The most steps a run takes: Gauss-Legendre nodes cost steps^2 to find, and each step is a
    /// forward and backward pass (Captum's default is 50).
    public static let maxSteps = 10_000

    public func attribute(_ model: Model, input: Tensor, targets: [Int]) throws -> Attribution {
        let (n, h, w) = try checkBatch(input, targets)
        guard steps >= 1, batch >= 1 else { throw InterpretError("integrated gradients needs at least one step and a positive batch") }
        guard steps <= Self.maxSteps else {
            throw InterpretError("integrated gradients with \(steps) steps: at most \(Self.maxSteps) (each is a forward and backward pass; Captum's default is 50)")
        }
        try MemoryBudget.requirePass(model, batch: Swift.min(batch, steps), height: h, width: w, what: "integrated gradients' batch of interpolated images")
        let b = model.backend
        let (nodes, weights) = gaussLegendre(steps)
        let values = try b.values(input)
        let plane = 3 * h * w
        var maps: [Float] = [], raws: [Float] = [], errors: [Float] = []
        for i in 0..<n {
            let xv = Array(values[(i * plane)..<((i + 1) * plane)])
            let base = try baselineValues(xv, h, w, model.architecture.normalization, image: i, of: n)
            let x = try b.tensor(xv, [1, 3, h, w]), x0 = try b.tensor(base, [1, 3, h, w])
            let diff = try b.axpy(-1, x0, x)
            var total: Tensor?
            var start = 0
            while start < steps {
                let count = Swift.min(batch, steps - start)
                let points = try pathPoints(b, from: x0, difference: diff, alphas: nodes[start..<(start + count)], height: h, width: w)
                let pass = try targetGradient(model, points, [Int](repeating: targets[i], count: count), scale: Array(weights[start..<(start + count)]))
                let sum = try batchSum(b, try inputGradient(pass))
                total = try total.map { try b.add($0, sum) } ?? sum
                start += count
                Progress.report("integrated_gradients", i * steps + start, n * steps)
            }
            let attribution = try b.mul(diff, total!)
            let raw = try b.values(attribution)
            // The input and its baseline scored in one pass (two, for a graph fixed at batch 1).
            let scores = (model.architecture.maxBatch ?? 2) >= 2
                ? try targetScores(model, try b.tensor(xv + base, [2, 3, h, w]), [targets[i], targets[i]])
                : try targetScores(model, x, [targets[i]]) + targetScores(model, x0, [targets[i]])
            errors.append(raw.reduce(0, +) - (scores[0] - scores[1]))
            raws += raw
            maps += try b.values(absChannelMax(b, attribution))
        }
        var result = Attribution(method: name, count: n, height: h, width: w, map: maps, raw: raws)
        result.completenessError = errors
        return result
    }

    /// The reference x' of image `i` of `n` (normalized CHW values `x`, H x W), in the input
    /// space `normalization` makes.
    public func baselineValues(_ x: [Float], _ h: Int, _ w: Int, _ normalization: Normalization, image i: Int = 0, of n: Int = 1) throws -> [Float] {
        switch baseline {
        case .zero: return [Float](repeating: 0, count: x.count)
        case .black:
            let (mean, std) = (normalization.mean, normalization.std)
            return (0..<x.count).map { -mean[$0 / (h * w)] / std[$0 / (h * w)] }
        case .blur(let sigma): return gaussianBlur(x, channels: 3, height: h, width: w, sigma: sigma)
        case .uniform(let seed):
            let (mean, std) = (normalization.mean, normalization.std)
            var rng = SplitMix64(seed: seed &+ UInt64(i))
            return (0..<x.count).map { j in
                let pixel = Float(rng.next() >> 40) / Float(1 << 24)
                return (pixel - mean[j / (h * w)]) / std[j / (h * w)]
            }
        case .image(let v):
            if v.count == x.count * n, n > 1 { return Array(v[(i * x.count)..<((i + 1) * x.count)]) }
            guard v.count == x.count else { throw InterpretError("baseline has \(v.count) values; the input needs \(x.count) (one image) or \(x.count * n) (one per image)") }
            return v
        }
    }
}

/// The points x0 + a (x - x0) of a straight path for each a of `alphas`, [alphas, 3, H, W], made
/// on the device from x0 and `difference` = x - x0 (each [1, 3, H, W]).
func pathPoints(_ b: any Backend, from x0: Tensor, difference: Tensor, alphas: ArraySlice<Float>, height h: Int, width w: Int) throws -> Tensor {
    let count = alphas.count
    var masks = [Float](repeating: 0, count: count * h * w)
    for (k, a) in alphas.enumerated() { for j in 0..<(h * w) { masks[k * h * w + j] = a } }
    let ones = try b.tensor([Float](repeating: 1, count: count * h * w), [count, 1, h, w])
    return try b.add(try b.broadcastMul(difference, masks: b.tensor(masks, [count, 1, h, w])), try b.broadcastMul(x0, masks: ones))
}

/// Gauss-Legendre nodes and weights on [0, 1] (Newton's method on the Legendre polynomial).
public func gaussLegendre(_ n: Int) -> (nodes: [Float], weights: [Float]) {
    var nodes = [Float](repeating: 0, count: n), weights = [Float](repeating: 0, count: n)
    for i in 0..<n {
        var x = cos(Double.pi * (Double(i) + 0.75) / (Double(n) + 0.5))
        var derivative = 0.0
        for _ in 0..<100 {
            var p0 = 1.0, p1 = x
            for k in 2...Swift.max(n, 2) where n >= 2 {
                let p2 = ((2 * Double(k) - 1) * x * p1 - (Double(k) - 1) * p0) / Double(k)
                p0 = p1; p1 = p2
            }
            if n == 1 { p0 = 1; p1 = x }
            derivative = Double(n) * (x * p1 - p0) / (x * x - 1)
            let dx = p1 / derivative
            x -= dx
            if abs(dx) < 1e-15 { break }
        }
        nodes[n - 1 - i] = Float((x + 1) / 2)
        weights[n - 1 - i] = Float(1 / ((1 - x * x) * derivative * derivative))
    }
    return (nodes, weights)
}

/// Separable Gaussian blur of each channel (edges clamped).
func gaussianBlur(_ x: [Float], channels: Int, height h: Int, width w: Int, sigma: Float) -> [Float] {
    let radius = Swift.max(1, Int((3 * sigma).rounded(.up)))
    var kernel = (-radius...radius).map { exp(-Float($0 * $0) / (2 * sigma * sigma)) }
    let total = kernel.reduce(0, +)
    kernel = kernel.map { $0 / total }
    var tmp = x, out = x
    for c in 0..<channels {
        let p = c * h * w
        for y in 0..<h { for xx in 0..<w {
            var s: Float = 0
            for (k, weight) in kernel.enumerated() { s += weight * x[p + y * w + Swift.min(Swift.max(xx + k - radius, 0), w - 1)] }
            tmp[p + y * w + xx] = s
        } }
        for y in 0..<h { for xx in 0..<w {
            var s: Float = 0
            for (k, weight) in kernel.enumerated() { s += weight * tmp[p + Swift.min(Swift.max(y + k - radius, 0), h - 1) * w + xx] }
            out[p + y * w + xx] = s
        } }
    }
    return out
}
