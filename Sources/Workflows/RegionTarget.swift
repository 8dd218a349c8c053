import ImageIO
import Interpret
import Models

/// A segmentation model's target for one image: a class summed over a region of its output
/// (pytorch-grad-cam's `SemanticSegmentationTarget`), chosen as the pixels predicted as that
/// class, a box or a mask of the prepared input.
public struct RegionTarget: Sendable {
    /// How the region was given.
    public let region: Region
    /// The region on the output's grid (what the target sums over), and the grid's size.
    public let mask: [Bool], grid: (height: Int, width: Int)
    /// The region on the prepared input's grid (what figures outline).
    public let inputMask: [Bool]
    /// The region's pixels on the output's grid.
    public var pixels: Int { mask.lazy.filter { $0 }.count }
    /// The mean over the region of the target class's per-pixel probability.
    public let meanProbability: Float

    /// The region of image `i` of `probe` (a segmentation's pass) for class `target`, on an
    /// input of `height` x `width`.
    public init(probe: Probe, image i: Int, target: Int, region: Region, height: Int, width: Int) throws {
        guard let dense = probe.scores.dense else { throw WorkflowError("a region is the target of a segmentation model (output [N, classes, H, W]); this model's output is [N, classes]") }
        self.region = region
        mask = try region.outputMask(i, target: target, scores: dense, height: height, width: width)
        grid = (dense.height, dense.width)
        inputMask = resampleMask(mask, from: (dense.height, dense.width), to: (height, width))
        meanProbability = dense.meanProbability(i, target, over: mask)
    }

    /// summary.json's `region`.
    public var json: [String: Any] {
        var j: [String: Any] = ["kind": region.text.split(separator: " ").first.map(String.init) ?? "", "pixels": pixels,
                                "grid": [grid.height, grid.width], "mean_probability": meanProbability]
        if case let .box(x0, y0, x1, y1) = region { j["box"] = [x0, y0, x1, y1] }
        return j
    }
}
