import Backend
import Graph
import Models

/// GradientSHAP (Lundberg & Lee 2017; Captum's GradientShap): the expected gradient x (x - x')
/// over random references x' drawn from `baselines`, each input with Gaussian noise of standard
/// deviation `stdev` added, and each gradient taken at a random point x' + a (x + noise - x') of
/// the path, a uniform in [0, 1). The attribution of an image is the mean over `samples` draws of
/// (x + noise - x') * gradient there: Captum's NoiseTunnel(InputBaselineXGradient) with
/// `draw_baseline_from_distrib`. The draws come from SplitMix64 of `seed` (the noise from the
/// device's counter-based stream, as SmoothGrad's), so a seed gives the same map on every backend
/// and batch; `draws` replaces them (tests pass Captum's).
public struct GradientShap: AttributionMethod {
    /// What one run draws, per image and sample (sample s of image i at i * samples + s).
    public struct Draws: Sendable {
        /// Which member of the distribution each sample starts from.
        public var baselineIndices: [Int]
        /// Where on the path each gradient is taken, in [0, 1].
        public var alphas: [Float]
        /// The noise added to each sample's input, samples x 3 x H x W per image (nil: none).
        public var noise: [Float]?
        /// Draws as given.
        public init(baselineIndices: [Int], alphas: [Float], noise: [Float]? = nil) {
            self.baselineIndices = baselineIndices; self.alphas = alphas; self.noise = noise
        }
    }

    public var name: String { "gradient_shap" }
    /// The distribution of references (Captum's `baselines`: several examples; each a named
    /// reference or an image).
    public var baselines: [IntegratedGradients.Baseline]
    /// Draws per image (Captum's n_samples; its default is 5).
    public var samples: Int
    /// The noise's standard deviation in the model's normalized input space (Captum's stdevs;
    /// default 0).
    public var stdev: Float
    /// Samples per device pass.
    public var batch: Int
    /// The seed of the draws.
    public var seed: UInt64
    /// Fixed draws (tests); drawn from `seed` when nil.
    public var draws: Draws?

    /// GradientSHAP over `baselines` with `samples` draws per image.
    public init(baselines: [IntegratedGradients.Baseline] = [.black], samples: Int = 25, stdev: Float = 0, batch: Int = 16, seed: UInt64 = 0,
                draws: Draws? = nil) {
        self.baselines = baselines; self.samples = samples; self.stdev = stdev; self.batch = batch; self.seed = seed; self.draws = draws
    }

    /// The draws of `n` images from `seed`: a member index and a point on the path per sample.
    public func drawn(images n: Int) -> Draws {
        var rng = SplitMix64(seed: seed ^ 0x6A_5EED)
        var indices: [Int] = [], alphas: [Float] = []
        for _ in 0..<(n * samples) {
            indices.append(Int(rng.next() % UInt64(baselines.count)))
            alphas.append(Float(rng.next() >> 40) / Float(1 << 24))
        }
        return Draws(baselineIndices: indices, alphas: alphas)
    }

    public func attribute(_ model: Model, input: Tensor, targets: [Int]) throws -> Attribution {
        let (n, h, w) = try checkBatch(input, targets)
        guard samples >= 1, batch >= 1 else { throw InterpretError("gradient_shap needs at least one sample and a positive batch") }
        guard samples <= SmoothGrad.maxSamples else {
            throw InterpretError("gradient_shap with \(samples) samples: at most \(SmoothGrad.maxSamples) (each is a forward and backward pass)")
        }
        guard !baselines.isEmpty else { throw InterpretError("gradient_shap needs at least one baseline") }
        guard stdev.isFinite, stdev >= 0 else { throw InterpretError("gradient_shap's noise deviation \(stdev) must be a finite number >= 0") }
        let plane = 3 * h * w
        let d = draws ?? drawn(images: n)
        guard d.baselineIndices.count == n * samples, d.alphas.count == n * samples, d.noise.map({ $0.count == n * samples * plane }) ?? true,
              d.baselineIndices.allSatisfy({ $0 >= 0 && $0 < baselines.count }) else {
            throw InterpretError("gradient_shap's draws do not fit \(n) images of \(samples) samples and \(baselines.count) baselines")
        }
        try MemoryBudget.requirePass(model, batch: Swift.min(batch, samples), height: h, width: w, what: "gradient_shap's batch of samples")
        let b = model.backend
        let values = try b.values(input)
        var maps: [Float] = [], raws: [Float] = []
        for i in 0..<n {
            let x = Array(values[(i * plane)..<((i + 1) * plane)])
            let references = try baselines.map {
                try IntegratedGradients(baseline: $0).baselineValues(x, h, w, model.architecture.normalization, image: i, of: n)
            }
            let image = try b.tensor(x, [1, 3, h, w])
            var total: Tensor?
            for start in stride(from: 0, to: samples, by: batch) {
                let count = Swift.min(batch, samples - start), first = i * samples + start
                let noisy: Tensor
                if let noise = d.noise {
                    var v = [Float](repeating: 0, count: count * plane)
                    for k in 0..<count { for j in 0..<plane { v[k * plane + j] = x[j] + noise[(first + k) * plane + j] } }
                    noisy = try b.tensor(v, [count, 3, h, w])
                } else {
                    noisy = try b.noisyCopies(image, copies: count, sigma: stdev, seed: seed, offset: UInt64(first * plane))
                }
                let starts = try b.tensor((0..<count).flatMap { references[d.baselineIndices[first + $0]] }, [count, 3, h, w])
                let difference = try b.axpy(-1, starts, noisy)
                let alphas = try b.tensor((0..<count).flatMap { [Float](repeating: d.alphas[first + $0], count: h * w) }, [count, 1, h, w])
                let points = try b.add(starts, try b.broadcastMul(difference, masks: alphas))
                let pass = try targetGradient(model, points, [Int](repeating: targets[i], count: count))
                let sum = try batchSum(b, try b.mul(difference, try inputGradient(pass)))
                total = try total.map { try b.add($0, sum) } ?? sum
                Progress.report(name, first + count, n * samples)
            }
            let mean = try b.scale(total!, 1 / Float(samples))
            raws += try b.values(mean)
            maps += try b.values(absChannelMax(b, mean))
        }
        return Attribution(method: name, count: n, height: h, width: w, map: maps, raw: raws)
    }
}

/// DeepLIFT SHAP (Captum's DeepLiftShap): DeepLIFT's rescale rule from every member of a
/// distribution of references, averaged. Each image runs with each reference as one unfused pass
/// (`DeepLift`); the completeness error is the mean of DeepLIFT's, sum of attributions - (f(x) -
/// mean f(x')).
public struct DeepLiftShap: AttributionMethod {
    public var name: String { "deeplift_shap" }
    /// The references (Captum wants more than one; one gives DeepLIFT's attribution).
    public var baselines: [IntegratedGradients.Baseline]
    /// DeepLIFT's settings: the rescaled activation kinds, the max-pool rule, images per pass.
    public var deepLift: DeepLift

    /// DeepLIFT SHAP over `baselines` with `deepLift`'s rules (its own baseline is not read).
    public init(baselines: [IntegratedGradients.Baseline] = [.black], deepLift: DeepLift = DeepLift()) {
        self.baselines = baselines; self.deepLift = deepLift
    }

    public func attribute(_ model: Model, input: Tensor, targets: [Int]) throws -> Attribution {
        let (n, h, w) = try checkBatch(input, targets)
        guard !baselines.isEmpty else { throw InterpretError("deeplift_shap needs at least one baseline") }
        let m = baselines.count, plane = 3 * h * w
        guard n * m <= 1 << 20 else { throw InterpretError("deeplift_shap: \(n) images x \(m) baselines is too many passes") }
        let b = model.backend
        let values = try b.values(input)
        // Image i with reference k at row i * m + k, as Captum expands them.
        var xs: [Float] = [], refs: [Float] = []
        for i in 0..<n {
            let x = Array(values[(i * plane)..<((i + 1) * plane)])
            for baseline in baselines {
                xs += x
                refs += try IntegratedGradients(baseline: baseline).baselineValues(x, h, w, model.architecture.normalization, image: i, of: n)
            }
        }
        var method = deepLift
        method.baseline = .image(refs)
        let each = try method.attribute(model, input: try b.tensor(xs, [n * m, 3, h, w]), targets: targets.flatMap { [Int](repeating: $0, count: m) })
        var raws = [Float](repeating: 0, count: n * plane), errors = [Float](repeating: 0, count: n)
        for i in 0..<n {
            for k in 0..<m {
                let row = each.raw(i * m + k)!
                for (j, v) in row.enumerated() { raws[i * plane + j] += v / Float(m) }
                errors[i] += each.completenessError![i * m + k] / Float(m)
            }
        }
        let maps = try b.values(absChannelMax(b, try b.tensor(raws, [n, 3, h, w])))
        return Attribution(method: name, count: n, height: h, width: w, map: maps, raw: raws, completenessError: errors)
    }
}
