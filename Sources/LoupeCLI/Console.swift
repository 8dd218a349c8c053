import Foundation

/// Where commands write their standard output: stdout, or a collector bound for one task (tests
/// run whole commands and read what they printed, while other tests run in parallel).
public enum Console {
    @TaskLocal public static var sink: (@Sendable (String) -> Void)?
}

/// Writes `text` to the command's output, flushed at once (so a long `bench` streams).
func emit(_ text: String, terminator: String = "\n") {
    if let sink = Console.sink {
        sink(text + terminator)
    } else {
        FileHandle.standardOutput.write(Data((text + terminator).utf8))
    }
}

/// A progress line on stderr: redrawn in place on a terminal, one line per report otherwise.
func progressLine(_ text: String, done: Bool = false) {
    let terminal = isatty(2) != 0
    let line = terminal ? "\r\u{1B}[K" + text + (done ? "\n" : "") : text + "\n"
    FileHandle.standardError.write(Data(line.utf8))
}

/// `[#####.....]` for a fraction in [0, 1].
func progressBar(_ fraction: Double, width: Int = 24) -> String {
    let filled = Int((Swift.min(Swift.max(fraction, 0), 1) * Double(width)).rounded())
    return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
}
