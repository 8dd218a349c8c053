import Synchronization

/// Progress of the long loops (Score-CAM's channel batches, occlusion's windows, SmoothGrad's
/// samples, IG's steps, deletion/insertion curves, sanity stages): each reports how many of its
/// units are done to the process's handler, if one is set (the `loupe` binary sets one that
/// draws on stderr). Without one a report costs a lock and a nil check.
public enum Progress {
    /// Hears a loop's progress: what is being done, units done, units in all.
    public typealias Handler = @Sendable (_ what: String, _ done: Int, _ total: Int) -> Void
    private static let handler = Mutex<Handler?>(nil)
    private static let muted = Atomic<Int>(0)

    /// Sets the handler of every later report (nil: none).
    public static func setHandler(_ newHandler: Handler?) { handler.withLock { $0 = newHandler } }

    static func report(_ what: String, _ done: Int, _ total: Int) {
        guard muted.load(ordering: .relaxed) == 0, let h = handler.withLock({ $0 }) else { return }
        h(what, done, total)
    }

    /// Runs `body` with reports off (a loop whose own progress is reported in coarser units).
    static func muting<T>(_ body: () throws -> T) rethrows -> T {
        muted.add(1, ordering: .relaxed)
        defer { muted.subtract(1, ordering: .relaxed) }
        return try body()
    }
}
