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
        try resized(width: outW, height: outH, window: (0, 0, outW, outH), filter: filter)
    }

    /// The pixels `window` (x, y, width, height) of the image resized to `outW` x `outH`, the
    /// same values `resized(width:height:filter:)` then a crop would give, but computed for the
    /// window alone: each output pixel's filter coefficients depend only on its own position, so
    /// a centre crop of a huge resize (a 60000x2 strip made 256 pixels high) costs the crop, not
    /// the resize. The window must fit `ImageLimits.maxPixels`.
    public func resized(width outW: Int, height outH: Int, window: (x: Int, y: Int, width: Int, height: Int),
                        filter: Interpolation = .bilinear) throws -> RGBImage {
        guard outW > 0, outH > 0 else { throw ImageError("cannot resize to \(outW)x\(outH)") }
        guard window.x >= 0, window.y >= 0, window.width > 0, window.height > 0,
              window.x <= outW - window.width, window.y <= outH - window.height else {
            throw ImageError("the window \(window) lies outside a \(outW)x\(outH) image")
        }
        try ImageLimits.check("a resized image", width: window.width, height: window.height)
        // The intermediate image is the window's columns at the input's height.
        try ImageLimits.check("a resized image", width: window.width, height: height)
        var image = self
        if outW != width || window.width != width {
            image = image.resampledHorizontally(outW, filter, columns: window.x..<(window.x + window.width))
        }
        if outH != height || window.height != height {
            image = image.transposed().resampledHorizontally(outH, filter, columns: window.y..<(window.y + window.height)).transposed()
        }
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

    /// PIL's precompute_coeffs for the filter, then the 8-bit horizontal pass, for the output
    /// columns `columns` of a resize to `outW` (all of them by default).
    func resampledHorizontally(_ outW: Int, _ filter: Interpolation, columns: Range<Int>? = nil) -> RGBImage {
        let columns = columns ?? 0..<outW
        let scale = Double(width) / Double(outW)
        let filterScale = Swift.max(scale, 1)
        let support = filter.support * filterScale
        let precision = 22
        let count = columns.count
        var out = [UInt8](repeating: 0, count: count * height * 3)
        for xx in columns {
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
                    out[(y * count + xx - columns.lowerBound) * 3 + c] = UInt8(clamping: ss >> Int64(precision))
                }
            }
        }
        return RGBImage(width: count, height: height, pixels: out)
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
        guard resizeShorter != nil else { return image }
        let (nw, nh, window) = try resizePlan(width: image.width, height: image.height)
        return try image.resized(width: nw, height: nh, window: window, filter: interpolation)
    }

    /// The size the resize gives an image of `width` x `height` and the centre crop's window in
    /// it, as torchvision computes them: the long side becomes int(short * long / short_side);
    /// the crop's top is round((H - h) / 2) and its left round((W - w) / 2), with Python's
    /// round-half-to-even. Checked before any pixel is made: the crop must fit
    /// `ImageLimits.maxPixels`.
    public func resizePlan(width w: Int, height h: Int) throws -> (width: Int, height: Int, window: (x: Int, y: Int, width: Int, height: Int)) {
        let short = resizeShorter ?? Swift.min(w, h)
        guard w > 0, h > 0, short > 0, crop > 0 else { throw ImageError("cannot resize a \(w)x\(h) image to \(short) with a crop of \(crop)") }
        let long = Double(short) * Double(Swift.max(w, h)) / Double(Swift.min(w, h))
        guard long < Double(1 << 40) else { throw ImageError("resizing a \(w)x\(h) image to \(short) makes its long side \(long) pixels: too large") }
        let (nw, nh) = w <= h ? (short, Int(long)) : (Int(long), short)
        let (cw, ch) = (Swift.min(crop, nw), Swift.min(crop, nh))
        try ImageLimits.check("the resized and cropped input", width: cw, height: ch)
        let top = Int((Double(nh - ch) / 2).rounded(.toNearestOrEven))
        let left = Int((Double(nw - cw) / 2).rounded(.toNearestOrEven))
        return (nw, nh, (left, top, cw, ch))
    }

    /// A mask image as the network's input would be cut from it: resized and cropped as
    /// `prepare` does, by the nearest pixel (a mask's values are labels, not intensities), and
    /// true where any channel is at least 128.
    public func prepareMask(_ image: RGBImage) throws -> [Bool] {
        try prepareLabels(image).map { $0 >> 16 >= 128 || ($0 >> 8) & 0xFF >= 128 || $0 & 0xFF >= 128 }
    }

    /// A label image (a segmentation: each colour one region) as the network's input would be
    /// cut from it: resized and cropped as `prepare` does, by the nearest pixel; each pixel's
    /// colour as r << 16 | g << 8 | b.
    public func prepareLabels(_ image: RGBImage) throws -> [Int] {
        func colour(_ x: Int, _ y: Int) -> Int {
            let p = (y * image.width + x) * 3
            return Int(image.pixels[p]) << 16 | Int(image.pixels[p + 1]) << 8 | Int(image.pixels[p + 2])
        }
        guard resizeShorter != nil else {
            return (0..<(image.width * image.height)).map { colour($0 % image.width, $0 / image.width) }
        }
        let (nw, nh, window) = try resizePlan(width: image.width, height: image.height)
        var out = [Int](repeating: 0, count: window.width * window.height)
        for y in 0..<window.height {
            let sy = Swift.min(image.height - 1, Int((Double(y + window.y) + 0.5) * Double(image.height) / Double(nh)))
            for x in 0..<window.width {
                let sx = Swift.min(image.width - 1, Int((Double(x + window.x) + 0.5) * Double(image.width) / Double(nw)))
                out[y * window.width + x] = colour(sx, sy)
            }
        }
        return out
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
