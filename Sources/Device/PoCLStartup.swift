import Foundation
import Synchronization

/// PoCL (3.x) makes an empty `tempfile_XXXXXX` in its kernel cache when it starts, to see that
/// the folder is writable, and never removes it: one more file per process, thousands after a
/// test suite. The first enumeration of devices in a process notes which such files exist,
/// lets the driver start, and removes the empty ones that appeared meanwhile (this process's
/// probe; another process's probe is as unused). Nothing else in the cache is touched.
///
/// Before that, it turns off PoCL's work-group specialization unless the environment sets it:
/// PoCL otherwise compiles each kernel again for every local size it runs at, and a launch
/// that leaves the local size to the driver gets one per global size (the elementwise `add`
/// compiled 160 times in one test run). Without it each kernel compiles once per program: a
/// cold run of the model tests compiles 79 kernels instead of 384 (73 s instead of 113 s), and
/// the kernels' device times stay within this machine's run-to-run noise.
enum PoCLStartup {
    private static let done = Mutex<Bool>(false)

    /// The PoCL setting Loupe changes, and its value (an environment value wins).
    static let settings = ["POCL_WORK_GROUP_SPECIALIZATION": "0"]

    /// Runs `body` (the first enumeration of platforms and devices), then removes the probe.
    static func cleaningUp<T>(_ body: () throws(CLError) -> T) throws(CLError) -> T {
        let first = done.withLock { done in
            defer { done = true }
            return !done
        }
        if first { for (name, value) in settings { setenv(name, value, 0) } }
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
