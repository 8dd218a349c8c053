import Backend
import Foundation
import Graph
import Models

/// Relevance maximization (Achtibat et al. 2023, "From attribution maps to human-understandable
/// explanations through Concept Relevance Propagation"), as zennit-crp's `FeatureVisualization`
/// with `Maximization("relevance")` computes it: a channel's reference images are the images
/// of a dataset whose relevance for it, not its activation, is largest.
///
/// Each image's relevance at `layer` comes from LRP (`lrp`'s composite) started at its target's
/// logit (the logit's value, as zennit-crp starts). Per image and channel the score is the sum of
/// the channel's relevance over its positions (`.sum`) or its largest relevance (`.max`); with
/// `absNorm` each image's scores are divided by the sum of their absolute values over the
/// channels (+1e-10). The channel's most relevant neuron (the first position of largest
/// relevance) is where its reference heatmap is taken: LRP started at `layer` from the layer's
/// activation at that neuron alone, on to the input, summed over colour channels.
public struct RelevanceMaximization: Sendable {
    /// What a channel's score is.
    public enum Target: String, Sendable, CaseIterable {
        /// The channel's relevance summed over its positions (zennit-crp's default).
        case sum
        /// The channel's largest relevance.
        case max
    }

    /// The layer, named as `loupe layers` prints it.
    public var layer: String
    /// The rules, as the `lrp` method takes them.
    public var lrp: LRP
    /// The score of a channel on one image.
    public var target: Target
    /// Whether each image's scores are divided by their absolute sum over the channels.
    public var absNorm: Bool

    /// Relevance maximization on `layer` under `lrp`; zennit-crp's defaults: the sum,
    /// normalized.
    public init(layer: String, lrp: LRP, target: Target = .sum, absNorm: Bool = true) {
        self.layer = layer; self.lrp = lrp; self.target = target; self.absNorm = absNorm
    }

    /// One batch's scores.
    public struct Scores: Sendable {
        /// Images and channels.
        public let count: Int, channels: Int
        /// The layer's height and width.
        public let height: Int, width: Int
        /// Score of each image and channel, [count][channels] flattened.
        public var scores: [Float]
        /// Each image's and channel's most relevant neuron, y * width + x, [count][channels].
        public var neurons: [Int]
        /// Relevance at the layer, [count][channels][height][width] flattened.
        public var relevance: [Float]
        /// What each image's scores were divided by (`absNorm`; 1 without it).
        public var normalizers: [Float]
        /// Each image's target class.
        public var targets: [Int]

        /// Scores of `count` images and `channels` channels of a `height` x `width` layer.
        public init(count: Int, channels: Int, height: Int, width: Int, scores: [Float], neurons: [Int], relevance: [Float],
                    normalizers: [Float]? = nil, targets: [Int] = []) {
            self.count = count; self.channels = channels; self.height = height; self.width = width
            self.scores = scores; self.neurons = neurons; self.relevance = relevance
            self.normalizers = normalizers ?? [Float](repeating: 1, count: count); self.targets = targets
        }
    }

    /// The scores of `input`'s images for their `targets` (one class per image; nil: each
    /// image's top class).
    public func scores(_ model: Model, input: Tensor, targets: [Int]?) throws -> Scores {
        try Self.scores(model, input: input, targets: targets, layers: [layer], lrp: lrp, target: target, absNorm: absNorm)[0]
    }

    /// The scores of every layer of `layers` from one forward and one LRP pass (`scores` of
    /// each layer's `RelevanceMaximization`).
    public static func scores(_ model: Model, input: Tensor, targets given: [Int]?, layers: [String], lrp: LRP,
                              target: Target = .sum, absNorm: Bool = true) throws -> [Scores] {
        if let given { _ = try checkBatch(input, given) }
        let pass = try relevanceAtLayers(model, input: input, targets: given, layers: layers, lrp: lrp)
        return try zip(layers, pass.relevance).map { layer, atLayer in
            let dims = atLayer.shape.dims
            guard dims.count == 4 || dims.count == 2 else {
                throw InterpretError("layer \(layer) has shape \(atLayer.shape); relevance maximization needs [N, C, H, W] or [N, C]")
            }
            let relevance = try model.backend.values(atLayer)
            let (n, c) = (dims[0], dims[1]), (h, w) = dims.count == 4 ? (dims[2], dims[3]) : (1, 1), area = h * w
            var result = Scores(count: n, channels: c, height: h, width: w, scores: [Float](repeating: 0, count: n * c),
                                neurons: [Int](repeating: 0, count: n * c), relevance: relevance, targets: pass.targets)
            for i in 0..<n {
                for k in 0..<c {
                    let map = relevance[((i * c + k) * area)..<((i * c + k + 1) * area)]
                    var best = map.startIndex
                    for p in map.indices where map[p] > map[best] { best = p }
                    result.neurons[i * c + k] = best - map.startIndex
                    result.scores[i * c + k] = target == .sum ? map.reduce(0, +) : map[best]
                }
                if absNorm {
                    let total = (0..<c).reduce(Float(0)) { $0 + abs(result.scores[i * c + $1]) } + 1e-10
                    result.normalizers[i] = total
                    for k in 0..<c { result.scores[i * c + k] /= total }
                }
            }
            return result
        }
    }

    /// A channel's reference images over a dataset, kept as batches arrive: the `top` of each
    /// channel by score, largest first (ties to the earlier image; NaN never enters).
    public struct Ranking: Sendable {
        /// One reference image of a channel.
        public struct Entry: Sendable, Equatable {
            /// The image's index in the dataset.
            public var image: Int
            /// Its score for the channel.
            public var score: Float
            /// The channel's most relevant neuron on it, y * width + x.
            public var neuron: Int
        }
        /// Images kept per channel (zennit-crp keeps 40).
        public let top: Int
        /// Per channel, its entries, best first.
        public private(set) var entries: [[Entry]]

        /// An empty ranking of `channels` channels keeping `top` images each.
        public init(channels: Int, top: Int = 40) {
            self.top = top
            entries = [[Entry]](repeating: [], count: channels)
        }

        /// Adds a batch whose images are `images` (dataset indices, one per image of `scores`).
        public mutating func add(_ scores: Scores, images: [Int]) throws {
            guard scores.channels == entries.count else {
                throw InterpretError("scores of \(scores.channels) channels for a ranking of \(entries.count)")
            }
            guard images.count == scores.count else { throw InterpretError("\(images.count) image indices for \(scores.count) images") }
            for k in 0..<entries.count {
                var all = entries[k]
                for (i, image) in images.enumerated() where !scores.scores[i * scores.channels + k].isNaN {
                    all.append(Entry(image: image, score: scores.scores[i * scores.channels + k], neuron: scores.neurons[i * scores.channels + k]))
                }
                all.sort { $0.score != $1.score ? $0.score > $1.score : $0.image < $1.image }
                entries[k] = Array(all.prefix(top))
            }
        }
    }

    /// The conditional heatmaps of `channel` on `input`'s images (zennit-crp's
    /// `get_max_reference` with `rf=True`): LRP started at the layer from its activation at
    /// each image's neuron of `channel` (y * width + x; nil: the whole channel), on to the input,
    /// summed over colour channels. [N][H * W] of the input.
    public func referenceHeatmaps(_ model: Model, input: Tensor, channel: Int, neurons: [Int]?) throws -> [[Float]] {
        guard let (n, _, h, w) = input.shape.nchw else { throw InterpretError("input must be [N, 3, H, W], got \(input.shape)") }
        if let neurons, neurons.count != n { throw InterpretError("\(neurons.count) neurons for \(n) images") }
        let b = model.backend
        let g = Graph(backend: b)
        g.keptLayers = [layer]
        let x = g.input(input)
        _ = try model.forward(g, x)
        try checkLayerName(layer, in: g.layerNames, model: model.architecture.name)
        let value = g.tapped(layer)!
        let shape = g.shape(value), c = shape[1], area = shape.count / (n * c)
        guard channel >= 0, channel < c else { throw InterpretError("\(layer) has \(c) channels (0...\(c - 1)); channel \(channel) does not exist") }
        let activation = try b.values(g.tensor(value))
        var seed = [Float](repeating: 0, count: shape.count)
        for i in 0..<n {
            let base = (i * c + channel) * area
            if let neurons {
                guard neurons[i] >= 0, neurons[i] < area else { throw InterpretError("neuron \(neurons[i]) is outside the layer's \(area) positions") }
                seed[base + neurons[i]] = activation[base + neurons[i]]
            } else {
                for p in 0..<area { seed[base + p] = activation[base + p] }
            }
        }
        let composite = try lrp.resolved(for: model.architecture.normalization)
        guard let raw = try g.relevance(from: value, seed: b.tensor(seed, shape), composite: composite).of(x) else {
            throw InterpretError("the layer does not depend on the input")
        }
        let r = try b.values(raw)
        return (0..<n).map { i in (0..<(h * w)).map { p in r[(i * 3) * h * w + p] + r[(i * 3 + 1) * h * w + p] + r[(i * 3 + 2) * h * w + p] } }
    }

    /// Where a reference heatmap lies, as zennit-crp crops it (`vis_img_heatmap` with `rf`):
    /// the heatmap blurred (`blurred`), divided by its maximum (+1e-10), and the rows and columns
    /// where it exceeds `threshold`, from the first to before the last (zennit-crp's slice);
    /// nil where nothing exceeds it.
    public static func crop(_ heatmap: [Float], width: Int, height: Int, threshold: Float = 0.1,
                            kernel: Int = 19) -> (rows: Range<Int>, columns: Range<Int>)? {
        let smooth = blurred(heatmap, width: width, height: height, kernel: kernel)
        let top = (smooth.max() ?? 0) + 1e-10
        var (r0, r1, c0, c1) = (height, -1, width, -1)
        for y in 0..<height { for x in 0..<width where smooth[y * width + x] / top > threshold {
            r0 = Swift.min(r0, y); r1 = Swift.max(r1, y); c0 = Swift.min(c0, x); c1 = Swift.max(c1, x)
        } }
        guard r1 >= 0, r0 < r1 || c0 < c1 else { return nil }
        return (r0..<Swift.max(r0, r1), c0..<Swift.max(c0, c1))
    }

    /// torchvision's `gaussian_blur` of a one-channel map: a `kernel` x `kernel` Gaussian of
    /// sigma 0.3 ((kernel - 1) / 2 - 1) + 0.8 (3.2 for 19), normalized to sum 1, over the map
    /// reflected at its edges.
    public static func blurred(_ map: [Float], width: Int, height: Int, kernel: Int = 19) -> [Float] {
        let half = Float(kernel - 1) / 2, sigma = 0.3 * (half - 1) + 0.8
        let pdf = (0..<kernel).map { i -> Float in
            let x = -half + Float(i) * (kernel > 1 ? 2 * half / Float(kernel - 1) : 0)
            return Foundation.exp(-0.5 * (x / sigma) * (x / sigma))
        }
        let total = pdf.reduce(0, +), k = pdf.map { $0 / total }
        func reflect(_ i: Int, _ n: Int) -> Int {
            guard n > 1 else { return 0 }
            let period = 2 * (n - 1)
            let m = ((i % period) + period) % period
            return m < n ? m : period - m
        }
        let r = kernel / 2
        var out = [Float](repeating: 0, count: map.count)
        for y in 0..<height { for x in 0..<width {
            var s: Float = 0
            for i in 0..<kernel { for j in 0..<kernel {
                s += k[i] * k[j] * map[reflect(y + i - r, height) * width + reflect(x + j - r, width)]
            } }
            out[y * width + x] = s
        } }
        return out
    }
}
