import Backend
import Foundation
import Models

/// ROAD (Rong et al. 2022, "A Consistent and Efficient Evaluation Strategy for Attribution
/// Methods"): for each percentage p, the p% most salient pixels (ties by pixel index) are
/// removed by noisy linear imputation: each is set to the weighted mean of its eight neighbours
/// (1/6 across an edge, 1/12 across a corner), all removed pixels solved together per channel,
/// then Gaussian noise of `noise` added. The curve is the target's softmax probability at each
/// p; the score its mean (lower: the map found what the model needs). The imputation is
/// Quantus' `noisy_linear_imputation`, whose ROAD class cannot run on image attributions (its
/// feature indices count the three channels, the imputation's pixels).
public struct RemoveAndDebias: Sendable {
    /// Percentages of the pixels removed, one point of the curve each (Quantus': 1, 3, ..., 99).
    public var percentages: [Double]
    /// The imputation noise's standard deviation (Quantus' 0.01).
    public var noise: Float
    /// Imputed copies per device pass.
    public var batch: Int
    /// The seed of the noise.
    public var seed: UInt64

    /// A metric; the defaults are Quantus'.
    public init(percentages: [Double] = Array(stride(from: 1.0, through: 99, by: 2)), noise: Float = 0.01, batch: Int = 16, seed: UInt64 = 0) {
        (self.percentages, self.noise, self.batch, self.seed) = (percentages, noise, batch, seed)
    }

    /// The curve and its mean for `map` (H x W) and `target` on `image` [1, 3, H, W].
    public func evaluate(_ model: Model, image: Tensor, target: Int, map: ArraySlice<Float>) throws -> (curve: [Float], mean: Float) {
        guard let (n, c, h, w) = image.shape.nchw, n == 1, c == 3 else { throw InterpretError("road: expected one [1, 3, H, W] image, got \(image.shape)") }
        guard map.count == h * w else { throw InterpretError("road: a map of \(map.count) values for a \(w)x\(h) image") }
        guard !percentages.isEmpty, percentages.allSatisfy({ $0 > 0 && $0 < 100 }), noise >= 0, noise.isFinite, batch >= 1 else {
            throw InterpretError("road: percentages must lie in (0, 100), the noise must not be negative, the batch positive")
        }
        let b = model.backend
        let x = try b.values(image)
        let values = Array(map)
        let order = values.indices.sorted { values[$0] != values[$1] ? values[$0] > values[$1] : $0 < $1 }
        var rng = SplitMix64(noiseSeed: seed)
        var curve: [Float] = []
        var copies: [Float] = []
        var previous = x.map(Double.init)
        for (k, p) in percentages.enumerated() {
            // Quantus: int(H * W * p / 100) pixels.
            let removed = Array(order.prefix(Int(Double(h * w) * p / 100)))
            let imputed = try RemoveAndDebias.impute(x, height: h, width: w, removed: removed, start: previous)
            previous = imputed
            var copy = imputed.map { Float($0) }
            if noise > 0 {
                let draws = rng.normal(3 * removed.count, sigma: noise)
                for ch in 0..<3 { for (i, pixel) in removed.enumerated() { copy[ch * h * w + pixel] += draws[ch * removed.count + i] } }
            }
            copies += copy
            if copies.count == batch * 3 * h * w || k == percentages.count - 1 {
                let count = copies.count / (3 * h * w)
                curve += try targetScores(model, try b.tensor(copies, [count, 3, h, w]), target: target, probability: true)
                copies = []
                Progress.report("road", k + 1, percentages.count)
            }
        }
        return (curve, curve.reduce(0, +) / Float(curve.count))
    }

    /// The image (3 x H x W) with the pixels `removed` imputed from their neighbours, solved
    /// per channel by conjugate gradients in double precision (the system is symmetric and
    /// diagonally dominant), starting from `start` at those pixels.
    public static func impute(_ x: [Float], height h: Int, width w: Int, removed: [Int], start: [Double]) throws -> [Double] {
        var out = x.map(Double.init)
        guard !removed.isEmpty else { return out }
        let plane = h * w
        var variable = [Int](repeating: -1, count: plane)
        for (i, p) in removed.enumerated() { variable[p] = i }
        let offsets: [(Int, Int, Double)] = [(1, 1, 1.0 / 12), (0, 1, 1.0 / 6), (-1, 1, 1.0 / 12), (1, -1, 1.0 / 12),
                                            (0, -1, 1.0 / 6), (-1, -1, 1.0 / 12), (1, 0, 1.0 / 6), (-1, 0, 1.0 / 6)]
        // Per unknown: its diagonal (the weights of its neighbours inside the image) and its
        // neighbours among the unknowns and among the known pixels.
        let k = removed.count
        var diagonal = [Double](repeating: 0, count: k)
        var inner: [[(Int, Double)]] = Array(repeating: [], count: k)
        var outer: [[(Int, Double)]] = Array(repeating: [], count: k)
        for (i, p) in removed.enumerated() {
            let (py, px) = (p / w, p % w)
            for (dy, dx, weight) in offsets {
                let (y, xx) = (py + dy, px + dx)
                guard y >= 0, y < h, xx >= 0, xx < w else { continue }
                diagonal[i] += weight
                let q = y * w + xx
                if variable[q] >= 0 { inner[i].append((variable[q], weight)) } else { outer[i].append((q, weight)) }
            }
        }
        for ch in 0..<3 {
            let base = ch * plane
            let rhs = (0..<k).map { i in outer[i].reduce(0.0) { $0 + $1.1 * Double(x[base + $1.0]) } }
            // The system's product into `out`, without allocating inside the iterations.
            func apply(_ v: [Double], into out: inout [Double]) {
                for i in 0..<k {
                    var sum = diagonal[i] * v[i]
                    for (j, weight) in inner[i] { sum -= weight * v[j] }
                    out[i] = sum
                }
            }
            var u = removed.map { start[base + $0] }
            var ad = [Double](repeating: 0, count: k)
            apply(u, into: &ad)
            var r = (0..<k).map { rhs[$0] - ad[$0] }
            var d = r
            var rr = r.reduce(0) { $0 + $1 * $1 }
            let bound = Swift.max(rhs.reduce(0) { $0 + $1 * $1 }, 1e-300) * 1e-24
            var iterations = 0
            while rr > bound {
                guard iterations < 20 * k + 100 else { throw InterpretError("road: the imputation did not converge (\(k) pixels)") }
                apply(d, into: &ad)
                let dad = zip(d, ad).reduce(0) { $0 + $1.0 * $1.1 }
                guard dad > 0 else { throw InterpretError("road: the imputation's system is singular (a removed region touches no kept pixel)") }
                let alpha = rr / dad
                for i in 0..<k { u[i] += alpha * d[i]; r[i] -= alpha * ad[i] }
                let next = r.reduce(0) { $0 + $1 * $1 }
                let beta = next / rr
                rr = next
                for i in 0..<k { d[i] = r[i] + beta * d[i] }
                iterations += 1
            }
            for (i, p) in removed.enumerated() { out[base + p] = u[i] }
        }
        return out
    }
}
