import Foundation

/// A resampling filter, as PIL's (the filters torchvision's Resize uses on PIL images).
public enum Interpolation: String, Sendable, CaseIterable {
    /// A triangle, support 1 (scaled when shrinking).
    case bilinear
    /// Keys' cubic with a = -0.5, support 2 (scaled when shrinking): torchvision's EfficientNet
    /// and Swin presets.
    case bicubic

    var support: Double { self == .bilinear ? 1 : 2 }

    func weight(_ x: Double) -> Double {
        let x = abs(x)
        switch self {
        case .bilinear: return Swift.max(0, 1 - x)
        case .bicubic:
            let a = -0.5
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        }
    }
}

extension RGBImage {
    /// Resamples to `width` x `height` with PIL's antialiased filters (the ones torchvision's
    /// Resize uses on PIL images): the filter stretched by max(in/out, 1) when shrinking,
    /// coefficients normalized per output pixel, applied horizontally then vertically in 8 bits
    /// with PIL's 22-bit fixed point rounding and clamping, so results match PIL's.
    public func resized(width outW: Int, height outH: Int, filter: Interpolation = .bilinear) throws -> RGBImage {
        guard outW > 0, outH > 0 else { throw ImageError("cannot resize to \(outW)x\(outH)") }
        var image = self
        if outW != width { image = image.resampledHorizontally(outW, filter) }
        if outH != height { image = image.transposed().resampledHorizontally(outH, filter).transposed() }
        return image
    }

    /// Center crop as torchvision's: top = round((H - h) / 2), left = round((W - w) / 2), with
    /// Python's round-half-to-even.
    public func centerCropped(width w: Int, height h: Int) throws -> RGBImage {
        guard w <= width, h <= height, w > 0, h > 0 else {
            throw ImageError("cannot crop \(w)x\(h) from a \(width)x\(height) image")
        }
        let top = Int((Double(height - h) / 2).rounded(.toNearestOrEven))
        let left = Int((Double(width - w) / 2).rounded(.toNearestOrEven))
        var out = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            let src = ((top + y) * width + left) * 3
            out[(y * w * 3)..<((y + 1) * w * 3)] = pixels[src..<(src + w * 3)]
        }
        return RGBImage(width: w, height: h, pixels: out)
    }

    func transposed() -> RGBImage {
        var out = [UInt8](repeating: 0, count: pixels.count)
        for y in 0..<height { for x in 0..<width { for c in 0..<3 { out[(x * height + y) * 3 + c] = pixels[(y * width + x) * 3 + c] } } }
        return RGBImage(width: height, height: width, pixels: out)
    }

    /// PIL's precompute_coeffs for the filter, then the 8-bit horizontal pass.
    func resampledHorizontally(_ outW: Int, _ filter: Interpolation) -> RGBImage {
        let scale = Double(width) / Double(outW)
        let filterScale = Swift.max(scale, 1)
        let support = filter.support * filterScale
        let precision = 22
        var out = [UInt8](repeating: 0, count: outW * height * 3)
        for xx in 0..<outW {
            let center = (Double(xx) + 0.5) * scale
            let xmin = Swift.max(Int(center - support + 0.5), 0)
            let xmax = Swift.min(Int(center + support + 0.5), width) - xmin
            var k = (0..<Swift.max(xmax, 0)).map { x -> Double in
                filter.weight((Double(x + xmin) - center + 0.5) / filterScale)
            }
            let total = k.reduce(0, +)
            if total != 0 { k = k.map { $0 / total } }
            let fixed = k.map { Int64(($0 < 0 ? $0 * Double(1 << precision) - 0.5 : $0 * Double(1 << precision) + 0.5).rounded(.towardZero)) }
            for y in 0..<height {
                for c in 0..<3 {
                    var ss = Int64(1) << (precision - 1)
                    for (x, kk) in fixed.enumerated() { ss += Int64(pixels[(y * width + xmin + x) * 3 + c]) * kk }
                    out[(y * outW + xx) * 3 + c] = UInt8(clamping: ss >> Int64(precision))
                }
            }
        }
        return RGBImage(width: outW, height: height, pixels: out)
    }
}

/// How an image becomes the network's input.
public struct Preprocessing: Sendable {
    /// Shorter side resized to this (nil: keep the image's size and skip the crop).
    public var resizeShorter: Int? = 256
    /// Side of the centre crop taken after the resize.
    public var crop: Int = 224
    /// Per-channel mean subtracted after scaling to [0, 1] (ImageNet's by default).
    public var mean: [Float] = [0.485, 0.456, 0.406]
    /// Per-channel standard deviation divided by after the mean is subtracted (ImageNet's).
    public var std: [Float] = [0.229, 0.224, 0.225]
    /// How the resize samples the image.
    public var interpolation: Interpolation = .bilinear

    /// torchvision's ImageNet classification preset: resize 256 (antialiased bilinear), center
    /// crop 224, scale to [0, 1], normalize with ImageNet's mean and std.
    public static let imagenet = Preprocessing()
    /// torchvision's `weights.transforms()` per family, by the name `--preset` takes: shorter
    /// side, crop and filter (`imagenet`: the V1 weights; `imagenet-v2`: the V2 weights of
    /// ResNet50, MobileNetV2, MobileNetV3-Large and RegNet).
    public static let presets: [String: (resize: Int, crop: Int, filter: Interpolation)] = [
        "imagenet": (256, 224, .bilinear), "imagenet-v2": (232, 224, .bilinear), "convnext": (236, 224, .bilinear),
        "inception": (342, 299, .bilinear), "efficientnet": (256, 224, .bicubic), "swin": (232, 224, .bicubic),
    ]

    /// The image at its own size, normalized only (`--no-resize`).
    public static let normalizeOnly = Preprocessing(resizeShorter: nil)

    /// A preprocessing with ImageNet's mean and standard deviation; `resizeShorter` nil keeps the
    /// image's size and skips the crop.
    public init(resizeShorter: Int? = 256, crop: Int = 224, interpolation: Interpolation = .bilinear) {
        self.resizeShorter = resizeShorter
        self.crop = crop
        self.interpolation = interpolation
    }

    /// The resized and cropped 8-bit image the network sees (before normalization).
    public func prepare(_ image: RGBImage) throws -> RGBImage {
        guard let short = resizeShorter else { return image }
        let (w, h) = (image.width, image.height)
        // torchvision: the long side becomes int(short * long / short_side).
        let (nw, nh) = w <= h ? (short, Int(Double(short) * Double(h) / Double(w))) : (Int(Double(short) * Double(w) / Double(h)), short)
        return try image.resized(width: nw, height: nh, filter: interpolation).centerCropped(width: Swift.min(crop, nw), height: Swift.min(crop, nh))
    }

    /// CHW float values: pixel / 255, minus mean, over std, per channel.
    public func normalize(_ image: RGBImage) -> [Float] {
        let plane = image.width * image.height
        var out = [Float](repeating: 0, count: 3 * plane)
        for i in 0..<plane { for c in 0..<3 {
            out[c * plane + i] = (Float(image.pixels[i * 3 + c]) / 255 - mean[c]) / std[c]
        } }
        return out
    }
}
