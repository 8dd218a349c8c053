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
