import Foundation

/// Where commands write their standard output: stdout, or a collector bound for one task (tests
/// run whole commands and read what they printed, while other tests run in parallel).
public enum Console {
    @TaskLocal public static var sink: (@Sendable (String) -> Void)?
    /// The command line recorded in reports and JSON files (default: the process's).
    @TaskLocal public static var arguments: [String]?
}

/// Writes `text` to the command's output, flushed at once (so a long `bench` streams). When the
/// output cannot be written (a full disk, a closed file), says so on stderr and exits with 74
/// (EX_IOERR): what the command computes is that output.
func emit(_ text: String, terminator: String = "\n") {
    if let sink = Console.sink {
        sink(text + terminator)
    } else if let failure = writeAll(1, text + terminator) {
        _ = writeAll(2, "Error: cannot write the output to stdout: \(failure)\n")
        exit(74)
    }
}

/// Writes all of `text` to file descriptor `fd`; the system's reason when it cannot.
func writeAll(_ fd: Int32, _ text: String) -> String? {
    let bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 {
            if errno == EINTR { continue }
            return String(cString: strerror(errno))
        }
        offset += n
    }
    return nil
}

/// A line on stderr (diagnostics; a stderr that cannot be written is ignored).
func warn(_ text: String) {
    _ = writeAll(2, text + "\n")
}

/// A progress line on stderr: redrawn in place on a terminal, one line per report otherwise.
func progressLine(_ text: String, done: Bool = false) {
    let terminal = isatty(2) != 0
    let line = terminal ? "\r\u{1B}[K" + text + (done ? "\n" : "") : text + "\n"
    _ = writeAll(2, line)
}

/// `[#####.....]` for a fraction in [0, 1].
func progressBar(_ fraction: Double, width: Int = 24) -> String {
    let filled = Int((Swift.min(Swift.max(fraction, 0), 1) * Double(width)).rounded())
    return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
}
