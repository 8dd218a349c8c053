/// Text read from a file (a layer, node, key or pickle global name) as it may be printed or
/// used as a name: every control character (C0 but none kept, DEL, C1) and Unicode's
/// bidirectional controls are written as `\u{XX}`, so a crafted name can neither move the
/// cursor, retitle or clear the terminal, nor start a forged line of its own. Ordinary names
/// come back unchanged.
public func printable(_ text: String) -> String {
    guard text.unicodeScalars.contains(where: isUnprintable) else { return text }
    var out = ""
    for scalar in text.unicodeScalars {
        if isUnprintable(scalar) {
            out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
        } else {
            out.unicodeScalars.append(scalar)
        }
    }
    return out
}

/// `text` (a message that may hold several lines) with every control character but the line
/// feed written as `printable` writes it: the last guard before a message reaches the terminal.
public func printableLines(_ text: String) -> String {
    text.split(separator: "\n", omittingEmptySubsequences: false).map { printable(String($0)) }.joined(separator: "\n")
}

private func isUnprintable(_ s: Unicode.Scalar) -> Bool {
    switch s.value {
    case 0..<0x20, 0x7F..<0xA0: return true
    // Bidirectional embeddings, overrides and isolates; the line and paragraph separators.
    case 0x202A...0x202E, 0x2066...0x2069, 0x200E, 0x200F, 0x2028, 0x2029, 0x061C: return true
    default: return false
    }
}
