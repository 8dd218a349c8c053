import Backend
import Foundation
import Graph
import Models

/// Deletion and insertion curves (Petsiuk et al. 2018, RISE's CausalMetric): pixels are
/// removed from the image (deletion: replaced by zeros of the normalized input) or added to a
/// blurred copy (insertion) in the order of the saliency map, `step` pixels at a time, and the
/// target's softmax probability is recorded after each step. AUC is the trapezoid area under the
/// curve with the x axis scaled to [0, 1]. Low deletion AUC and high insertion AUC mean a
/// faithful map. The perturbed copies run `batch` at a time, built on the device.
public struct CausalMetric: Sendable {
    /// Deletion removes the most salient pixels from the image first (a good map drops the
    /// score fast); insertion adds them to a blurred copy first (a good map raises it fast).
    public enum Mode: String, Sendable, CaseIterable { case deletion, insertion }
    /// Deletion or insertion.
    public var mode: Mode
    /// Pixels removed or inserted between two evaluations of the model.
    public var step: Int
    /// Perturbed images per device pass.
    public var batch: Int
    /// Gaussian blur of the insertion substrate (RISE: an 11-tap kernel with sigma 5).
    public var blurSigma: Float

    /// A metric; the defaults are RISE's (224 pixels a step, blur sigma 5).
    public init(_ mode: Mode, step: Int = 224, batch: Int = 16, blurSigma: Float = 5) {
        self.mode = mode; self.step = step; self.batch = batch; self.blurSigma = blurSigma
    }

    /// The curve (n + 1 probabilities, n = ceil(H*W / step)) and its AUC for one image [1, 3, H, W].
    public func evaluate(_ model: Model, image: Tensor, target: Int, map: ArraySlice<Float>) throws -> (curve: [Float], auc: Float) {
        guard let (n, c, h, w) = image.shape.nchw, n == 1, c == 3 else { throw InterpretError("causal metric: expected one [1, 3, H, W] image, got \(image.shape)") }
        guard map.count == h * w else { throw InterpretError("causal metric: a map of \(map.count) values for a \(w)x\(h) image") }
        guard step >= 1, batch >= 1 else { throw InterpretError("causal metric: step and batch must be positive") }
        let b = model.backend
        let x = try b.values(image)
        let substrate = mode == .deletion ? [Float](repeating: 0, count: x.count) : gaussianBlur(x, channels: 3, height: h, width: w, sigma: blurSigma)
        let (start, finish) = mode == .deletion ? (x, substrate) : (substrate, x)
        let startT = try b.tensor(start, [1, 3, h, w]), finishT = try b.tensor(finish, [1, 3, h, w])
        // Most salient first; ties by pixel index, so the order is the same everywhere.
        let values = Array(map)
        let order = values.indices.sorted { values[$0] != values[$1] ? values[$0] > values[$1] : $0 < $1 }
        var rank = [Int](repeating: 0, count: h * w)
        for (r, p) in order.enumerated() { rank[p] = r }
        let steps = (h * w + step - 1) / step
        var curve: [Float] = []
        var i = 0
        while i <= steps {
            let count = Swift.min(batch, steps + 1 - i)
            // Copy k has its first (i + k) * step pixels (by rank) taken from `finish`.
            var changed = [Float](repeating: 0, count: count * h * w)
            for k in 0..<count {
                let done = (i + k) * step
                for p in 0..<(h * w) where rank[p] < done { changed[k * h * w + p] = 1 }
            }
            let changedT = try b.tensor(changed, [count, 1, h, w])
            let keptT = try b.tensor(changed.map { 1 - $0 }, [count, 1, h, w])
            let inputs = try b.add(try b.broadcastMul(startT, masks: keptT), try b.broadcastMul(finishT, masks: changedT))
            curve += try targetScores(model, inputs, target: target, probability: true)
            i += count
            Progress.report(mode.rawValue, i, steps + 1)
        }
        let auc = (curve.reduce(0, +) - curve.first! / 2 - curve.last! / 2) / Float(Swift.max(curve.count - 1, 1))
        return (curve, auc)
    }
}
