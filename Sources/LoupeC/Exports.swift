import Foundation
import Interpret
import Models

// The C interface (`loupe.h`): opaque handles as integers, float32 arrays by pointer with their
// shapes, a status code from every call and the thread's last error as one line. Nothing is
// thrown or trapped across it.

/// The library's version (static storage).
@_cdecl("loupe_version")
public func loupe_version() -> UnsafePointer<CChar> { versionText.withUnsafeBufferPointer { $0.baseAddress! } }

private let versionText: ContiguousArray<CChar> = ContiguousArray(LoupeVersion.number.utf8CString)

/// Copies the calling thread's last error message into `buffer` (at most `capacity` bytes,
/// NUL-terminated); returns the message's full length in bytes.
@_cdecl("loupe_last_error")
public func loupe_last_error(_ buffer: UnsafeMutablePointer<CChar>?, _ capacity: Int) -> Int {
    let bytes = Array(LastError.message.utf8)
    if let buffer, capacity > 0 {
        let count = Swift.min(bytes.count, capacity - 1)
        for i in 0..<count { buffer[i] = CChar(bitPattern: bytes[i]) }
        buffer[count] = 0
    }
    return bytes.count
}

/// Opens a model from a path (or an architecture name) with JSON options; writes its handle.
@_cdecl("loupe_open")
public func loupe_open(_ path: UnsafePointer<CChar>?, _ options: UnsafePointer<CChar>?, _ handle: UnsafeMutablePointer<UInt64>?) -> Int32 {
    guarded {
        guard let handle else { throw CallError(.invalidArgument, "loupe_open: null handle pointer") }
        handle.pointee = 0
        let model = path.map { String(cString: $0) } ?? ModelLocator.defaultModel
        let session = try Session.open(path: model, bytes: nil, name: URL(fileURLWithPath: model).lastPathComponent,
                                       options: try Options(json: options, context: "open"))
        handle.pointee = Registry.add(session)
    }
}

/// Opens a model from the bytes of a file called `name` (ONNX, safetensors or a PyTorch
/// checkpoint); nothing is read from disk.
@_cdecl("loupe_open_bytes")
public func loupe_open_bytes(_ bytes: UnsafePointer<UInt8>?, _ count: Int, _ name: UnsafePointer<CChar>?,
                             _ options: UnsafePointer<CChar>?, _ handle: UnsafeMutablePointer<UInt64>?) -> Int32 {
    guarded {
        guard let handle else { throw CallError(.invalidArgument, "loupe_open_bytes: null handle pointer") }
        handle.pointee = 0
        guard let bytes, count > 0 else { throw CallError(.invalidArgument, "loupe_open_bytes: no bytes") }
        guard UInt64(count) * 3 <= MemoryBudget.hostAvailable else {
            throw CallError(.runtime, "a model of \(MemoryBudget.formatBytes(UInt64(count))) needs about three times that of memory to load; the host has \(MemoryBudget.formatBytes(MemoryBudget.hostAvailable)) available")
        }
        let fileName = name.map { String(cString: $0) } ?? "model"
        let session = try Session.open(path: nil, bytes: Array(UnsafeBufferPointer(start: bytes, count: count)), name: fileName,
                                       options: try Options(json: options, context: "open"))
        handle.pointee = Registry.add(session)
    }
}

/// Closes a model; closing one that is not open is an error, not a crash.
@_cdecl("loupe_close")
public func loupe_close(_ handle: UInt64) -> Int32 {
    guarded {
        guard Registry.removeSession(handle) else { throw CallError(.handle, "model handle \(handle) is not open") }
    }
}

/// A progress callback: context, what is being done, units done, units in all.
public typealias LoupeProgress = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?, Int64, Int64) -> Void

/// Sets the calling thread's progress callback (nil: none): later `loupe_run` calls on this
/// thread report their long loops (IG's steps, SmoothGrad's samples, occlusion's windows,
/// Score-CAM's channels, sanity stages, optimization steps) through it, on this thread. It
/// cannot fail, and leaves the thread's last error as it was.
@_cdecl("loupe_set_progress")
public func loupe_set_progress(_ callback: LoupeProgress?, _ context: UnsafeMutableRawPointer?) -> Int32 {
    ProgressCallback.set(callback.map { ProgressCallback(function: $0, context: context) })
    return Status.ok.rawValue
}

/// Runs the operation `op` on the model `handle` (0: a call that needs no model) with JSON
/// options and `count` named float32 arrays; writes the handle of its result.
@_cdecl("loupe_run")
public func loupe_run(_ handle: UInt64, _ op: UnsafePointer<CChar>?, _ options: UnsafePointer<CChar>?, _ count: Int32,
                      _ names: UnsafePointer<UnsafePointer<CChar>?>?, _ data: UnsafePointer<UnsafePointer<Float>?>?,
                      _ shapes: UnsafePointer<UnsafePointer<Int64>?>?, _ ranks: UnsafePointer<Int32>?,
                      _ result: UnsafeMutablePointer<UInt64>?) -> Int32 {
    guarded {
        guard let result else { throw CallError(.invalidArgument, "loupe_run: null result pointer") }
        result.pointee = 0
        guard let op else { throw CallError(.invalidArgument, "loupe_run: null operation") }
        let name = String(cString: op)
        let o = try Options(json: options, context: name)
        var a = try Arrays(count: count, names: names, data: data, shapes: shapes, ranks: ranks, context: name)
        let work = { handle == 0 ? try Calls.run(name, o, &a) : try Registry.session(handle).run(name, o, &a) }
        let r = try ProgressCallback.current.map { callback in try Interpret.Progress.observing(callback.report) { try work() } } ?? work()
        result.pointee = Registry.add(r)
    }
}

/// The JSON text of a result (valid until the result is freed).
@_cdecl("loupe_result_json")
public func loupe_result_json(_ result: UInt64, _ text: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Int32 {
    guarded {
        guard let text else { throw CallError(.invalidArgument, "loupe_result_json: null pointer") }
        let r = try Registry.result(result)
        text.pointee = r.json.withUnsafeBufferPointer { $0.baseAddress }
    }
}

/// The values and shape of a result's array `name` (valid until the result is freed); the
/// JSON text's "arrays" object lists the names and shapes.
@_cdecl("loupe_result_array")
public func loupe_result_array(_ result: UInt64, _ name: UnsafePointer<CChar>?, _ data: UnsafeMutablePointer<UnsafePointer<Float>?>?,
                               _ shape: UnsafeMutablePointer<UnsafePointer<Int64>?>?, _ rank: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded {
        guard let name, let data, let shape, let rank else { throw CallError(.invalidArgument, "loupe_result_array: null pointer") }
        let r = try Registry.result(result)
        let key = String(cString: name)
        guard let array = r.arrays[key] else { throw CallError(.invalidArgument, "the result has no array \(key)") }
        data.pointee = array.values.withUnsafeBufferPointer { $0.baseAddress }
        shape.pointee = array.shape.withUnsafeBufferPointer { $0.baseAddress }
        rank.pointee = Int32(array.shape.count)
    }
}

/// Frees a result.
@_cdecl("loupe_result_free")
public func loupe_result_free(_ result: UInt64) -> Int32 {
    guarded {
        guard Registry.removeResult(result) else { throw CallError(.handle, "result handle \(result) is not open") }
    }
}
