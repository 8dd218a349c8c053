import Backend
import Foundation
import Models

/// Which pixels move together in the perturbation methods (LIME, KernelSHAP): a label per pixel,
/// 0 ..< count (Captum's `feature_mask`, the same for every colour channel).
public struct FeatureMask: Sendable, Equatable {
    /// The feature of each pixel, H x W row-major.
    public let labels: [Int]
    /// How many features.
    public let count: Int

    /// A mask from labels 0 ..< count, each used at least once.
    public init(labels: [Int], count: Int) throws {
        guard count >= 1, labels.allSatisfy({ $0 >= 0 && $0 < count }), Set(labels).count == count else {
            throw InterpretError("a feature mask needs labels 0 ..< \(count), each on at least one pixel")
        }
        self.labels = labels; self.count = count
    }

    /// The regions of a segmentation: one feature per distinct value of `regions` (colours, say),
    /// numbered in the order they first appear.
    public init(regions: [Int]) throws {
        var index: [Int: Int] = [:]
        let labels = regions.map { value in
            if let i = index[value] { return i }
            index[value] = index.count
            return index.count - 1
        }
        try self.init(labels: labels, count: index.count)
    }

    /// Square cells of `cell` pixels (the last row and column of cells may be narrower), numbered
    /// row by row.
    public static func grid(height h: Int, width w: Int, cell: Int) throws -> FeatureMask {
        guard cell >= 1, h >= 1, w >= 1 else { throw InterpretError("a grid feature mask needs a positive cell and image size") }
        let columns = (w + cell - 1) / cell
        let labels = (0..<(h * w)).map { ($0 / w / cell) * columns + ($0 % w) / cell }
        return try FeatureMask(labels: labels, count: ((h + cell - 1) / cell) * columns)
    }
}

/// LIME (Ribeiro et al. 2016) and KernelSHAP (Lundberg and Lee 2017) as Captum's Lime and
/// KernelShap compute them: per image, `samples` binary vectors z over the features of `mask`;
/// each scored by the target's logit for the input with the features where z is 0 replaced by
/// the baseline (batched on the device); a weighted linear model fitted to (z, score) on the host;
/// its coefficients are the attribution of every pixel of their feature (all channels).
/// LIME: z with each feature on with probability 1/2, weights exp(-d^2 / (2 width^2)) with d the
/// cosine distance between the input and the perturbed input, Lasso (alpha 0.01, with an
/// intercept; sklearn's objective and coordinate descent). KernelSHAP: all features on, then all
/// off (weight 1e6 each), then k features on with probability proportional to (M - 1) / (k (M - k)),
/// the k chosen uniformly, weight 1; least squares with an intercept, the least-norm solution
/// when the samples do not determine it (sklearn's LinearRegression).
public struct Surrogate: AttributionMethod {
    /// Which surrogate.
    public enum Kind: String, Sendable, CaseIterable {
        /// LIME: Bernoulli samples, exponential cosine kernel, Lasso.
        case lime
        /// KernelSHAP: Shapley-kernel samples, least squares.
        case kernelShap = "kernel_shap"
    }

    public var name: String { kind.rawValue }
    /// LIME or KernelSHAP.
    public var kind: Kind
    /// Binary vectors per image (Captum's n_samples).
    public var samples: Int
    /// What a feature that is off takes.
    public var baseline: IntegratedGradients.Baseline
    /// The side of the grid's cells, pixels, when `mask` is nil.
    public var cell: Int
    /// The features; a grid of `cell` when nil.
    public var mask: FeatureMask?
    /// Perturbed inputs per device pass.
    public var batch: Int
    /// The seed of the samples.
    public var seed: UInt64
    /// LIME's Lasso penalty (Captum: 0.01).
    public var alpha: Double
    /// LIME's kernel width (Captum: 1).
    public var kernelWidth: Double
    /// Fixed binary vectors, samples x features per image (tests pass Captum's); drawn when nil.
    public var given: [[Bool]]?

    /// The most samples a run takes (each is a forward pass).
    public static let maxSamples = 100_000
    /// The most features or samples the least-squares fit takes on its smaller side.
    public static let maxFit = 2048

    /// LIME or KernelSHAP with Captum's settings, `samples` vectors, a grid of `cell` pixels.
    public init(_ kind: Kind, samples: Int = 100, baseline: IntegratedGradients.Baseline = .black, cell: Int = 16, mask: FeatureMask? = nil,
                batch: Int = 16, seed: UInt64 = 0, alpha: Double = 0.01, kernelWidth: Double = 1, given: [[Bool]]? = nil) {
        self.kind = kind; self.samples = samples; self.baseline = baseline; self.cell = cell; self.mask = mask
        self.batch = batch; self.seed = seed; self.alpha = alpha; self.kernelWidth = kernelWidth; self.given = given
    }

    /// The binary vectors of image `image` over `features` features, from `seed`.
    public func drawn(features m: Int, image: Int) -> [[Bool]] {
        var rng = SplitMix64(seed: seed &+ 0x11AE &+ UInt64(image) &* 0x9E37_79B9)
        func uniform() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }
        switch kind {
        case .lime:
            return (0..<samples).map { _ in (0..<m).map { _ in rng.next() >> 63 == 1 } }
        case .kernelShap:
            var out: [[Bool]] = [[Bool](repeating: true, count: m), [Bool](repeating: false, count: m)]
            let weights = m > 1 ? (1..<m).map { Double(m - 1) / Double($0 * (m - $0)) } : []
            let total = weights.reduce(0, +)
            while out.count < samples {
                guard m > 1 else { out.append([Bool](repeating: true, count: m)); continue }
                var u = uniform() * total, k = 1
                while k < m - 1, u >= weights[k - 1] { u -= weights[k - 1]; k += 1 }
                var order = Array(0..<m)
                for i in 0..<k { order.swapAt(i, i + Int(rng.next() % UInt64(m - i))) }
                var z = [Bool](repeating: false, count: m)
                for i in order.prefix(k) { z[i] = true }
                out.append(z)
            }
            return Array(out.prefix(samples))
        }
    }

    public func attribute(_ model: Model, input: Tensor, targets: [Int]) throws -> Attribution {
        let (n, h, w) = try checkBatch(input, targets)
        guard samples >= 1, batch >= 1 else { throw InterpretError("\(name) needs at least one sample and a positive batch") }
        guard samples <= Self.maxSamples else { throw InterpretError("\(name) with \(samples) samples: at most \(Self.maxSamples) (each is a forward pass)") }
        let features = try mask ?? FeatureMask.grid(height: h, width: w, cell: cell)
        guard features.labels.count == h * w else {
            throw InterpretError("\(name): the feature mask has \(features.labels.count) pixels, the input \(h * w)")
        }
        let m = features.count
        guard Swift.min(m, samples) <= Self.maxFit else {
            throw InterpretError("\(name): \(m) features and \(samples) samples; the fit takes at most \(Self.maxFit) on its smaller side (use larger cells)")
        }
        if let given, given.count != n * samples || given.contains(where: { $0.count != m }) {
            throw InterpretError("\(name): the given samples do not fit \(n) images of \(samples) vectors of \(m) features")
        }
        guard alpha.isFinite, alpha >= 0, kernelWidth.isFinite, kernelWidth > 0 else { throw InterpretError("\(name): alpha must be >= 0 and the kernel width > 0") }
        try MemoryBudget.requirePass(model, batch: Swift.min(batch, samples), height: h, width: w, what: "\(name)'s batch of perturbed images")
        let b = model.backend
        let values = try b.values(input)
        let plane = 3 * h * w
        var raws: [Float] = [], maps: [Float] = []
        for i in 0..<n {
            let x = Array(values[(i * plane)..<((i + 1) * plane)])
            let reference = try IntegratedGradients(baseline: baseline).baselineValues(x, h, w, model.architecture.normalization, image: i, of: n)
            let zs = given.map { Array($0[(i * samples)..<((i + 1) * samples)]) } ?? drawn(features: m, image: i)
            let xt = try b.tensor(x, [1, 3, h, w]), reft = try b.tensor(reference, [1, 3, h, w])
            let difference = try b.axpy(-1, reft, xt)
            var scores: [Double] = []
            for start in stride(from: 0, to: samples, by: batch) {
                let count = Swift.min(batch, samples - start)
                var on = [Float](repeating: 0, count: count * h * w)
                for k in 0..<count { for p in 0..<(h * w) where zs[start + k][features.labels[p]] { on[k * h * w + p] = 1 } }
                let masks = try b.tensor(on, [count, 1, h, w])
                let ones = try b.tensor([Float](repeating: 1, count: count * h * w), [count, 1, h, w])
                let perturbed = try b.add(try b.broadcastMul(reft, masks: ones), try b.broadcastMul(difference, masks: masks))
                scores += try targetScores(model, perturbed, [Int](repeating: targets[i], count: count)).map(Double.init)
                Progress.report(name, i * samples + start + count, n * samples)
            }
            let weights = zs.map { z -> Double in
                switch kind {
                case .kernelShap:
                    let on = z.filter { $0 }.count
                    return on == 0 || on == m ? 1e6 : 1
                case .lime:
                    let d = cosineDistance(x, reference, z, features.labels, h * w)
                    return exp(-d * d / (2 * kernelWidth * kernelWidth))
                }
            }
            let design = zs.map { $0.map { $0 ? 1.0 : 0.0 } }
            let coefficients = kind == .lime
                ? lasso(design, scores, weights: weights, alpha: alpha)
                : try leastSquares(design, scores, weights: weights)
            let pixels = features.labels.map { Float(coefficients[$0]) }
            raws += pixels + pixels + pixels
            maps += pixels.map(abs)
        }
        return Attribution(method: name, count: n, height: h, width: w, map: maps, raw: raws)
    }
}

/// 1 - cos(x, x_z) with x_z = x where the pixel's feature is on, the reference elsewhere (all
/// channels), as Captum's default LIME kernel measures it on the flattened inputs.
private func cosineDistance(_ x: [Float], _ reference: [Float], _ z: [Bool], _ labels: [Int], _ hw: Int) -> Double {
    var dot = 0.0, xx = 0.0, pp = 0.0
    for j in 0..<x.count {
        let p = Double(z[labels[j % hw]] ? x[j] : reference[j]), v = Double(x[j])
        dot += v * p; xx += v * v; pp += p * p
    }
    let denominator = Swift.max(xx.squareRoot() * pp.squareRoot(), 1e-8)
    return 1 - dot / denominator
}

/// The weighted data centred on its weighted means and scaled by sqrt(weight), as sklearn's linear
/// models prepare it (weights rescaled to sum to the sample count).
private func centred(_ a: [[Double]], _ y: [Double], _ weights: [Double]) -> (a: [[Double]], y: [Double]) {
    let n = a.count, m = a.first?.count ?? 0
    let total = weights.reduce(0, +)
    let w = weights.map { $0 * Double(n) / total }
    var meanA = [Double](repeating: 0, count: m), meanY = 0.0
    for i in 0..<n {
        for j in 0..<m { meanA[j] += w[i] * a[i][j] }
        meanY += w[i] * y[i]
    }
    meanA = meanA.map { $0 / Double(n) }; meanY /= Double(n)
    let s = w.map { $0.squareRoot() }
    return ((0..<n).map { i in (0..<m).map { (a[i][$0] - meanA[$0]) * s[i] } }, (0..<n).map { (y[$0] - meanY) * s[$0] })
}

/// sklearn's Lasso with sample weights and an intercept: minimizes (1 / 2n) ||y - A b||^2 +
/// alpha ||b||_1 on the centred, weighted data by cyclic coordinate descent from zero (its
/// algorithm), run until no coefficient moves by more than 1e-12 of the largest.
func lasso(_ a: [[Double]], _ y: [Double], weights: [Double], alpha: Double) -> [Double] {
    let (ac, yc) = centred(a, y, weights)
    let n = ac.count, m = ac.first?.count ?? 0
    var beta = [Double](repeating: 0, count: m), residual = yc
    let norms = (0..<m).map { j in (0..<n).reduce(0.0) { $0 + ac[$1][j] * ac[$1][j] } }
    let threshold = alpha * Double(n)
    for _ in 0..<100_000 {
        var largestStep = 0.0, largest = 0.0
        for j in 0..<m where norms[j] > 0 {
            let old = beta[j]
            var rho = 0.0
            for i in 0..<n { rho += ac[i][j] * (residual[i] + ac[i][j] * old) }
            let new = rho > threshold ? (rho - threshold) / norms[j] : rho < -threshold ? (rho + threshold) / norms[j] : 0
            if new != old {
                for i in 0..<n { residual[i] -= ac[i][j] * (new - old) }
                beta[j] = new
            }
            largestStep = Swift.max(largestStep, abs(new - old)); largest = Swift.max(largest, abs(new))
        }
        if largestStep <= 1e-12 * Swift.max(largest, 1e-300) { break }
    }
    return beta
}

/// sklearn's LinearRegression with sample weights and an intercept: the least-squares
/// coefficients of the centred, weighted data, the least-norm ones when they are not determined
/// (the pseudo-inverse through the eigenvectors of the smaller Gram matrix).
func leastSquares(_ a: [[Double]], _ y: [Double], weights: [Double]) throws -> [Double] {
    let (ac, yc) = centred(a, y, weights)
    let n = ac.count, m = ac.first?.count ?? 0
    if n >= m {
        // b = (A^T A)^+ A^T y
        var gram = [Double](repeating: 0, count: m * m), rhs = [Double](repeating: 0, count: m)
        for i in 0..<n {
            for j in 0..<m where ac[i][j] != 0 {
                rhs[j] += ac[i][j] * yc[i]
                for k in 0..<m { gram[j * m + k] += ac[i][j] * ac[i][k] }
            }
        }
        return pseudoInverseTimes(gram, m, rhs, cutoff: Double(Swift.max(n, m)))
    }
    // b = A^T (A A^T)^+ y
    var gram = [Double](repeating: 0, count: n * n)
    for i in 0..<n { for k in 0..<n { gram[i * n + k] = zip(ac[i], ac[k]).reduce(0) { $0 + $1.0 * $1.1 } } }
    let z = pseudoInverseTimes(gram, n, yc, cutoff: Double(Swift.max(n, m)))
    return (0..<m).map { j in (0..<n).reduce(0.0) { $0 + ac[$1][j] * z[$1] } }
}

/// G^+ v for a symmetric positive semi-definite G (s x s) by Jacobi's eigenvalue method;
/// eigenvalues below its largest x 1e-14 x `cutoff` are taken as zero.
private func pseudoInverseTimes(_ g: [Double], _ s: Int, _ v: [Double], cutoff: Double) -> [Double] {
    let (eigen, vectors) = symmetricEigen(g, s)
    let largest = eigen.max() ?? 0
    // A direction A does not reach has a Gram eigenvalue of rounding size, about 1e-16 of the
    // largest (not its square): those below 1e-14 x the size of the largest are taken as zero,
    // which keeps singular values of A down to about 1e-7 of its largest.
    let floor = largest * 1e-14 * cutoff
    var out = [Double](repeating: 0, count: s)
    for e in 0..<s where eigen[e] > floor {
        var projection = 0.0
        for k in 0..<s { projection += vectors[k * s + e] * v[k] }
        let scale = projection / eigen[e]
        for k in 0..<s { out[k] += vectors[k * s + e] * scale }
    }
    return out
}
