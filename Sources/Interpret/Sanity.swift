import Backend
import Foundation
import Models

/// Cascading model randomization (Adebayo et al. 2018, "Sanity checks for saliency maps"):
/// the weights are re-drawn block by block from the top (the classifier) down to the stem, and
/// each method's map on every stage is compared with its map on the trained model. A method
/// whose maps survive the randomization of the layers they claim to explain fails the check.
///
/// A block is a parameter name up to its first numeric component (`features.18`, `layer4.1`,
/// `classifier.1`), else its first component (`fc`, `conv1`, `inception5b`), in the order the
/// architecture defines them. Re-drawn weights come from `SeededWeights` with `seed`: He-uniform
/// for conv and linear weights, so activations keep their scale, as the paper's
/// re-initialization does.
public struct ModelRandomization: Sendable {
    /// The seed of the re-drawn weights.
    public var seed: UInt64
    /// A cascade seeded with `seed`.
    public init(seed: UInt64 = 1) { self.seed = seed }

    /// The blocks of `architecture`, top first.
    public static func blocks(of architecture: Architecture) -> [String] {
        var order: [String] = []
        for spec in architecture.parameters {
            let block = blockName(spec.name)
            if order.last != block && !order.contains(block) { order.append(block) }
        }
        return order.reversed()
    }

    static func blockName(_ parameter: String) -> String {
        let parts = parameter.split(separator: ".").map(String.init)
        if let i = parts.firstIndex(where: { Int($0) != nil }) { return parts[...i].joined(separator: ".") }
        return parts[0]
    }

    /// `model` with the parameters of `blocks` re-drawn; the other parameters are shared.
    public func randomizing(_ blocks: some Sequence<String>, of model: Model) throws -> Model {
        let chosen = Set(blocks)
        var tensors = model.parameters.tensors
        for spec in model.architecture.parameters where chosen.contains(Self.blockName(spec.name)) {
            tensors[spec.name] = try model.backend.tensor(SeededWeights.values(for: spec, seed: seed), spec.shape)
        }
        return Model(architecture: model.architecture, parameters: ParameterStore(tensors), backend: model.backend)
    }
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

/// The cascade run: each method's map of one image on the trained model and after each stage
/// of randomization, with Spearman and SSIM against the trained model's map.
public struct SanityCheck: Sendable {
    /// One stage of the cascade.
    public struct Stage: Sendable {
        /// "original", then the block randomized last (all blocks above it are random too).
        public let name: String
        /// Per method: the map (H x W), its Spearman correlation and SSIM with the original.
        public let maps: [[Float]]
        /// Per method: Spearman rank correlation of the map with the original's.
        public let spearman: [Float]
        /// Per method: SSIM of the map with the original's.
        public let ssim: [Float]
    }
    /// The methods' names, in the order of each stage's arrays.
    public let methods: [String]
    /// "original" first, then one stage per randomized block, from the top of the network down.
    public let stages: [Stage]

    /// Runs `methods` on `image` ([1, 3, H, W]) for `target` on `model` and on the first
    /// `stageCount` stages of its cascade (nil: every block).
    public init(model: Model, image: Tensor, target: Int, methods: [any AttributionMethod],
                randomization: ModelRandomization, stageCount: Int? = nil,
                progress: (String) -> Void = { _ in }) throws {
        guard let (n, _, h, w) = image.shape.nchw, n == 1 else { throw InterpretError("sanity check: expected one [1, 3, H, W] image, got \(image.shape)") }
        let blocks = ModelRandomization.blocks(of: model.architecture)
        let count = Swift.min(stageCount ?? blocks.count, blocks.count)
        guard count >= 1 else { throw InterpretError("sanity check: at least one stage of randomization is needed") }
        // The stages are the progress; the methods' own loops stay quiet.
        func maps(_ m: Model) throws -> [[Float]] {
            try Progress.muting { try methods.map { Array(try $0.attribute(m, input: image, targets: [target]).map(0)) } }
        }
        let original = try maps(model)
        var stages = [Stage(name: "original", maps: original, spearman: original.map { _ in 1 },
                            ssim: original.map { _ in 1 })]
        var current = model
        for block in blocks.prefix(count) {
            progress(block)
            current = try randomization.randomizing([block], of: current)
            let m = try maps(current)
            stages.append(Stage(name: block, maps: m,
                                spearman: zip(original, m).map { spearmanCorrelation($0, $1) },
                                ssim: try zip(original, m).map { try structuralSimilarity($0, $1, width: w, height: h) }))
            Progress.report("sanity stages", stages.count - 1, count)
        }
        self.methods = methods.map(\.name)
        self.stages = stages
    }
}
