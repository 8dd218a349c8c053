import Backend
import Foundation

/// Transformation robustness (Lucid's `transform.standard_transforms`): before each step the
/// image is padded, jittered, scaled, rotated and jittered again, differentiably. The whole
/// chain is one affine map per image, applied by a single bilinear resampling on the device
/// (`Graph.affineSample`), so the backward pass is one gather. Jitter offsets and rotations
/// are drawn per image; the scale is drawn per batch so every image keeps the same size.
///
/// Lucid pads with grey and fills what rotation uncovers with black; here everything outside
/// the image reads as `fill` (grey), and scaling uses half-pixel centres.
public struct TransformSet: Sendable, Equatable {
    /// Pixels of `fill` added on each side first.
    public var pad: Int
    /// The largest shift (pixels, each axis) of the first crop.
    public var jitter: Int
    /// The scale factors one is drawn from per step (for the whole batch).
    public var scales: [Float]
    /// Degrees.
    public var angles: [Float]
    /// The largest shift of the last crop.
    public var finalJitter: Int
    /// The value outside the image (0.5: grey).
    public var fill: Float

    /// A transform set; `fill` 0.5 reads grey outside the image.
    public init(pad: Int, jitter: Int, scales: [Float], angles: [Float], finalJitter: Int, fill: Float = 0.5) {
        self.pad = pad; self.jitter = jitter; self.scales = scales; self.angles = angles; self.finalJitter = finalJitter; self.fill = fill
    }

    /// pad 12, jitter 8, scales 0.90 ... 1.10 in steps of 0.02, rotations -10 ... 10 degrees, jitter 4.
    public static let standard = TransformSet(pad: 12, jitter: 8, scales: (0..<11).map { 1 + Float($0 - 5) / 50 },
                                              angles: (-10...10).map(Float.init), finalJitter: 4)
    /// No transformation: the model sees the image itself.
    public static let none = TransformSet(pad: 0, jitter: 0, scales: [1], angles: [0], finalJitter: 0)

    /// Whether it leaves the image as it is.
    public var isIdentity: Bool { self == .none }

    /// One draw for `count` images of `height` x `width`: each image's sample map and the size
    /// of the transformed images.
    public func draw(count: Int, height: Int, width: Int, random: inout SplitMix64) -> (transforms: [AffineMap], height: Int, width: Int) {
        var none: [SplitMix64] = []
        return draw(count: count, height: height, width: width, random: &random, perImage: &none)
    }

    /// The same, with each image's jitter and rotation drawn from its own generator in
    /// `perImage` (when it holds `count`; otherwise from `random`) and the scale from `random`:
    /// an image's transforms then do not depend on the other images of its batch.
    public func draw(count: Int, height: Int, width: Int, random: inout SplitMix64,
                     perImage: inout [SplitMix64]) -> (transforms: [AffineMap], height: Int, width: Int) {
        if isIdentity { return ([AffineMap](repeating: .identity, count: count), height, width) }
        let own = perImage.count == count
        let s = scales[random.index(scales.count)]
        var (h, w) = (height + 2 * pad - jitter, width + 2 * pad - jitter)
        let (sh, sw) = (Swift.max(Int(Float(h) * s), 1), Swift.max(Int(Float(w) * s), 1))
        (h, w) = (Swift.max(sh - finalJitter, 1), Swift.max(sw - finalJitter, 1))
        func pick(_ i: Int, _ n: Int) -> Int { own ? perImage[i].index(n) : random.index(n) }
        let transforms = (0..<count).map { i -> AffineMap in
            let padding = AffineMap(a: 1, b: 0, c: -Float(pad), d: 0, e: 1, f: -Float(pad))
            let crop = AffineMap(a: 1, b: 0, c: Float(pick(i, jitter + 1)), d: 0, e: 1, f: Float(pick(i, jitter + 1)))
            let (inH, inW) = (Float(height + 2 * pad - jitter), Float(width + 2 * pad - jitter))
            let (ry, rx) = (inH / Float(sh), inW / Float(sw))
            let scaling = AffineMap(a: rx, b: 0, c: 0.5 * rx - 0.5, d: 0, e: ry, f: 0.5 * ry - 0.5)
            let theta = angles[pick(i, angles.count)] * .pi / 180
            let (cx, cy) = (Float(sw - 1) / 2, Float(sh - 1) / 2)
            let (cs, sn) = (cos(theta), sin(theta))
            let rotation = AffineMap(a: cs, b: -sn, c: cx - cs * cx + sn * cy, d: sn, e: cs, f: cy - sn * cx - cs * cy)
            let finalCrop = AffineMap(a: 1, b: 0, c: Float(pick(i, finalJitter + 1)), d: 0, e: 1, f: Float(pick(i, finalJitter + 1)))
            // Image operations pad, crop, scale, rotate, crop: the sample map runs backwards.
            return finalCrop.then(rotation).then(scaling).then(crop).then(padding)
        }
        return (transforms, h, w)
    }
}
