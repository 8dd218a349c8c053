import ArgumentParser
import Backend
import Foundation

/// Ends the process with `status`, after a signal's cleanup in progress (which ends it first).
private func finish(_ status: Int32) -> Never {
    Interrupts.settle()
    Glibc.exit(status)
}

extension Loupe {
    /// Runs the process's command line, as ArgumentParser's `main()` does, with three promises
    /// kept at the last step: help and version that cannot be written to stdout exit with 74, as
    /// any output does (`emit`); an error the system gave (a full disk, a read-only folder) is
    /// one line with the system's reason and exits with 74 when it was a write; and no message
    /// reaches the terminal with a control character other than its line breaks.
    public static func runMain(_ arguments: [String]? = nil) -> Never {
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
            finish(0)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                let text = fullMessage(for: error)
                if !text.isEmpty, let failure = writeAll(1, text + "\n") {
                    warn("Error: cannot write the output to stdout: \(failure)")
                    finish(74)
                }
                finish(0)
            }
            let ns = error as NSError
            if error is WriteFailure || ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain {
                warn("Error: " + printableLines(systemReason(error)))
                finish(isWriteFailure(error) ? 74 : 1)
            }
            let text = fullMessage(for: error)
            if !text.isEmpty { warn(printableLines(text)) }
            finish(code.rawValue)
        }
    }
}
