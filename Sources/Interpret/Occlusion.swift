import Backend
import Foundation
import Graph
import Models

/// Occlusion (Zeiler & Fergus; Captum's Occlusion): slide a window x window patch with `stride`
/// over the image, replace it with `baseline`, and credit each pixel with the mean drop of the
/// target logit over the patches that cover it. Where the stride does not divide the image
/// less the window, the last patch of a row or column is cut at the edge (Captum's positions). Occluded copies run `batch` at a time, built on
/// the device.
public struct Occlusion: AttributionMethod {
    public var name: String { "occlusion" }
    /// The occluding square's side, in pixels.
    public var window: Int
    /// Pixels between window positions.
    public var stride: Int
    /// The value the window is filled with (in the model's normalized input space).
    public var baseline: Float
    /// Occluded images per device pass.
    public var batch: Int

    /// Occlusion: by default a 16-pixel window every 8 pixels, filled with 0 (the normalized mean).
    public init(window: Int = 16, stride: Int = 8, baseline: Float = 0, batch: Int = 16) {
        self.window = window; self.stride = stride; self.baseline = baseline; self.batch = batch
    }

    public func attribute(_ model: Model, input: Tensor, targets: [Int]) throws -> Attribution {
        let (n, h, w) = try checkBatch(input, targets)
        guard window >= 1, stride >= 1, window <= h, window <= w, batch >= 1 else {
            throw InterpretError("occlusion window \(window) and stride \(stride) must be positive and fit the \(w)x\(h) input")
        }
        let b = model.backend
        // Captum's positions: every stride from 0 while a window still starts inside the image
        // short of a whole one (ceil((size - window) / stride) + 1 of them); the last is cut at
        // the edge when the stride does not divide size - window.
        let positions = (0...((h - window + stride - 1) / stride)).flatMap { y in
            (0...((w - window + stride - 1) / stride)).map { x in (y * stride, x * stride) }
        }
        try MemoryBudget.requirePass(model, batch: Swift.min(batch, positions.count), height: h, width: w, what: "occlusion's batch of occluded images")
        let values = try b.values(input)
        var maps: [Float] = [], raws: [Float] = []
        for i in 0..<n {
            let xv = Array(values[(i * 3 * h * w)..<((i + 1) * 3 * h * w)])
            let image = try b.tensor(xv, [1, 3, h, w])
            // x * keep + baseline * (1 - keep), as x * keep + (baseline image) * (1 - keep).
            let base = try b.tensor([Float](repeating: baseline, count: 3 * h * w), [1, 3, h, w])
            let full = try targetScores(model, image, [targets[i]])[0]
            var total = [Float](repeating: 0, count: h * w), count = [Float](repeating: 0, count: h * w)
            var start = 0
            while start < positions.count {
                let chunk = Array(positions[start..<Swift.min(start + batch, positions.count)])
                var keep = [Float](repeating: 1, count: chunk.count * h * w)
                for (k, (y0, x0)) in chunk.enumerated() {
                    for y in y0..<Swift.min(y0 + window, h) { for x in x0..<Swift.min(x0 + window, w) { keep[k * h * w + y * w + x] = 0 } }
                }
                let keepT = try b.tensor(keep, [chunk.count, 1, h, w])
                let dropT = try b.tensor(keep.map { 1 - $0 }, [chunk.count, 1, h, w])
                let occluded = try b.add(try b.broadcastMul(image, masks: keepT), try b.broadcastMul(base, masks: dropT))
                let scores = try targetScores(model, occluded, [Int](repeating: targets[i], count: chunk.count))
                for (k, (y0, x0)) in chunk.enumerated() {
                    for y in y0..<Swift.min(y0 + window, h) { for x in x0..<Swift.min(x0 + window, w) {
                        total[y * w + x] += full - scores[k]
                        count[y * w + x] += 1
                    } }
                }
                start += chunk.count
                Progress.report("occlusion", i * positions.count + start, n * positions.count)
            }
            let map = zip(total, count).map { $1 > 0 ? $0 / $1 : 0 }
            maps += map
            raws += map + map + map
        }
        return Attribution(method: name, count: n, height: h, width: w, map: maps, raw: raws)
    }
}
