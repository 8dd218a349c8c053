import Foundation
import Synchronization
import Testing

/// Times each test case's own body (not the time it waited for a thread: Swift Testing's
/// "passed after" counts from when the test was scheduled, which under parallel runs says little)
/// and appends "seconds<TAB>test" to the file LOUPE_TEST_TIMES names (`make swift-test` sets it
/// and prints the slowest ten). Every suite carries it: `@Suite(.timed)`.
public struct Timed: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let start = ContinuousClock.now
        defer { Timed.record(ContinuousClock.now - start, test) }
        try await function()
    }

    static let file = Mutex<FileHandle?>({
        guard let path = ProcessInfo.processInfo.environment["LOUPE_TEST_TIMES"], !path.isEmpty else { return nil }
        if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
        let handle = FileHandle(forWritingAtPath: path)
        _ = try? handle?.seekToEnd()
        return handle
    }())

    static func record(_ elapsed: Duration, _ test: Test) {
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        let name = "\(test.id)"
        file.withLock { handle in
            handle?.write(Data(String(format: "%.3f\t%@\n", seconds, name).utf8))
        }
    }
}

extension Trait where Self == Timed {
    /// Times the suite's tests for `make swift-test`'s slowest-ten list.
    public static var timed: Timed { Timed() }
}
