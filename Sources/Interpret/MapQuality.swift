import Foundation

/// Scores of one attribution map that need no model pass, as Quantus computes them: how
/// concentrated it is (Sparseness, Complexity) and, against a mask of where the evidence is
/// (`saliency --mask`), how much of it lies there (Relevance Mass Accuracy, Relevance Rank
/// Accuracy, the Pointing Game). Quantus normalizes a map by its largest |value| before each;
/// Loupe does so per map (Quantus by the largest over the whole batch it is given, which moves
/// Sparseness's 1e-7 offset when maps of one call differ in scale).
public struct MapQuality: Sendable, Equatable {
    /// The Gini index of |map| (Chalasani et al. 2020; Quantus `Sparseness`): 0 for a flat map,
    /// near 1 when a few pixels hold everything.
    public let sparseness: Double
    /// The entropy of |map| as a distribution over pixels (Bhatt et al. 2020; Quantus
    /// `Complexity`): at most ln(pixels), lower is simpler.
    public let complexity: Double
    /// The share of the map's sum inside the mask (Arras et al. 2022; Quantus
    /// `RelevanceMassAccuracy`); nil without a mask or for an empty one.
    public let massAccuracy: Double?
    /// The share of the mask's K pixels among the map's K largest (Quantus
    /// `RelevanceRankAccuracy`; ties ordered by pixel index); nil without a mask or for an empty one.
    public let rankAccuracy: Double?
    /// Whether a pixel of the map's largest value lies inside the mask (Zhang et al. 2018;
    /// Quantus `PointingGame`); nil without a mask or for an empty one.
    public let pointingGame: Bool?

    /// The scores of `map` (H x W, any sign), and against `mask` (H x W, true inside) when given.
    public init(map: ArraySlice<Float>, mask: [Bool]? = nil) throws {
        if let mask, mask.count != map.count {
            throw InterpretError("the mask has \(mask.count) pixels, the map \(map.count)")
        }
        let values = map.map(Double.init)
        let largest = values.map(abs).max() ?? 0
        // Quantus' normalise_by_max: a / max |a|, unless every value is 0.
        let normalized = largest == 0 ? values : values.map { $0 / largest }
        let absolute = normalized.map(abs)
        sparseness = MapQuality.gini(absolute)
        complexity = MapQuality.entropy(absolute)
        guard let mask, mask.contains(true) else { (massAccuracy, rankAccuracy, pointingGame) = (nil, nil, nil); return }
        // Signed, as Quantus' localisation metrics take them (abs=False).
        let total = normalized.reduce(0, +)
        massAccuracy = zip(normalized, mask).reduce(0) { $0 + ($1.1 ? $1.0 : 0) } / total
        let k = mask.lazy.filter { $0 }.count
        let order = normalized.indices.sorted { normalized[$0] > normalized[$1] || (normalized[$0] == normalized[$1] && $0 < $1) }
        rankAccuracy = Double(order.prefix(k).lazy.filter { mask[$0] }.count) / Double(k)
        let top = normalized.max() ?? 0
        pointingGame = normalized.indices.contains { normalized[$0] == top && mask[$0] }
    }

    /// sum_i (2 i - n - 1) a_(i) / (n sum a), a sorted ascending and each raised by 1e-7.
    static func gini(_ a: [Double]) -> Double {
        let sorted = a.map { $0 + 1e-7 }.sorted()
        let n = Double(sorted.count)
        guard n > 0 else { return 0 }
        var weighted = 0.0
        for (i, v) in sorted.enumerated() { weighted += (2 * Double(i + 1) - n - 1) * v }
        return weighted / (n * sorted.reduce(0, +))
    }

    /// -sum p log(p + 1e-12), p = a / sum a.
    static func entropy(_ a: [Double]) -> Double {
        let total = a.reduce(0, +)
        guard total > 0 else { return 0 }
        return -a.reduce(0) { sum, v in let p = v / total; return sum + p * Foundation.log(p + 1e-12) }
    }
}
