import Backend
import Foundation
import Graph
import Models

/// A segmentation model's output [N, C, H, W] on the host: each pixel's class scores, and the
/// class each pixel is predicted as (its largest score; ties: the lower class).
public struct DenseScores: Sendable {
    /// Images (N), classes (C) and the output's grid (H x W).
    public let count: Int, classes: Int, height: Int, width: Int
    /// [N, C, H, W], row-major.
    public let logits: [Float]
    /// [N, H, W]: each pixel's predicted class.
    public let predicted: [Int32]

    /// The scores `logits` of shape [N, C, H, W].
    public init(logits: [Float], shape: Shape) throws {
        guard shape.rank == 4, shape.count == logits.count, shape.count > 0 else {
            throw InterpretError("a dense output must be [N, classes, H, W] and non-empty, got \(shape)")
        }
        (count, classes, height, width) = (shape[0], shape[1], shape[2], shape[3])
        self.logits = logits
        let area = shape[2] * shape[3], c = shape[1]
        var predicted = [Int32](repeating: 0, count: shape[0] * area)
        for n in 0..<shape[0] {
            for p in 0..<area {
                var best = 0, value = logits[n * c * area + p]
                for k in 1..<max(c, 1) where logits[(n * c + k) * area + p] > value {
                    (best, value) = (k, logits[(n * c + k) * area + p])
                }
                predicted[n * area + p] = Int32(best)
            }
        }
        self.predicted = predicted
    }

    /// Pixels of the output's grid (H W).
    public var area: Int { height * width }

    /// How many of image `i`'s pixels are predicted as each class.
    public func pixelCounts(_ i: Int) -> [Int] {
        var counts = [Int](repeating: 0, count: classes)
        for p in 0..<area { counts[Int(predicted[i * area + p])] += 1 }
        return counts
    }

    /// Whether every class's softmax probability is within `tolerance` of 1/classes at every one
    /// of image `i`'s pixels (a flat output: untrained or random weights).
    public func isFlat(_ i: Int, tolerance: Double = 1e-6) -> Bool {
        guard classes > 1 else { return false }
        let uniform = 1 / Double(classes)
        for p in 0..<area {
            let scores = (0..<classes).map { Double(logits[(i * classes + $0) * area + p]) }
            let top = scores.max() ?? 0
            let total = scores.reduce(0) { $0 + exp($1 - top) }
            if scores.contains(where: { abs(exp($0 - top) / total - uniform) > tolerance }) { return false }
        }
        return true
    }

    /// Image `i`'s pixels predicted as class `c` (H W, on the output's grid).
    public func predictedMask(_ i: Int, _ c: Int) -> [Bool] {
        (0..<area).map { predicted[i * area + $0] == Int32(c) }
    }

    /// The mean over the pixels of `mask` (on the output's grid) of class `c`'s softmax
    /// probability among the classes at that pixel; 0 for an empty mask.
    public func meanProbability(_ i: Int, _ c: Int, over mask: [Bool]) -> Float {
        var sum = 0.0, pixels = 0
        for p in 0..<area where mask[p] {
            let scores = (0..<classes).map { Double(logits[(i * classes + $0) * area + p]) }
            let top = scores.max() ?? 0
            let total = scores.reduce(0) { $0 + exp($1 - top) }
            sum += exp(scores[c] - top) / total
            pixels += 1
        }
        return pixels == 0 ? 0 : Float(sum / Double(pixels))
    }

    /// Class scores of the whole image, one row per image: each class's mean score over the
    /// grid (logits) and its share of the predicted pixels (probabilities), so that a
    /// segmentation's classes rank by the area predicted as each.
    func classRows() -> (logits: [Float], shares: [Float]) {
        var logits = [Float](repeating: 0, count: count * classes), shares = logits
        for i in 0..<count {
            let counts = pixelCounts(i)
            for k in 0..<classes {
                let start = (i * classes + k) * area
                logits[i * classes + k] = Float(self.logits[start..<(start + area)].reduce(0.0) { $0 + Double($1) } / Double(area))
                shares[i * classes + k] = Float(counts[k]) / Float(area)
            }
        }
        return (logits, shares)
    }
}

/// The pixels a dense (segmentation) target sums its class over, as pytorch-grad-cam's
/// `SemanticSegmentationTarget` does: the pixels predicted as the target class, a box, or a mask.
public enum Region: Sendable, Equatable {
    /// The pixels the model predicts as the target class.
    case predicted
    /// A rectangle of the prepared input, columns x0..<x1 and rows y0..<y1.
    case box(x0: Int, y0: Int, x1: Int, y1: Int)
    /// A mask of the prepared input (H W of its pixels, row-major).
    case mask([Bool])

    /// `predicted` or `box:x0,y0,x1,y1` (a mask comes from a file, which the caller reads).
    public static func parse(_ text: String) throws -> Region {
        if text == "predicted" { return .predicted }
        guard text.hasPrefix("box:") else { throw InterpretError("expected predicted, box:x0,y0,x1,y1 or a mask image file, got \(printable(text))") }
        let numbers = text.dropFirst(4).split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard numbers.count == 4, numbers.allSatisfy({ $0 != nil }) else {
            throw InterpretError("box:x0,y0,x1,y1 takes four whole numbers (pixels of the prepared input), got \(printable(text))")
        }
        let v = numbers.map { $0! }
        guard v[0] >= 0, v[1] >= 0, v[2] > v[0], v[3] > v[1] else {
            throw InterpretError("box:\(v[0]),\(v[1]),\(v[2]),\(v[3]) is empty: it needs 0 <= x0 < x1 and 0 <= y0 < y1")
        }
        return .box(x0: v[0], y0: v[1], x1: v[2], y1: v[3])
    }

    /// What the region is, for reports: "predicted", "box 10,20,90,100" or "mask".
    public var text: String {
        switch self {
        case .predicted: "predicted"
        case let .box(x0, y0, x1, y1): "box \(x0),\(y0),\(x1),\(y1)"
        case .mask: "mask"
        }
    }

    /// The region of image `i` for class `target` on the output's grid (H W of `scores`), for an
    /// input of `height` x `width` (a box or mask is sampled at each output pixel's centre).
    /// Throws when it holds no pixel or does not fit the input.
    public func outputMask(_ i: Int, target: Int, scores: DenseScores, height: Int, width: Int) throws -> [Bool] {
        let mask: [Bool]
        switch self {
        case .predicted:
            mask = scores.predictedMask(i, target)
        case let .box(x0, y0, x1, y1):
            guard x1 <= width, y1 <= height else {
                throw InterpretError("the box \(x0),\(y0),\(x1),\(y1) does not fit the \(width)x\(height) input")
            }
            mask = resampleMask((0..<(height * width)).map { p in (x0..<x1).contains(p % width) && (y0..<y1).contains(p / width) },
                                from: (height, width), to: (scores.height, scores.width))
        case .mask(let m):
            guard m.count == height * width else { throw InterpretError("the mask has \(m.count) pixels, the input \(width)x\(height)") }
            mask = resampleMask(m, from: (height, width), to: (scores.height, scores.width))
        }
        guard mask.contains(true) else {
            throw InterpretError(self == .predicted ? "no pixel is predicted as class \(target): give a box or a mask for it"
                                                    : "the region holds no pixel of the model's \(scores.width)x\(scores.height) output")
        }
        return mask
    }
}

/// A mask resampled by the nearest pixel (each new pixel's centre read from the old grid).
public func resampleMask(_ mask: [Bool], from: (h: Int, w: Int), to: (h: Int, w: Int)) -> [Bool] {
    if from == to { return mask }
    return (0..<(to.h * to.w)).map { p in
        let y = min(from.h - 1, (2 * (p / to.w) + 1) * from.h / (2 * to.h))
        let x = min(from.w - 1, (2 * (p % to.w) + 1) * from.w / (2 * to.w))
        return mask[y * from.w + x]
    }
}

extension Model {
    /// This model with its dense output [N, C, H, W] summed over `mask` (H W, the output's
    /// grid): [N, C], each class's sum over the region, pytorch-grad-cam's
    /// `SemanticSegmentationTarget` for every class at once. Every attribution method then
    /// explains a class over the region. The sum is one linear layer (a constant [1, H W]
    /// weight), so a batch of any size shares it.
    public func summed(over mask: [Bool]) throws -> Model {
        var architecture = self.architecture
        let inner = architecture.head
        let weight = try backend.tensor(mask.map { $0 ? Float(1) : 0 }, [1, mask.count])
        architecture.head = Architecture.Head(layers: inner?.layers ?? []) { g, y in
            let out = try inner?.apply(g, y) ?? y
            let s = g.shape(out)
            guard s.rank == 4, s[2] * s[3] == mask.count else {
                throw InterpretError("a region of \(mask.count) pixels does not fit the output \(s) (expected [N, C, H, W] with H W = \(mask.count))")
            }
            let rows = try g.reshape(out, [s[0] * s[1], mask.count])
            return try g.reshape(try g.linear(rows, weight: g.constant(weight), bias: nil), [s[0], s[1]])
        }
        return Model(architecture: architecture, parameters: parameters, backend: backend)
    }
}
