import Synchronization

/// Progress of the long loops (Score-CAM's channel batches, occlusion's windows, SmoothGrad's
/// samples, IG's steps, deletion/insertion curves, sanity stages): each reports how many of its
/// units are done to a handler, if one is set: the current task's (`observing`), else the
/// process's (`setHandler`; the `loupe` binary sets one that draws on stderr). Without either a
/// report costs two task-local reads, a lock and a nil check.
///
/// The task's handler and `muting` are task-local, so two attributions running side by side (two
/// tasks of one process, as in a test run) neither hear nor silence each other.
public enum Progress {
    /// Hears a loop's progress: what is being done, units done, units in all.
    public typealias Handler = @Sendable (_ what: String, _ done: Int, _ total: Int) -> Void
    private static let handler = Mutex<Handler?>(nil)
    @TaskLocal private static var taskHandler: Handler?
    @TaskLocal private static var muted = false

    /// Sets the handler of every later report made outside `observing` (nil: none).
    public static func setHandler(_ newHandler: Handler?) { handler.withLock { $0 = newHandler } }

    /// Runs `body` with the reports of this task (and of the tasks it starts) going to `handler`
    /// instead of the process's handler.
    public static func observing<T>(_ handler: @escaping Handler, _ body: () throws -> T) rethrows -> T {
        try $taskHandler.withValue(handler) { try body() }
    }

    /// Reports `done` of `total` units of `what` to the current handler (the task's, else the
    /// process's), unless muted.
    public static func report(_ what: String, _ done: Int, _ total: Int) {
        guard !muted, let h = taskHandler ?? handler.withLock({ $0 }) else { return }
        h(what, done, total)
    }

    /// Runs `body` with this task's reports off (a loop whose own progress is reported in coarser
    /// units).
    public static func muting<T>(_ body: () throws -> T) rethrows -> T {
        try $muted.withValue(true) { try body() }
    }
}
