import Backend
import Device
import Foundation
import ImageIO
import Interpret
import Models
import WeightFiles

/// The status codes every `loupe_*` function returns (`loupe.h` names them).
enum Status: Int32 {
    /// Done.
    case ok = 0
    /// A bad argument: options, an array's shape or values, an unknown method or layer.
    case invalidArgument = 1
    /// A model or weight file that cannot be read.
    case model = 2
    /// An OpenCL device error.
    case device = 3
    /// A handle that is not open (closed, or never returned by this library).
    case handle = 4
    /// Anything else that stopped the work (a memory budget, a diverged optimization).
    case runtime = 5
}

/// A refused call: its status and a one-line message.
struct CallError: Error, CustomStringConvertible {
    let status: Status
    let description: String
    init(_ status: Status, _ description: String) { self.status = status; self.description = description }
}

/// A value per thread: a pthread key whose destructor releases each thread's box.
final class ThreadLocal<Value>: @unchecked Sendable {
    private final class Box { var value: Value; init(_ value: Value) { self.value = value } }
    private let key: pthread_key_t
    private let initial: Value

    init(_ initial: Value) {
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<AnyObject>.fromOpaque(pointer).release() }
        }
        self.key = key
        self.initial = initial
    }

    private var box: Box {
        if let pointer = pthread_getspecific(key) { return Unmanaged<Box>.fromOpaque(pointer).takeUnretainedValue() }
        let box = Box(initial)
        pthread_setspecific(key, Unmanaged.passRetained(box).toOpaque())
        return box
    }

    /// This thread's value.
    var value: Value {
        get { box.value }
        set { box.value = newValue }
    }
}

/// The last error message of each thread, for `loupe_last_error` (sqlite3's errmsg, per thread
/// as ONNX Runtime's statuses are per call).
enum LastError {
    static let storage = ThreadLocal("")
    static func set(_ message: String) { storage.value = message }
    static var message: String { storage.value }
}

/// Runs `body`, turning every thrown error into a status and the thread's last error; nothing
/// crosses the C boundary but the code.
func guarded(_ body: () throws -> Void) -> Int32 {
    do {
        try body()
        LastError.set("")
        return Status.ok.rawValue
    } catch {
        let (status, message) = classify(error)
        LastError.set(message.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? message)
        if message.contains("\n") { LastError.set(message.replacingOccurrences(of: "\n  ", with: "; ").replacingOccurrences(of: "\n", with: "; ")) }
        return status.rawValue
    }
}

func classify(_ error: any Error) -> (Status, String) {
    switch error {
    case let e as CallError: return (e.status, e.description)
    case let e as ModelError: return (e.description.hasPrefix("unknown layer") ? .invalidArgument : .model, e.description)
    case let e as InterpretError: return (.invalidArgument, e.description)
    case let e as DeviceChoiceError: return (.device, e.description)
    case let e as CLError: return (.device, e.description)
    case let e as BackendError: return (.invalidArgument, e.description)
    case let e as ImageError: return (.invalidArgument, e.description)
    case let e as WeightFileError: return (.model, e.description)
    default: return (.runtime, String(describing: error))
    }
}

/// The calling thread's progress callback (`loupe_set_progress`).
struct ProgressCallback: @unchecked Sendable {
    let function: LoupeProgress
    let context: UnsafeMutableRawPointer?

    static let storage = ThreadLocal<ProgressCallback?>(nil)
    static func set(_ callback: ProgressCallback?) { storage.value = callback }
    static var current: ProgressCallback? { storage.value }

    /// Calls the function with a C string of `what`.
    var report: Interpret.Progress.Handler {
        let (function, context) = (function, context)
        nonisolated(unsafe) let unsafeContext = context
        return { what, done, total in what.withCString { function(unsafeContext, $0, Int64(done), Int64(total)) } }
    }
}
