import Dispatch
import Foundation
import Synchronization

/// SIGINT and SIGTERM: the run stops at once, wherever it is, removes the staging folder it was
/// writing (if any; `OutputFolder` registers it) and exits 130 or 143, the shell's codes for
/// those signals. Before the save phase no output folder exists yet, so nothing is left behind;
/// a SIGKILL can still leave a staging folder, which the next run into the same folder removes
/// (`OutputFolder.removeStaleStaging`).
public enum Interrupts {
    private static let staging = Mutex<Set<String>>([])
    private static let sources = Mutex<[any DispatchSourceSignal]>([])
    /// Held while results are renamed into --out: a signal then waits (a few milliseconds) for
    /// the renames to finish, so --out holds the whole new set, never a part of it.
    private static let renaming = Mutex<Void>(())

    /// Installs the handlers (once per process; call before any work).
    public static func install() {
        sources.withLock { sources in
            guard sources.isEmpty else { return }
            for (number, code) in [(SIGINT, Int32(130)), (SIGTERM, Int32(143))] {
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler {
                    renaming.withLock { _ in
                        for path in staging.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) }
                        warn("interrupted (\(number == SIGINT ? "SIGINT" : "SIGTERM"))")
                        _exit(code)
                    }
                }
                source.resume()
                sources.append(source)
            }
        }
    }

    /// Runs `body` (the renames into --out) with signals held off until it returns.
    static func whileRenaming(_ body: () throws -> Void) throws {
        try renaming.withLock { _ in try body() }
    }

    static func register(_ url: URL) { _ = staging.withLock { $0.insert(url.path) } }
    static func unregister(_ url: URL) { _ = staging.withLock { $0.remove(url.path) } }
}
