import Foundation
import Synchronization

/// What a call gives back: a JSON text and named float32 arrays, kept until `loupe_result_free`.
final class CallResult: @unchecked Sendable {
    let json: ContiguousArray<CChar>
    let arrays: [String: (values: ContiguousArray<Float>, shape: ContiguousArray<Int64>)]

    init(json: [String: Any], arrays: [String: HostArray] = [:]) throws {
        var object = json
        object["arrays"] = Dictionary(uniqueKeysWithValues: arrays.map { ($0.key, $0.value.shape) })
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        var text = ContiguousArray(data.map { CChar(bitPattern: $0) })
        text.append(0)
        self.json = text
        self.arrays = arrays.mapValues { (ContiguousArray($0.values), ContiguousArray($0.shape.map(Int64.init))) }
    }
}

/// Open handles by number: a number that is not open (closed twice, made up) is refused with a
/// status, never dereferenced. Sessions and results share one counter, so one is never taken
/// for the other.
enum Registry {
    private static let next = Atomic<UInt64>(1)
    private static let sessions = Mutex<[UInt64: Session]>([:])
    private static let results = Mutex<[UInt64: CallResult]>([:])

    static func add(_ session: Session) -> UInt64 {
        let id = next.add(1, ordering: .relaxed).oldValue
        sessions.withLock { $0[id] = session }
        return id
    }

    static func add(_ result: CallResult) -> UInt64 {
        let id = next.add(1, ordering: .relaxed).oldValue
        results.withLock { $0[id] = result }
        return id
    }

    static func session(_ id: UInt64) throws -> Session {
        guard let s = sessions.withLock({ $0[id] }) else { throw CallError(.handle, "model handle \(id) is not open (closed, or not from loupe_open)") }
        return s
    }

    static func result(_ id: UInt64) throws -> CallResult {
        guard let r = results.withLock({ $0[id] }) else { throw CallError(.handle, "result handle \(id) is not open (freed, or not from loupe_run)") }
        return r
    }

    @discardableResult
    static func removeSession(_ id: UInt64) -> Bool { sessions.withLock { $0.removeValue(forKey: id) != nil } }
    @discardableResult
    static func removeResult(_ id: UInt64) -> Bool { results.withLock { $0.removeValue(forKey: id) != nil } }
}
