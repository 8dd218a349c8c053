import Foundation

/// Plain-text tables for a terminal or a log.
public enum TextTable {
    /// Left-aligned columns separated by two spaces, each line ending in a newline, trailing
    /// spaces trimmed; the first row is the header. Short rows leave their last columns empty.
    public static func format(_ rows: [[String]]) -> String {
        let columns = rows.map(\.count).max() ?? 0
        let widths = (0..<columns).map { c in rows.map { c < $0.count ? $0[c].count : 0 }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression) + "\n"
        }.joined()
    }
}
