import Foundation
import Synchronization

/// PoCL (3.x) makes an empty `tempfile_XXXXXX` in its kernel cache when it starts, to see that
/// the folder is writable, and never removes it: one more file per process, thousands after a
/// test suite. The first enumeration of devices in a process notes which such files exist,
/// lets the driver start, and removes the empty ones that appeared meanwhile (this process's
/// probe; another process's probe is as unused). Nothing else in the cache is touched.
enum PoCLStartup {
    private static let done = Mutex<Bool>(false)

    /// Runs `body` (the first enumeration of platforms and devices), then removes the probe.
    static func cleaningUp<T>(_ body: () throws(CLError) -> T) throws(CLError) -> T {
        let first = done.withLock { done in
            defer { done = true }
            return !done
        }
        guard first, let folder = kernelCache() else { return try body() }
        let before = probes(in: folder)
        defer { for name in probes(in: folder).subtracting(before) { unlink(folder + "/" + name) } }
        return try body()
    }

    /// PoCL's kernel cache: POCL_CACHE_DIR, else $XDG_CACHE_HOME/pocl/kcache, else
    /// ~/.cache/pocl/kcache.
    static func kernelCache() -> String? {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["POCL_CACHE_DIR"], !dir.isEmpty { return dir }
        if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/pocl/kcache" }
        return env["HOME"].map { $0 + "/.cache/pocl/kcache" }
    }

    /// Empty regular files named `tempfile_` and six characters in `folder`.
    static func probes(in folder: String) -> Set<String> {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return [] }
        return Set(names.filter { name in
            guard name.hasPrefix("tempfile_"), name.count == "tempfile_".count + 6 else { return false }
            var info = stat()
            return lstat(folder + "/" + name, &info) == 0 && info.st_mode & S_IFMT == S_IFREG && info.st_size == 0
        })
    }
}
