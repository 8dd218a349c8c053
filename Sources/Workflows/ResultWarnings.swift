import Interpret

/// The lines that say when a result says nothing: a flat output, a target the model does not
/// see, a map that is all zero or not finite. `loupe classify`, `saliency` and `sanity` print
/// them on stderr and record them (the `warnings` arrays of their JSON, and the reports).
public enum ResultWarnings {
    /// The line for image `i` when its output is flat (`ClassScores.isFlat`); nil otherwise.
    public static func flatOutput(_ scores: ClassScores, _ i: Int) -> String? {
        guard scores.isFlat(i) else { return nil }
        return "the model's output is flat (every class's probability within 1e-6 of 1/\(scores.classes)"
            + (scores.dense == nil ? "" : " at every pixel") + "): its results say nothing about the image (untrained or random weights?)"
    }

    /// The line when the target's probability (`mean`: its mean over a region) is below 1e-4;
    /// nil otherwise.
    public static func unlikelyTarget(probability: Float, mean: Bool = false) -> String? {
        guard probability < 1e-4 else { return nil }
        return "the target's \(mean ? "mean " : "")probability is \(String(format: "%.2g", probability)), below 1e-4: the maps explain a class the model does not see in the image"
    }

    /// The line when method `name`'s map `values` is all zero or holds a value that is not
    /// finite; nil otherwise.
    public static func emptyMap(_ name: String, _ values: some Collection<Float>) -> String? {
        if let bad = values.first(where: { !$0.isFinite }) { return "\(name): the map holds \(bad) (not finite)" }
        if values.allSatisfy({ $0 == 0 }) { return "\(name): the map is all zero" }
        return nil
    }

    /// Image `i`'s lines for a run on `scores` whose target has `probability` (nil: an objective
    /// other than a class), with each method's map: the flat output first, then the target,
    /// then the maps.
    public static func lines(_ scores: ClassScores, _ i: Int, probability: Float?, mean: Bool = false,
                             maps: [(name: String, values: [Float])]) -> [String] {
        var lines: [String] = []
        if let flat = flatOutput(scores, i) {
            lines.append(flat)
        } else if let probability, let unlikely = unlikelyTarget(probability: probability, mean: mean) {
            lines.append(unlikely)
        }
        return lines + maps.compactMap { emptyMap($0.name, $0.values) }
    }
}
