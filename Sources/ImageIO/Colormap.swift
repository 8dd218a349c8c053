import Foundation

/// Colour maps as matplotlib samples them: a lookup table of 256 entries, value t in [0, 1] to
/// entry min(floor(t * 256), 255). The ColorBrewer maps are matplotlib's (linear between their
/// published anchors); `rdwhgn` is Captum's default for signed attributions (red, white, green).
public enum Colormap: String, CaseIterable, Sendable {
    /// Perceptually uniform, dark purple to yellow: the default for unsigned maps.
    case viridis
    /// Diverging, blue (negative) through white (zero) to red (positive): matplotlib's RdBu_r;
    /// the default for signed maps.
    case rdbu
    /// Diverging, red (negative) through white to green (positive): Captum's "RdWhGn".
    case rdwhgn
    case greens, reds, blues
    case gray

    /// The colour at t in [0, 1] (clipped; NaN is the bottom).
    public func color(_ t: Float) -> (UInt8, UInt8, UInt8) {
        let index = t.isNaN ? 0 : Int(Swift.min(Swift.max(t, 0) * 256, 255))
        return table[index]
    }

    var table: [(UInt8, UInt8, UInt8)] {
        switch self {
        case .viridis: return ImageIO.viridis
        case .rdbu: return Self.rdbuTable
        case .rdwhgn: return Self.rdwhgnTable
        case .greens: return Self.greensTable
        case .reds: return Self.redsTable
        case .blues: return Self.bluesTable
        case .gray: return Self.grayTable
        }
    }

    /// 256 entries linear between `anchors` spaced evenly over [0, 1] (matplotlib's
    /// LinearSegmentedColormap.from_list), each channel rounded to 8 bits.
    static func lookupTable(_ anchors: [UInt32]) -> [(UInt8, UInt8, UInt8)] {
        let rgb = anchors.map { [Double(($0 >> 16) & 255), Double(($0 >> 8) & 255), Double($0 & 255)] }
        return (0..<256).map { i in
            let x = Double(i) / 255 * Double(rgb.count - 1)
            let k = Swift.min(Int(x), rgb.count - 2), f = x - Double(k)
            let c = (0..<3).map { UInt8((rgb[k][$0] * (1 - f) + rgb[k + 1][$0] * f).rounded()) }
            return (c[0], c[1], c[2])
        }
    }

    static let rdbuTable = lookupTable([0x053061, 0x2166ac, 0x4393c3, 0x92c5de, 0xd1e5f0, 0xf7f7f7,
                                        0xfddbc7, 0xf4a582, 0xd6604d, 0xb2182b, 0x67001f])
    static let rdwhgnTable = lookupTable([0xff0000, 0xffffff, 0x008000])
    static let greensTable = lookupTable([0xf7fcf5, 0xe5f5e0, 0xc7e9c0, 0xa1d99b, 0x74c476, 0x41ab5d, 0x238b45, 0x006d2c, 0x00441b])
    static let redsTable = lookupTable([0xfff5f0, 0xfee0d2, 0xfcbba1, 0xfc9272, 0xfb6a4a, 0xef3b2c, 0xcb181d, 0xa50f15, 0x67000d])
    static let bluesTable = lookupTable([0xf7fbff, 0xdeebf7, 0xc6dbef, 0x9ecae1, 0x6baed6, 0x4292c6, 0x2171b5, 0x08519c, 0x08306b])
    static let grayTable = lookupTable([0x000000, 0xffffff])
}

/// Which part of a signed attribution a picture shows (Captum's `visualize_image_attr` signs).
public enum AttributionSign: String, CaseIterable, Sendable {
    /// |a|: how much, not which way.
    case absolute
    /// max(a, 0) and -min(a, 0): evidence for, and against, the target.
    case positive, negative
    /// a itself, on a diverging scale centred on zero.
    case all
}

/// An attribution map scaled for display as Captum's `_normalize_attr` scales it: the values
/// the sign keeps, divided by the threshold below which `100 - outlierPercent` percent of their
/// absolute mass lies (the cumulative-sum rule, so a few extreme pixels do not darken the rest),
/// clipped to [-1, 1] (`all`) or [0, 1] (the other signs, `negative` as -a).
public struct ScaledMap: Sendable {
    /// H x W values in [-1, 1] for `all`, in [0, 1] otherwise.
    public let values: [Float]
    /// The map value that 1 stands for (0 when the kept part of the map is all zero).
    public let threshold: Float
    /// The part of the map the values show.
    public let sign: AttributionSign

    /// Scales `map` (H x W values, row-major) for display with `sign`, saturating the top
    /// `outlierPercent` percent of the kept values' absolute mass.
    public init(_ map: some Collection<Float>, sign: AttributionSign, outlierPercent: Float) {
        let kept: [Float]
        switch sign {
        case .all: kept = Array(map)
        case .absolute: kept = map.map { abs($0) }
        case .positive: kept = map.map { Swift.max($0, 0) }
        case .negative: kept = map.map { Swift.max(-$0, 0) }
        }
        let threshold = Self.cumulativeThreshold(kept.map { abs($0) }, percentile: 100 - outlierPercent)
        self.threshold = threshold
        self.sign = sign
        // Captum warns and divides anyway below 1e-5; an all-zero map stays zero here.
        let lower: Float = sign == .all ? -1 : 0
        values = kept.map { threshold > 0 ? Swift.min(Swift.max($0 / threshold, lower), 1) : 0 }
    }

    /// The smallest value v of `values` (all >= 0) such that the sorted values up to v hold
    /// `percentile` percent of the total (numpy: sort, cumsum, first index >= total * p / 100).
    public static func cumulativeThreshold(_ values: [Float], percentile: Float) -> Float {
        let sorted = values.filter { !$0.isNaN }.sorted()
        guard !sorted.isEmpty else { return 0 }
        var sums = [Double](repeating: 0, count: sorted.count), running = 0.0
        for (i, v) in sorted.enumerated() { running += Double(v); sums[i] = running }
        let goal = running * 0.01 * Double(percentile)
        return sorted[sums.firstIndex { $0 >= goal } ?? (sorted.count - 1)]
    }

    /// The colour of each value through `colormap`: with `all`, -1 at the bottom of the map, 0 in
    /// its middle (white on a diverging map) and 1 at its top; otherwise 0 at the bottom.
    public func colorized(_ colormap: Colormap, width: Int, height: Int) -> RGBImage {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for (i, v) in values.enumerated() {
            let t = sign == .all ? (v + 1) / 2 : v
            let (r, g, b) = colormap.color(t)
            pixels[3 * i] = r; pixels[3 * i + 1] = g; pixels[3 * i + 2] = b
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// The map values at the bottom and the top of the colour scale.
    public var range: (low: Float, high: Float) {
        switch sign {
        case .all: return (-threshold, threshold)
        case .absolute, .positive: return (0, threshold)
        case .negative: return (0, -threshold)
        }
    }
}

/// How attribution maps are drawn: which sign, which colour map, how many outliers are clipped,
/// and how strongly the map covers the photo in overlays.
public struct MapStyle: Sendable {
    /// nil: `all` for methods whose attributions are signed sums (gradient x input, integrated
    /// gradients, occlusion), `absolute` for the others.
    public var sign: AttributionSign?
    /// nil: `rdbu` for `all`, `reds` for `negative`, `viridis` otherwise.
    public var colormap: Colormap?
    /// Captum's `outlier_perc`: the top percent of the absolute mass that saturates.
    public var outlierPercent: Float
    /// The map's weight in overlays (the photo's is 1 - alpha); with `followsMap`, its weight
    /// where the map is strongest.
    public var alpha: Float
    /// Whether an overlay's opacity follows the map (the photo clear where the map is near
    /// zero) rather than blending the whole photo at `alpha`.
    public var followsMap: Bool

    /// A style; the defaults are Captum's `visualize_image_attr`: sign and colour map chosen per
    /// method, 2% outliers, alpha 0.5, with the overlay's opacity following the map.
    public init(sign: AttributionSign? = nil, colormap: Colormap? = nil, outlierPercent: Float = 2, alpha: Float = 0.5, followsMap: Bool = true) {
        self.sign = sign; self.colormap = colormap; self.outlierPercent = outlierPercent; self.alpha = alpha; self.followsMap = followsMap
    }

    /// `scaled`'s colours (`heat`) over `image`: opacity following the map, or a blend.
    public func overlay(_ heat: RGBImage, of scaled: ScaledMap, on image: RGBImage) throws -> RGBImage {
        followsMap ? try MapImages.overlay(heat, on: image, alpha: alpha, strength: scaled.values)
                   : try MapImages.overlay(heat, on: image, alpha: alpha)
    }

    /// The sign to draw: the one set, else `all` for signed methods and `absolute` for the others.
    public func sign(signed: Bool) -> AttributionSign { sign ?? (signed ? .all : .absolute) }

    /// The colour map to draw `sign` with: the one set, else `rdbu` for `all`, `reds` for
    /// `negative` and `viridis` for the others.
    public func colormap(for sign: AttributionSign) -> Colormap {
        colormap ?? (sign == .all ? .rdbu : sign == .negative ? .reds : .viridis)
    }

    /// The map to draw: with `absolute`, the method's own map (|a| at most over colour channels for
    /// gradient methods, as the papers draw them); with the other signs, the sum of the signed
    /// attributions over colour channels when there are any (Captum's heat map), else the map.
    public func scaled(map: ArraySlice<Float>, raw: ArraySlice<Float>?, signed: Bool) -> (ScaledMap, Colormap) {
        let sign = sign(signed: signed)
        var values = Array(map)
        if sign != .absolute, let raw, raw.count == 3 * map.count {
            let n = map.count, base = raw.startIndex
            values = (0..<n).map { raw[base + $0] + raw[base + n + $0] + raw[base + 2 * n + $0] }
        }
        return (ScaledMap(values, sign: sign, outlierPercent: outlierPercent), colormap(for: sign))
    }
}
