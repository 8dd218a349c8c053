import Foundation

/// "850 ms", "12.3 s", "2 min 5 s".
public func formatDuration(seconds s: Double) -> String {
    s < 1 ? String(format: "%.0f ms", s * 1000) : s < 60 ? String(format: "%.1f s", s) : String(format: "%d min %d s", Int(s) / 60, Int(s) % 60)
}

/// The name of class `index` among `names`, or "class K" without names.
public func classLabel(_ index: Int, names: [String]?) -> String {
    names.map { $0[index] } ?? "class \(index)"
}

/// A finite number as JSON has it, else null (NaN and infinities have no JSON form).
public func jsonNumber(_ v: Float) -> Any { v.isFinite ? v as Any : NSNull() }
