import Dispatch
import Foundation
import Synchronization

/// SIGINT and SIGTERM: the run stops at once, wherever it is, removes the staging folder it was
/// writing (if any; `OutputFolder` registers it) and the folders above --out it made for it,
/// and exits 130 or 143, the shell's codes for those signals. Before the save phase no output
/// folder exists yet, so nothing is left behind; while results are renamed into place the
/// signal waits for the rename (a few milliseconds). A SIGKILL can still leave a staging folder,
/// which the next run into the same folder removes (`OutputFolder.removeStaleStaging`).
public enum Interrupts {
    private static let staging = Mutex<Set<String>>([])
    /// Folders made above --out for this run, removed (when empty) on a signal.
    private static let made = Mutex<[String]>([])
    private static let sources = Mutex<[any DispatchSourceSignal]>([])
    /// Held while the staging folder is made and while results are renamed into --out: a signal
    /// then waits (a few milliseconds) for that to finish, so --out holds the whole new set,
    /// never a part of it, and no folder is made after the signal has removed what the run made.
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
                        // Both lists first: the run's own cleanup (an error from a write into
                        // the folder removed below) may unregister them meanwhile.
                        let (stagingFolders, madeFolders) = (staging.withLock({ $0 }), made.withLock({ $0 }))
                        let placeholders = stagingFolders.compactMap(removeWhileWritten)
                        // The last steps before exiting: what another thread writes now is lost with the process.
                        for path in placeholders { unlink(path) }
                        for path in madeFolders.reversed() { rmdir(path) }
                        warn("interrupted (\(number == SIGINT ? "SIGINT" : "SIGTERM"))")
                        _exit(code)
                    }
                }
                source.resume()
                sources.append(source)
            }
        }
    }

    /// Waits for a signal's cleanup in progress, if any (which then ends the process with the
    /// signal's status): the process must not exit with its own status halfway through it.
    public static func settle() {
        renaming.withLock { _ in }
    }

    /// Runs `body` (making the staging folder, the renames into --out) with signals held off
    /// until it returns.
    static func whileRenaming(_ body: () throws -> Void) throws {
        try renaming.withLock { _ in try body() }
    }

    /// Removes the folder at `path` that another thread may still be writing into: it is renamed
    /// away first and an empty file takes its name, so a write or a folder the other thread makes
    /// under the old path fails instead of bringing the folder back. Returns the placeholder's
    /// path, for the caller to unlink as its last step.
    static func removeWhileWritten(_ path: String) -> String? {
        let away = path + "-removing"
        guard rename(path, away) == 0 else { try? FileManager.default.removeItem(atPath: path); return nil }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd >= 0 { close(fd) }
        try? FileManager.default.removeItem(atPath: away)
        return fd >= 0 ? path : nil
    }

    static func register(_ url: URL) { _ = staging.withLock { $0.insert(url.path) } }
    static func registerMade(_ url: URL) { made.withLock { $0.append(url.path) } }
    static func unregisterMade(_ url: URL) { made.withLock { $0.removeAll { $0 == url.path } } }
    static func unregister(_ url: URL) { _ = staging.withLock { $0.remove(url.path) } }
}
