import Backend
import Foundation
import Models

/// Model randomization (Adebayo et al. 2018, "Sanity checks for saliency maps"): the weights are
/// re-drawn unit by unit, and each method's map on every stage is compared with its map on the
/// trained model. A method whose maps survive the randomization of the layers they claim to
/// explain fails the check.
///
/// A unit is a block or a layer (`Granularity`); an imported graph's parameter named by its
/// exporter (`onnx::Conv_251`) belongs to the layer that reads it, at either granularity. Stages follow `order`: from the classifier down
/// (cascading, the paper's and Quantus' MPRT), from the stem up (cascading, Quantus' smooth and
/// efficient MPRT), or one unit at a time on the trained model (`independent`). Re-drawn weights
/// come from `SeededWeights` with `seed`: He-uniform for conv and linear weights, so activations
/// keep their scale, as the paper's re-initialization does. (Quantus calls torch's
/// `reset_parameters`, which draws from torch's generator and resets batch norm to the identity.)
/// A unit's draw depends only on its parameters' names and the seed, so a cascade through every
/// unit ends at the same model in either order.
public struct ModelRandomization: Sendable {
    /// What one stage re-draws.
    public enum Granularity: String, Sendable, CaseIterable {
        /// A parameter name up to its first numeric component (`features.18`, `layer4.1`,
        /// `classifier.1`), else its first component (`fc`, `conv1`, `inception5b`).
        case block
        /// A module with parameters, as Quantus' layers: the parameter name less its last
        /// component (`layer4.1.conv2`, `layer4.1.bn2`, `fc`).
        case layer
    }
    /// The order of the stages, as Quantus' `layer_order`.
    public enum Order: String, Sendable, CaseIterable {
        /// Cascading from the output: each stage adds the next unit down.
        case topDown = "top_down"
        /// Cascading from the input: each stage adds the next unit up.
        case bottomUp = "bottom_up"
        /// One unit per stage, the others trained, in the architecture's order.
        case independent
    }
    /// The seed of the re-drawn weights.
    public var seed: UInt64
    /// What one stage re-draws.
    public var granularity: Granularity
    /// The order of the stages.
    public var order: Order
    /// A randomization seeded with `seed`, by `granularity`, in `order`.
    public init(seed: UInt64 = 1, granularity: Granularity = .block, order: Order = .topDown) {
        (self.seed, self.granularity, self.order) = (seed, granularity, order)
    }

    /// The blocks of `architecture`, top first.
    public static func blocks(of architecture: Architecture) -> [String] { units(of: architecture, .block).reversed() }

    /// The units of `architecture` by `granularity`, in the order the architecture defines them.
    public static func units(of architecture: Architecture, _ granularity: Granularity) -> [String] {
        var order: [String] = [], seen: Set<String> = []
        for spec in architecture.parameters {
            let unit = unitName(spec.name, granularity, architecture)
            if seen.insert(unit).inserted { order.append(unit) }
        }
        return order
    }

    /// The units of `architecture` in the order of the stages.
    public func stages(of architecture: Architecture) -> [String] {
        let units = Self.units(of: architecture, granularity)
        return order == .topDown ? units.reversed() : units
    }

    /// The unit of `parameter`. A parameter of an imported graph whose name carries no module
    /// (`onnx::Conv_251`, an exporter's folded constant) belongs to the layer that reads it.
    static func unitName(_ parameter: String, _ granularity: Granularity, _ architecture: Architecture) -> String {
        if parameter.contains("::") || !parameter.contains("."), let layer = architecture.parameterLayers[parameter] { return layer }
        let parts = parameter.split(separator: ".").map(String.init)
        switch granularity {
        case .block:
            if let i = parts.firstIndex(where: { Int($0) != nil }) { return parts[...i].joined(separator: ".") }
            return parts[0]
        case .layer:
            return parts.count > 1 ? parts.dropLast().joined(separator: ".") : parts[0]
        }
    }

    /// `model` with the parameters of `units` re-drawn; the other parameters are shared.
    public func randomizing(_ units: some Sequence<String>, of model: Model) throws -> Model {
        let chosen = Set(units)
        var tensors = model.parameters.tensors
        for spec in model.architecture.parameters where chosen.contains(Self.unitName(spec.name, granularity, model.architecture)) {
            tensors[spec.name] = try model.backend.tensor(SeededWeights.values(for: spec, seed: seed), spec.shape)
        }
        return Model(architecture: model.architecture, parameters: ParameterStore(tensors), backend: model.backend)
    }
}

/// The randomization tests by name: the paper's cascade and Quantus' three MPRTs, each a
/// randomization, a smoothing and whether only the fully random model is scored.
public enum RandomizationTest: String, Sendable, CaseIterable {
    /// Adebayo et al.'s cascade: blocks from the top down, Spearman and SSIM at each.
    case cascade
    /// Quantus' MPRT: layers from the top down.
    case mprt
    /// Quantus' SmoothMPRT: layers from the bottom up, each map the mean over noisy copies.
    case smoothMPRT = "smooth_mprt"
    /// Quantus' EfficientMPRT: the maps' entropy rise once every layer is random.
    case efficientMPRT = "efficient_mprt"

    /// The test's units and order (Quantus' defaults), with `seed`.
    public func randomization(seed: UInt64) -> ModelRandomization {
        switch self {
        case .cascade: ModelRandomization(seed: seed, granularity: .block, order: .topDown)
        case .mprt: ModelRandomization(seed: seed, granularity: .layer, order: .topDown)
        case .smoothMPRT, .efficientMPRT: ModelRandomization(seed: seed, granularity: .layer, order: .bottomUp)
        }
    }
    /// Whether the maps are smoothed (smooth MPRT).
    public var smooths: Bool { self == .smoothMPRT }
    /// Whether only the model with every unit random is scored (efficient MPRT).
    public var finalOnly: Bool { self == .efficientMPRT }
}

/// The discrete entropy of `values` (natural logarithm) over `bins` equal bins between their
/// smallest and largest value, as Quantus' `discrete_entropy` (`numpy.histogram`, then
/// `scipy.stats.entropy`): bin edges rounded to Float, each bin holding edge <= v < next edge,
/// the last one closed. Constant values fill one bin: 0.
public func discreteEntropy(_ values: some Collection<Float>, bins: Int = 100) -> Float {
    guard let lo = values.min(), let hi = values.max(), bins > 0, hi > lo else { return 0 }
    let (first, last) = (Double(lo), Double(hi))
    let step = (last - first) / Double(bins)
    var edges = (0...bins).map { Float(first + Double($0) * step) }
    edges[bins] = hi
    let scale = Double(bins) / (last - first)
    var counts = [Int](repeating: 0, count: bins)
    for v in values {
        var i = Swift.min(Int((Double(v) - first) * scale), bins - 1)
        while i > 0 && v < edges[i] { i -= 1 }
        while i < bins - 1 && v >= edges[i + 1] { i += 1 }
        counts[i] += 1
    }
    let n = Double(values.count)
    return Float(counts.reduce(0.0) { $1 == 0 ? $0 : $0 - Double($1) / n * log(Double($1) / n) })
}

/// Spearman's rank correlation of two equally long samples: Pearson's correlation of their
/// ranks, ties given their average rank (scipy.stats.spearmanr). NaN when either is constant.
public func spearmanCorrelation(_ a: some Collection<Float>, _ b: some Collection<Float>) -> Float {
    precondition(a.count == b.count, "spearmanCorrelation: samples of different lengths")
    func ranks(_ v: [Float]) -> [Double] {
        let order = v.indices.sorted { v[$0] < v[$1] }
        var r = [Double](repeating: 0, count: v.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && v[order[j + 1]] == v[order[i]] { j += 1 }
            for k in i...j { r[order[k]] = Double(i + j) / 2 + 1 }
            i = j + 1
        }
        return r
    }
    let (x, y) = (ranks(Array(a)), ranks(Array(b)))
    let n = Double(x.count)
    let (mx, my) = (x.reduce(0, +) / n, y.reduce(0, +) / n)
    var sxy = 0.0, sxx = 0.0, syy = 0.0
    for i in x.indices {
        sxy += (x[i] - mx) * (y[i] - my); sxx += (x[i] - mx) * (x[i] - mx); syy += (y[i] - my) * (y[i] - my)
    }
    guard sxx > 0, syy > 0 else { return .nan }
    return Float(sxy / (sxx * syy).squareRoot())
}

/// Mean structural similarity (Wang et al. 2004) of two H x W maps after min-max normalizing
/// each to [0, 1]: Gaussian window sigma 1.5 (11 taps), K1 0.01, K2 0.03, data range 1,
/// population covariances, averaged over the pixels whose window lies inside the image. This is
/// skimage's `structural_similarity(a, b, data_range=1, gaussian_weights=True, sigma=1.5,
/// use_sample_covariance=False)` on the normalized maps. Maps must be at least 11 x 11.
public func structuralSimilarity(_ a: some Collection<Float>, _ b: some Collection<Float>, width: Int, height: Int) throws -> Float {
    guard a.count == width * height, b.count == width * height else { throw InterpretError("SSIM: maps of \(a.count) and \(b.count) values for \(width)x\(height)") }
    guard width >= 11, height >= 11 else { throw InterpretError("SSIM: a \(width)x\(height) map is smaller than the 11x11 window") }
    func normalized(_ v: some Collection<Float>) -> [Double] {
        let lo = Double(v.min()!), hi = Double(v.max()!)
        return v.map { hi > lo ? (Double($0) - lo) / (hi - lo) : 0 }
    }
    let x = normalized(a), y = normalized(b)
    let radius = 5, sigma = 1.5
    var kernel = (-radius...radius).map { exp(-0.5 * Double($0 * $0) / (sigma * sigma)) }
    let total = kernel.reduce(0, +)
    kernel = kernel.map { $0 / total }
    // Separable Gaussian of v, valid only where the window is inside (all we average over).
    func filtered(_ v: [Double]) -> [Double] {
        var rows = [Double](repeating: 0, count: v.count), out = [Double](repeating: 0, count: v.count)
        for r in 0..<height { for c in radius..<(width - radius) {
            var s = 0.0
            for k in -radius...radius { s += kernel[k + radius] * v[r * width + c + k] }
            rows[r * width + c] = s
        } }
        for r in radius..<(height - radius) { for c in radius..<(width - radius) {
            var s = 0.0
            for k in -radius...radius { s += kernel[k + radius] * rows[(r + k) * width + c] }
            out[r * width + c] = s
        } }
        return out
    }
    let ux = filtered(x), uy = filtered(y)
    let uxx = filtered(x.map { $0 * $0 }), uyy = filtered(y.map { $0 * $0 }), uxy = filtered(zip(x, y).map { $0 * $1 })
    let c1 = 0.01 * 0.01, c2 = 0.03 * 0.03
    var sum = 0.0
    for r in radius..<(height - radius) { for c in radius..<(width - radius) {
        let i = r * width + c
        let vx = uxx[i] - ux[i] * ux[i], vy = uyy[i] - uy[i] * uy[i], vxy = uxy[i] - ux[i] * uy[i]
        sum += (2 * ux[i] * uy[i] + c1) * (2 * vxy + c2) / ((ux[i] * ux[i] + uy[i] * uy[i] + c1) * (vx + vy + c2))
    } }
    return Float(sum / Double((width - 2 * radius) * (height - 2 * radius)))
}

/// SmoothMPRT's denoising (Hedström et al. 2023, "Sanity checks revisited"): each map is the
/// mean of the method's maps on `samples` noisy copies of the image, Gaussian noise of standard
/// deviation `magnitude` x (the image's largest - smallest value), the last copy noise-free.
public struct MapSmoothing: Sendable {
    /// Copies per map (Quantus' `nr_samples`, 50 by default).
    public var samples: Int
    /// The noise's standard deviation relative to the image's range (`noise_magnitude`, 0.1).
    public var magnitude: Float
    /// Copies per method call.
    public var batch: Int
    /// The seed of the drawn noise.
    public var seed: UInt64
    /// Given standard-normal draws: per map (the trained model's first, then one per stage),
    /// `samples - 1` arrays of 3 x H x W; nil draws them from `seed`.
    public var noise: [[[Float]]]?
    /// `samples` copies per map at `magnitude`, `batch` per call.
    public init(samples: Int = 50, magnitude: Float = 0.1, batch: Int = 8, seed: UInt64 = 1, noise: [[[Float]]]? = nil) {
        (self.samples, self.magnitude, self.batch, self.seed, self.noise) = (samples, magnitude, batch, seed, noise)
    }
}

/// The randomization run: each method's map of one image on the trained model and after each
/// stage of randomization, with Spearman and SSIM against the trained model's map and each
/// map's discrete entropy. With block units from the top down this is the paper's cascade;
/// with layer units it is Quantus' MPRT (top down), smooth MPRT (`smoothing`, bottom up) and
/// efficient MPRT (bottom up, `finalOnly`: the relative rise of the entropy once every layer is
/// random).
public struct SanityCheck: Sendable {
    /// One stage of the randomization.
    public struct Stage: Sendable {
        /// "original", then the unit randomized last (cascading: all units before it are random too).
        public let name: String
        /// Per method: the map (H x W).
        public let maps: [[Float]]
        /// Per method: Spearman rank correlation of the map with the original's.
        public let spearman: [Float]
        /// Per method: SSIM of the map with the original's.
        public let ssim: [Float]
        /// Per method: the map's discrete entropy over 100 bins (`discreteEntropy`).
        public let entropy: [Float]
    }
    /// The methods' names, in the order of each stage's arrays.
    public let methods: [String]
    /// "original" first, then one stage per randomized unit in the randomization's order.
    public let stages: [Stage]

    /// Per method: the mean Spearman correlation over the randomized stages (NaN stages left out;
    /// NaN when all are).
    public var meanSpearman: [Float] {
        methods.indices.map { m in
            let v = stages.dropFirst().map { $0.spearman[m] }.filter { !$0.isNaN }
            return v.isEmpty ? .nan : v.reduce(0, +) / Float(v.count)
        }
    }
    /// Per method: the relative rise of the map's discrete entropy from the trained model to the
    /// last stage, (H_last - H_original) / H_original: Quantus' EfficientMPRT when the last stage
    /// has every unit random (NaN when the original map is constant).
    public var entropyRise: [Float] {
        guard let first = stages.first, let last = stages.last else { return [] }
        return zip(first.entropy, last.entropy).map { a, b in a == 0 ? .nan : (b - a) / a }
    }

    /// Runs `methods` on `image` ([1, 3, H, W]) for `target` on `model` and on the first
    /// `stageCount` stages of `randomization` (nil: every unit). `finalOnly` computes the maps of
    /// the last of those stages alone (cascading: the model with all of them random).
    public init(model: Model, image: Tensor, target: Int, methods: [any AttributionMethod],
                randomization: ModelRandomization, stageCount: Int? = nil, smoothing: MapSmoothing? = nil,
                finalOnly: Bool = false, progress: (String) -> Void = { _ in }) throws {
        guard let (n, c, h, w) = image.shape.nchw, n == 1 else { throw InterpretError("sanity check: expected one [1, 3, H, W] image, got \(image.shape)") }
        let units = randomization.stages(of: model.architecture)
        let count = Swift.min(stageCount ?? units.count, units.count)
        guard count >= 1 else { throw InterpretError("sanity check: at least one stage of randomization is needed") }
        let chosen = Array(units.prefix(count))
        // The stages' names: each unit, or only the last with `finalOnly`.
        let runs = finalOnly ? [chosen[count - 1]] : chosen
        let base = try model.backend.values(image)
        if let smoothing {
            guard smoothing.samples >= 1, smoothing.batch >= 1 else { throw InterpretError("smoothing: samples and batch must be at least 1") }
            if let given = smoothing.noise {
                guard given.count >= runs.count + 1, given.allSatisfy({ $0.count >= smoothing.samples - 1 && $0.allSatisfy { $0.count == base.count } }) else {
                    throw InterpretError("smoothing: given noise needs \(runs.count + 1) maps of \(smoothing.samples - 1) draws of \(base.count) values")
                }
            }
        }
        var rng = SplitMix64(noiseSeed: smoothing?.seed ?? 0)
        let sigma = (smoothing?.magnitude ?? 0) * ((base.max() ?? 0) - (base.min() ?? 0))
        // One map per method: plain, or the mean over noisy copies (`index` picks given noise);
        // each chunk of copies goes to the device once, for every method.
        func maps(_ m: Model, index: Int) throws -> [[Float]] {
            guard let smoothing else {
                return try Progress.muting { try methods.map { Array(try $0.attribute(m, input: image, targets: [target]).map(0)) } }
            }
            var sums = [[Float]](repeating: [Float](repeating: 0, count: h * w), count: methods.count)
            try Progress.muting {
                for start in stride(from: 0, to: smoothing.samples, by: smoothing.batch) {
                    let ks = start..<Swift.min(start + smoothing.batch, smoothing.samples)
                    let values = ks.flatMap { k -> [Float] in
                        if k == smoothing.samples - 1 { return base }
                        let e = smoothing.noise?[index][k] ?? rng.normal(base.count, sigma: 1)
                        return zip(base, e).map { $0 + $1 * sigma }
                    }
                    let input = try m.backend.tensor(values, [ks.count, c, h, w])
                    for (j, method) in methods.enumerated() {
                        let a = try method.attribute(m, input: input, targets: Array(repeating: target, count: ks.count))
                        for i in 0..<ks.count { for (p, v) in a.map(i).enumerated() { sums[j][p] += v } }
                    }
                }
            }
            return sums.map { $0.map { $0 / Float(smoothing.samples) } }
        }
        let original = try maps(model, index: 0)
        var stages = [Stage(name: "original", maps: original, spearman: original.map { _ in 1 },
                            ssim: original.map { _ in 1 }, entropy: original.map { discreteEntropy($0) })]
        var current = model
        for (k, name) in runs.enumerated() {
            progress(name)
            // Cascading stages add one unit to the previous stage's model; independent ones start
            // over; `finalOnly` re-draws every chosen unit (cascading) or the last (independent) at once.
            switch (finalOnly, randomization.order) {
            case (true, .independent), (false, .independent): current = try randomization.randomizing([name], of: model)
            case (true, _): current = try randomization.randomizing(chosen, of: model)
            case (false, _): current = try randomization.randomizing([name], of: current)
            }
            let m = try maps(current, index: k + 1)
            stages.append(Stage(name: name, maps: m,
                                spearman: zip(original, m).map { spearmanCorrelation($0, $1) },
                                ssim: try zip(original, m).map { try structuralSimilarity($0, $1, width: w, height: h) },
                                entropy: m.map { discreteEntropy($0) }))
            Progress.report("sanity stages", stages.count - 1, runs.count)
        }
        self.methods = methods.map(\.name)
        self.stages = stages
    }
}
