import Backend
import Foundation
import Graph
import Models

/// The scores of a map that run the model on perturbed copies of its image, beside deletion and
/// insertion (`CausalMetric`): Quantus' FaithfulnessCorrelation, PixelFlipping,
/// RegionPerturbation, MaxSensitivity, AvgSensitivity and ROAD, and Captum's infidelity. Each follows
/// its library's definition with the map (H x W) broadcast over the colour channels, as Quantus
/// does with an attribution of one channel; the copies are built and scored on the device,
/// `batch` at a time. Random draws come from a seed, or are given (the tests give the libraries'
/// own draws).
public enum PerturbationMetric: String, Sendable, CaseIterable {
    /// Pearson correlation between the map's sum over random feature subsets and the logit's
    /// drop when they are set to black (Bhatt et al. 2020). Higher is better.
    case faithfulnessCorrelation = "faithfulness_correlation"
    /// The target's probability as ever more of the most salient pixels are set to black (Bach
    /// et al. 2015), and the curve's area. Lower is better.
    case pixelFlipping = "pixel_flipping"
    /// The target's probability drop as the most salient patches are set to black, one patch a
    /// step (Samek et al. 2015), and the curve's area. Higher is better.
    case regionPerturbation = "region_perturbation"
    /// The largest relative change of the map under uniform noise on the input (Yeh et al. 2019).
    /// Lower is better.
    case maxSensitivity = "max_sensitivity"
    /// The mean relative change of the map under uniform noise on the input. Lower is better.
    case avgSensitivity = "avg_sensitivity"
    /// The mean squared error between the attributions' dot product with a Gaussian perturbation
    /// and the logit's change under it (Yeh et al. 2019, Captum's infidelity). Lower is better.
    case infidelity
    /// The target's probability as ever more of the most salient pixels are imputed from their
    /// neighbours (ROAD, Rong et al. 2022), and the curve's mean. Lower is better.
    case road

    /// Whether a higher value means a better map.
    public var higherIsBetter: Bool { self == .faithfulnessCorrelation || self == .regionPerturbation }

    /// The names, for help texts and errors.
    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// One image's checked shape for the metrics: [1, 3, H, W] and a map of H x W.
private func imageShape(_ image: Tensor, map: Int, _ what: String) throws -> (h: Int, w: Int) {
    guard let (n, c, h, w) = image.shape.nchw, n == 1, c == 3 else { throw InterpretError("\(what): expected one [1, 3, H, W] image, got \(image.shape)") }
    guard map == h * w else { throw InterpretError("\(what): a map of \(map) values for a \(w)x\(h) image") }
    return (h, w)
}

/// The target's score (its softmax probability, or its logit) for each image of `inputs`
/// [k, 3, H, W], in one forward pass without a tape.
func targetScores(_ model: Model, _ inputs: Tensor, target: Int, probability: Bool) throws -> [Float] {
    let b = model.backend
    let g = Graph(backend: b)
    g.keptLayers = []
    g.forwardOnly = true
    let logits = g.tensor(try model.forward(g, g.input(inputs)))
    let values = try b.values(probability ? try b.softmax(logits) : logits)
    let count = inputs.shape[0], classes = values.count / Swift.max(count, 1)
    guard target >= 0, target < classes else { throw InterpretError("target class \(target) is out of range 0...\(classes - 1)") }
    return (0..<count).map { values[$0 * classes + target] }
}

/// Copies of `image` [1, 3, H, W], one per row of `replaced` (k rows of 3 x H x W, 1 where a
/// value is set to `value`, else 0), made on the device.
func replacedCopies(_ b: any Backend, _ image: Tensor, replaced: [Float], value: Float) throws -> Tensor {
    let (_, c, h, w) = image.shape.nchw!
    let k = replaced.count / (c * h * w)
    // The image as one plane of 3H x W rows, so one mask per copy covers every channel.
    let flat = Tensor(shape: [1, 1, c * h, w], storage: image.storage)
    let kept = try b.broadcastMul(flat, masks: try b.tensor(replaced.map { 1 - $0 }, [k, 1, c * h, w]))
    let set = try b.scale(try b.tensor(replaced, [k, 1, c * h, w]), value)
    return Tensor(shape: [k, c, h, w], storage: try b.add(kept, set).storage)
}

/// The given draws (each of `features` values, at least one), or `samples` drawn by `draw` from
/// `seed`'s generator.
private func givenOrDrawn(_ given: [[Float]]?, samples: Int, features: Int, seed: UInt64, what: String,
                          draw: (inout SplitMix64) -> [Float]) throws -> [[Float]] {
    if let given {
        guard !given.isEmpty, given.allSatisfy({ $0.count == features }) else { throw InterpretError("\(what) needs \(features) values") }
        return given
    }
    var rng = SplitMix64(noiseSeed: seed)
    return (0..<samples).map { _ in draw(&rng) }
}

/// Quantus' "black" baseline: the image's smallest value over every channel and pixel.
private func black(_ x: [Float]) -> Float { x.min() ?? 0 }

/// Pearson's correlation of two series (NaN when either is constant, as SciPy's).
func pearsonCorrelation(_ a: [Double], _ b: [Double]) -> Double {
    let n = Double(a.count)
    guard a.count == b.count, a.count > 1 else { return .nan }
    let ma = a.reduce(0, +) / n, mb = b.reduce(0, +) / n
    var sab = 0.0, saa = 0.0, sbb = 0.0
    for (x, y) in zip(a, b) { sab += (x - ma) * (y - mb); saa += (x - ma) * (x - ma); sbb += (y - mb) * (y - mb) }
    guard saa > 0, sbb > 0 else { return .nan }
    return Swift.max(-1, Swift.min(1, sab / (saa * sbb).squareRoot()))
}

/// np.trapz(curve, dx=1): Quantus' area under a curve of unit steps.
private func trapezoid(_ curve: [Float]) -> Float {
    guard curve.count > 1 else { return 0 }
    return curve.reduce(0, +) - curve.first! / 2 - curve.last! / 2
}

/// Quantus' FaithfulnessCorrelation (Bhatt et al. 2020): `runs` times, `subsetSize` random
/// features of the image (of its 3 x H x W values) are set to black (the image's smallest
/// value), and the drop of the target's logit is paired with the map's sum over those features;
/// the score is the Pearson correlation of the pairs (NaN when the map or the drops are constant).
public struct FaithfulnessCorrelation: Sendable {
    /// Random subsets per image (Quantus' nr_runs).
    public var runs: Int
    /// Features per subset (Quantus' subset_size), fewer than the image's 3 x H x W.
    public var subsetSize: Int
    /// Perturbed copies per device pass.
    public var batch: Int
    /// The seed of the subsets.
    public var seed: UInt64
    /// Given subsets instead of drawn ones (feature indices into 3 x H x W, `runs` of them).
    public var subsets: [[Int]]?

    /// A metric; the defaults are Quantus'.
    public init(runs: Int = 100, subsetSize: Int = 224, batch: Int = 16, seed: UInt64 = 0, subsets: [[Int]]? = nil) {
        (self.runs, self.subsetSize, self.batch, self.seed, self.subsets) = (runs, subsetSize, batch, seed, subsets)
    }

    /// The score of `map` (H x W) for `target` on `image` [1, 3, H, W].
    public func evaluate(_ model: Model, image: Tensor, target: Int, map: ArraySlice<Float>) throws -> Float {
        let (h, w) = try imageShape(image, map: map.count, "faithfulness correlation")
        let features = 3 * h * w, plane = h * w
        guard batch >= 1 else { throw InterpretError("faithfulness correlation: batch must be positive") }
        let draws: [[Int]]
        if let subsets {
            guard !subsets.isEmpty, subsets.allSatisfy({ !$0.isEmpty && $0.allSatisfy { (0..<features).contains($0) } }) else {
                throw InterpretError("faithfulness correlation: every given subset needs features in 0..<\(features)")
            }
            draws = subsets
        } else {
            guard runs >= 2 else { throw InterpretError("faithfulness correlation: at least 2 runs are needed for a correlation") }
            guard subsetSize >= 1, subsetSize < features else {
                throw InterpretError("faithfulness correlation: the subset size must be in 1..<\(features) (the image's values), got \(subsetSize)")
            }
            var rng = SplitMix64(noiseSeed: seed)
            var pool = Array(0..<features)
            draws = (0..<runs).map { _ in
                // A partial Fisher-Yates shuffle: the first `subsetSize` of the pool, distinct.
                for i in 0..<subsetSize { pool.swapAt(i, i + rng.index(features - i)) }
                return Array(pool[0..<subsetSize])
            }
        }
        let b = model.backend
        let x = try b.values(image), fill = black(x)
        let original = try targetScores(model, image, target: target, probability: false)[0]
        let values = Array(map)
        var drops: [Double] = [], sums: [Double] = []
        var i = 0
        while i < draws.count {
            let count = Swift.min(batch, draws.count - i)
            var replaced = [Float](repeating: 0, count: count * features)
            for k in 0..<count {
                for f in draws[i + k] { replaced[k * features + f] = 1 }
                sums.append(draws[i + k].reduce(0.0) { $0 + Double(values[$1 % plane]) })
            }
            let scores = try targetScores(model, try replacedCopies(b, image, replaced: replaced, value: fill), target: target, probability: false)
            drops += scores.map { Double(original - $0) }
            i += count
            Progress.report("faithfulness correlation", i, draws.count)
        }
        return Float(pearsonCorrelation(sums, drops))
    }
}

/// Quantus' PixelFlipping (Bach et al. 2015): the most salient pixels (all three channels; ties
/// by pixel index) are set to black, `step` more each time, and the target's softmax probability
/// is recorded after each step (ceil(H*W / step) values, the unperturbed image not among them);
/// the area is np.trapz of the curve with unit steps, as Quantus' `get_auc_score`. Quantus counts
/// its features_in_step in values, 3 x `step` here.
public struct PixelFlipping: Sendable {
    /// Pixels set to black between two evaluations.
    public var step: Int
    /// Perturbed copies per device pass.
    public var batch: Int

    /// A metric of `step` pixels a step.
    public init(step: Int = 224, batch: Int = 16) { (self.step, self.batch) = (step, batch) }

    /// The curve and its area for `map` (H x W) and `target` on `image` [1, 3, H, W].
    public func evaluate(_ model: Model, image: Tensor, target: Int, map: ArraySlice<Float>) throws -> (curve: [Float], auc: Float) {
        let (h, w) = try imageShape(image, map: map.count, "pixel flipping")
        guard step >= 1, batch >= 1 else { throw InterpretError("pixel flipping: step and batch must be positive") }
        let values = Array(map)
        let order = values.indices.sorted { values[$0] != values[$1] ? values[$0] > values[$1] : $0 < $1 }
        let steps = (h * w + step - 1) / step
        let curve = try perturbedCurve(model, image: image, target: target, steps: steps, batch: batch, name: "pixel flipping") { k in
            order.prefix((k + 1) * step)
        }
        return (curve, trapezoid(curve))
    }
}

/// Quantus' RegionPerturbation (Samek et al. 2015) with its defaults (most relevant first, black):
/// the image is cut into `patch` x `patch` regions (a grid padded evenly when the size does not
/// divide, as Quantus pads), regions are ordered by the map's sum over them (ties by region
/// index), and after each of the first `regions` is set to black, the drop of the target's
/// softmax probability from the unperturbed image is recorded; the area is np.trapz of the
/// curve with unit steps (Quantus' `get_auc_score`).
public struct RegionPerturbation: Sendable {
    /// The side of a region, pixels.
    public var patch: Int
    /// Regions perturbed (at most the image's number of regions).
    public var regions: Int
    /// Perturbed copies per device pass.
    public var batch: Int

    /// A metric; the defaults are Quantus'.
    public init(patch: Int = 8, regions: Int = 100, batch: Int = 16) { (self.patch, self.regions, self.batch) = (patch, regions, batch) }

    /// The curve and its area for `map` (H x W) and `target` on `image` [1, 3, H, W].
    public func evaluate(_ model: Model, image: Tensor, target: Int, map: ArraySlice<Float>) throws -> (curve: [Float], auc: Float) {
        let (h, w) = try imageShape(image, map: map.count, "region perturbation")
        guard patch >= 1, patch <= Swift.min(h, w), regions >= 1, batch >= 1 else {
            throw InterpretError("region perturbation: the patch must be in 1...\(Swift.min(h, w)) pixels, regions and batch positive")
        }
        // Quantus pads floor(total / 2) before and the rest after, so the grid starts above and
        // left of the image by `top` and `left`.
        let top = ((patch - h % patch) % patch) / 2, left = ((patch - w % patch) % patch) / 2
        let rows = (h + top + patch - 1) / patch, cols = (w + left + patch - 1) / patch
        let values = Array(map)
        let cells: [[Int]] = (0..<(rows * cols)).map { r in
            let (y0, x0) = ((r / cols) * patch - top, (r % cols) * patch - left)
            return (Swift.max(y0, 0)..<Swift.min(y0 + patch, h)).flatMap { y in (Swift.max(x0, 0)..<Swift.min(x0 + patch, w)).map { y * w + $0 } }
        }
        let sums = cells.map { $0.reduce(0.0) { $0 + Double(values[$1]) } }
        let order = sums.indices.sorted { sums[$0] != sums[$1] ? sums[$0] > sums[$1] : $0 < $1 }
        let steps = Swift.min(regions, cells.count)
        let original = try targetScores(model, image, target: target, probability: true)[0]
        let curve = try perturbedCurve(model, image: image, target: target, steps: steps, batch: batch, name: "region perturbation") { k in
            order.prefix(k + 1).flatMap { cells[$0] }
        }.map { original - $0 }
        return (curve, trapezoid(curve))
    }
}

/// The target's softmax probability on `steps` copies of `image`, copy k with the pixels
/// `pixels(k)` set to black in every channel.
private func perturbedCurve(_ model: Model, image: Tensor, target: Int, steps: Int, batch: Int, name: String,
                            pixels: (Int) -> some Sequence<Int>) throws -> [Float] {
    let (_, _, h, w) = image.shape.nchw!
    let b = model.backend, plane = h * w
    let fill = black(try b.values(image))
    var curve: [Float] = []
    var i = 0
    while i < steps {
        let count = Swift.min(batch, steps - i)
        var replaced = [Float](repeating: 0, count: count * 3 * plane)
        for k in 0..<count {
            for p in pixels(i + k) { for c in 0..<3 { replaced[(k * 3 + c) * plane + p] = 1 } }
        }
        curve += try targetScores(model, try replacedCopies(b, image, replaced: replaced, value: fill), target: target, probability: true)
        i += count
        Progress.report(name, i, steps)
    }
    return curve
}

/// Quantus' MaxSensitivity and AvgSensitivity (Yeh et al. 2019; Captum's sensitivity_max is the
/// first with radius 0.02): the method explains `samples` copies of the image with uniform noise
/// in [-radius, radius] added to every value (the model's normalized input space), and each new
/// map's distance from the map, ||map' - map|| / ||map|| (Frobenius; a zero map divides by 1, as
/// Captum), is taken; the score is their largest or their mean.
public struct Sensitivity: Sendable {
    /// The largest or the mean of the relative changes.
    public enum Kind: String, Sendable { case max, average }
    /// Which score.
    public var kind: Kind
    /// Noisy copies per image (Quantus' nr_samples; its default is 200, Captum's 10).
    public var samples: Int
    /// The noise's bound (Quantus' lower_bound 0.2; Captum's perturb_radius 0.02).
    public var radius: Float
    /// Copies the method explains per call.
    public var batch: Int
    /// The seed of the noise.
    public var seed: UInt64
    /// Given noise instead of drawn (samples of 3 x H x W values).
    public var noise: [[Float]]?

    /// A metric: 10 samples (Captum's count; each costs one run of the method) of Quantus' noise.
    public init(_ kind: Kind, samples: Int = 10, radius: Float = 0.2, batch: Int = 16, seed: UInt64 = 0, noise: [[Float]]? = nil) {
        (self.kind, self.samples, self.radius, self.batch, self.seed, self.noise) = (kind, samples, radius, batch, seed, noise)
    }

    /// The score of `method`'s `map` (H x W) for `target` on `image` [1, 3, H, W].
    public func evaluate(_ model: Model, image: Tensor, target: Int, method: any AttributionMethod, map: ArraySlice<Float>) throws -> Float {
        let (h, w) = try imageShape(image, map: map.count, "sensitivity")
        let features = 3 * h * w
        guard batch >= 1 else { throw InterpretError("sensitivity: batch must be positive") }
        guard noise != nil || (samples >= 1 && radius > 0 && radius.isFinite) else { throw InterpretError("sensitivity: samples and the radius must be positive") }
        let draws = try givenOrDrawn(noise, samples: samples, features: features, seed: seed, what: "sensitivity: each given noise") { rng in
            (0..<features).map { _ in Float(rng.uniform() * 2 - 1) * radius }
        }
        let b = model.backend
        let x = try b.values(image), original = Array(map)
        let norm = original.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        var changes: [Double] = []
        var i = 0
        while i < draws.count {
            let count = Swift.min(batch, draws.count - i)
            var copies = [Float](repeating: 0, count: count * features)
            for k in 0..<count { for j in 0..<features { copies[k * features + j] = x[j] + draws[i + k][j] } }
            let result = try Progress.muting {
                try method.attribute(model, input: try b.tensor(copies, [count, 3, h, w]), targets: Array(repeating: target, count: count))
            }
            for k in 0..<count {
                let distance = zip(result.map(k), original).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
                changes.append(distance / (norm == 0 ? 1 : norm))
            }
            i += count
            Progress.report(kind == .max ? "max sensitivity" : "avg sensitivity", i, draws.count)
        }
        return Float(kind == .max ? changes.max()! : changes.reduce(0, +) / Double(changes.count))
    }
}

/// Captum's infidelity (Yeh et al. 2019): for `samples` Gaussian perturbations I (standard
/// deviation `stdev` in the normalized input space), the squared difference between the
/// attributions' dot product with I and the drop of the target's logit from x to x - I, averaged;
/// with `normalize` (Captum's normalize=True) the attributions are first scaled by the factor
/// that minimizes it, so maps of any scale compare. Attributions are the method's signed ones
/// (3 x H x W) where it has them, else its map broadcast over the channels.
public struct Infidelity: Sendable {
    /// Perturbations per image (Captum's n_perturb_samples).
    public var samples: Int
    /// The perturbations' standard deviation.
    public var stdev: Float
    /// Scale the attributions by the best factor first.
    public var normalize: Bool
    /// Perturbed copies per device pass.
    public var batch: Int
    /// The seed of the perturbations.
    public var seed: UInt64
    /// Given perturbations instead of drawn (samples of 3 x H x W values).
    public var perturbations: [[Float]]?

    /// A metric of `samples` perturbations of `stdev`, normalized.
    public init(samples: Int = 10, stdev: Float = 0.1, normalize: Bool = true, batch: Int = 16, seed: UInt64 = 0, perturbations: [[Float]]? = nil) {
        (self.samples, self.stdev, self.normalize, self.batch, self.seed, self.perturbations) = (samples, stdev, normalize, batch, seed, perturbations)
    }

    /// The infidelity of `attributions` (3 x H x W, or H x W broadcast) for `target` on `image` [1, 3, H, W].
    public func evaluate(_ model: Model, image: Tensor, target: Int, attributions: ArraySlice<Float>) throws -> Float {
        guard let (n, c, h, w) = image.shape.nchw, n == 1, c == 3 else { throw InterpretError("infidelity: expected one [1, 3, H, W] image, got \(image.shape)") }
        let features = 3 * h * w, plane = h * w
        guard attributions.count == features || attributions.count == plane else {
            throw InterpretError("infidelity: \(attributions.count) attributions for a \(w)x\(h) image (expected 3 x H x W or H x W)")
        }
        guard batch >= 1 else { throw InterpretError("infidelity: batch must be positive") }
        guard perturbations != nil || (samples >= 1 && stdev > 0 && stdev.isFinite) else {
            throw InterpretError("infidelity: samples and the standard deviation must be positive")
        }
        let draws = try givenOrDrawn(perturbations, samples: samples, features: features, seed: seed, what: "infidelity: each given perturbation") { rng in
            rng.normal(features, sigma: stdev)
        }
        let a = Array(attributions), broadcast = attributions.count == plane
        let b = model.backend
        let x = try b.values(image)
        let original = try targetScores(model, image, target: target, probability: false)[0]
        // Captum's sums: (a.I)^2, (a.I) * drop, drop^2.
        var aa = 0.0, ad = 0.0, dd = 0.0, squared = 0.0
        var i = 0
        while i < draws.count {
            let count = Swift.min(batch, draws.count - i)
            var copies = [Float](repeating: 0, count: count * features)
            for k in 0..<count { for j in 0..<features { copies[k * features + j] = x[j] - draws[i + k][j] } }
            let scores = try targetScores(model, try b.tensor(copies, [count, 3, h, w]), target: target, probability: false)
            for k in 0..<count {
                var dot = 0.0
                for j in 0..<features { dot += Double(a[broadcast ? j % plane : j]) * Double(draws[i + k][j]) }
                let drop = Double(original - scores[k])
                aa += dot * dot; ad += dot * drop; dd += drop * drop; squared += (dot - drop) * (dot - drop)
            }
            i += count
            Progress.report("infidelity", i, draws.count)
        }
        let total: Double
        if normalize {
            let beta = aa == 0 ? 0 : ad / aa
            total = beta * beta * aa - 2 * beta * ad + dd
        } else {
            total = squared
        }
        return Float(total / Double(draws.count))
    }
}

extension PerturbationMetric {
    /// The settings of every metric, as `saliency --perturbation-metrics` takes them.
    public struct Settings: Sendable {
        /// Images per device pass (and per call of the method, for the sensitivities).
        public var batch = 16
        /// Pixel flipping's pixels a step.
        public var step = 224
        /// Faithfulness correlation's subsets and their size.
        public var runs = 100, subsetSize = 224
        /// Region perturbation's patch side and regions.
        public var patch = 8, regions = 100
        /// The sensitivities' and infidelity's samples.
        public var samples = 10
        /// The sensitivities' noise bound.
        public var radius: Float = 0.2
        /// Infidelity's perturbation standard deviation, and whether it first scales the
        /// attributions by their best factor (Captum's normalize).
        public var stdev: Float = 0.1, normalize = true
        /// ROAD's percentages of pixels removed and its imputation noise (Quantus': 1, 3, ..., 99
        /// and 0.01).
        public var percentages: [Double] = Array(stride(from: 1.0, through: 99, by: 2)), imputationNoise: Float = 0.01
        /// The seed of every draw.
        public var seed: UInt64 = 0
        /// Given draws instead of the seed's (the Python package passes a library's own): the
        /// correlation's subsets, the sensitivities' noise, infidelity's perturbations.
        public var subsets: [[Int]]?, noise: [[Float]]?, perturbations: [[Float]]?
        /// The defaults.
        public init() {}
    }

    /// One score: its value and, for pixel flipping, region perturbation and ROAD, its curve.
    public struct Score: Sendable {
        /// The score (the curve's area for pixel flipping and region perturbation, its mean for ROAD; NaN where the score is undefined, such
        /// as a correlation with a constant map).
        public let value: Float
        /// The curve, when the metric has one.
        public let curve: [Float]?
    }

    /// Whether the metric runs the method again (on noisy copies).
    public var needsMethod: Bool { self == .maxSensitivity || self == .avgSensitivity }

    /// The metric's score of one image's map (H x W) and signed attributions (3 x H x W, for
    /// infidelity; nil: the map) for `target` on `image` [1, 3, H, W]; `method` is the one that
    /// made the map (the sensitivities run it again).
    public func evaluate(_ model: Model, image: Tensor, target: Int, map: ArraySlice<Float>, raw: ArraySlice<Float>?,
                         method: (any AttributionMethod)?, settings s: Settings) throws -> Score {
        switch self {
        case .faithfulnessCorrelation:
            let v = try FaithfulnessCorrelation(runs: s.runs, subsetSize: s.subsetSize, batch: s.batch, seed: s.seed, subsets: s.subsets)
                .evaluate(model, image: image, target: target, map: map)
            return Score(value: v, curve: nil)
        case .pixelFlipping:
            let r = try PixelFlipping(step: s.step, batch: s.batch).evaluate(model, image: image, target: target, map: map)
            return Score(value: r.auc, curve: r.curve)
        case .regionPerturbation:
            let r = try RegionPerturbation(patch: s.patch, regions: s.regions, batch: s.batch).evaluate(model, image: image, target: target, map: map)
            return Score(value: r.auc, curve: r.curve)
        case .maxSensitivity, .avgSensitivity:
            guard let method else { throw InterpretError("\(rawValue) runs the method again: name the method") }
            let v = try Sensitivity(self == .maxSensitivity ? .max : .average, samples: s.samples, radius: s.radius, batch: s.batch, seed: s.seed, noise: s.noise)
                .evaluate(model, image: image, target: target, method: method, map: map)
            return Score(value: v, curve: nil)
        case .infidelity:
            let v = try Infidelity(samples: s.samples, stdev: s.stdev, normalize: s.normalize, batch: s.batch, seed: s.seed, perturbations: s.perturbations)
                .evaluate(model, image: image, target: target, attributions: raw ?? map)
            return Score(value: v, curve: nil)
        case .road:
            let r = try RemoveAndDebias(percentages: s.percentages, noise: s.imputationNoise, batch: s.batch, seed: s.seed)
                .evaluate(model, image: image, target: target, map: map)
            return Score(value: r.mean, curve: r.curve)
        }
    }

    /// The metrics of a comma-separated list ("all": every one).
    public static func parse(_ text: String) throws -> [PerturbationMetric] {
        if text == "all" { return allCases }
        var seen: [PerturbationMetric] = []
        for name in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard let m = PerturbationMetric(rawValue: name) else { throw InterpretError("unknown perturbation metric \(name): expected \(names) or all") }
            if !seen.contains(m) { seen.append(m) }
        }
        guard !seen.isEmpty else { throw InterpretError("no perturbation metric named: expected \(names) or all") }
        return seen
    }
}
