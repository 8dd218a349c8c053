import BackendCore
/// A restricted reader for the pickles inside PyTorch checkpoints. It understands only what a
/// state_dict needs (dicts, lists, tuples, strings, numbers, OrderedDict, tensor rebuild calls,
/// storage references) and refuses every other global with an error naming it: nothing is ever
/// imported or executed, so a malicious checkpoint cannot run code.
final class PickleList { var items: [PickleValue] = [] }
final class PickleDict { var items: [(key: PickleValue, value: PickleValue)] = [] }

enum PickleDType: String, Sendable {
    case float32, float16, bfloat16, float64, int64, int32, int16, int8, uint8, bool
    var size: Int {
        switch self {
        case .float64, .int64: 8
        case .float32, .int32: 4
        case .float16, .bfloat16, .int16: 2
        case .int8, .uint8, .bool: 1
        }
    }
    /// From a storage class name ("FloatStorage").
    init?(storage: String) {
        switch storage {
        case "FloatStorage": self = .float32
        case "HalfStorage": self = .float16
        case "BFloat16Storage": self = .bfloat16
        case "DoubleStorage": self = .float64
        case "LongStorage": self = .int64
        case "IntStorage": self = .int32
        case "ShortStorage": self = .int16
        case "CharStorage": self = .int8
        case "ByteStorage": self = .uint8
        case "BoolStorage": self = .bool
        default: return nil
        }
    }
}

struct StorageRef { let key: String; let dtype: PickleDType; let count: Int }
struct TensorRef { let storage: StorageRef; let offset: Int; let size: [Int]; let stride: [Int] }

indirect enum PickleValue {
    case none, mark
    case bool(Bool)
    case int(Int)
    /// An integer too wide for Int (the legacy format's magic number), as little-endian bytes.
    case longBytes([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    case global(String)
    case storage(StorageRef)
    case tensor(TensorRef)
}

struct PickleReader {
    static let allowedGlobals: Set<String> = [
        "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_parameter",
    ]

    let bytes: [UInt8]
    var position: Int

    init(_ bytes: [UInt8], at position: Int = 0) { self.bytes = bytes; self.position = position }

    private mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, position + n <= bytes.count else { throw WeightFileError("pickle: truncated data") }
        defer { position += n }
        return bytes[position..<(position + n)]
    }
    private mutating func uint(_ n: Int) throws -> Int {
        try take(n).reversed().reduce(0) { $0 << 8 | Int($1) }
    }
    private mutating func line() throws -> String {
        guard let end = bytes[position...].firstIndex(of: 0x0A) else { throw WeightFileError("pickle: truncated data") }
        defer { position = end + 1 }
        return printable(String(decoding: bytes[position..<end], as: UTF8.self))
    }

    private func global(_ module: String, _ name: String) throws -> PickleValue {
        let full = printable(module + "." + name)
        if module == "torch", name.hasSuffix("Storage"), PickleDType(storage: name) != nil { return .global(full) }
        guard PickleReader.allowedGlobals.contains(full) else {
            throw WeightFileError("refusing to load: the pickle asks for \(full); only state_dicts of tensors are read, and nothing in a checkpoint is ever executed")
        }
        return .global(full)
    }

    /// Reads one pickle (up to STOP) and returns its value.
    mutating func read() throws -> PickleValue {
        var stack: [PickleValue] = []
        var memo: [Int: PickleValue] = [:]
        func pop() throws -> PickleValue {
            guard let v = stack.popLast() else { throw WeightFileError("pickle: stack underflow (corrupt data)") }
            return v
        }
        func popMark() throws -> [PickleValue] {
            guard let m = stack.lastIndex(where: { if case .mark = $0 { return true }; return false }) else {
                throw WeightFileError("pickle: missing mark (corrupt data)")
            }
            let items = Array(stack[(m + 1)...])
            stack.removeSubrange(m...)
            return items
        }
        func int(_ v: PickleValue) throws -> Int {
            guard case .int(let i) = v else { throw WeightFileError("pickle: expected an integer") }
            return i
        }
        while true {
            guard stack.count < 100_000, memo.count < 10_000_000 else { throw WeightFileError("pickle: too deeply nested") }
            let op = try take(1).first!
            switch op {
            case 0x80: _ = try take(1)                                   // PROTO
            case 0x95: _ = try take(8)                                   // FRAME
            case 0x2E: return try pop()                                  // STOP
            case 0x28: stack.append(.mark)                               // MARK
            case 0x7D: stack.append(.dict(PickleDict()))                 // EMPTY_DICT
            case 0x5D: stack.append(.list(PickleList()))                 // EMPTY_LIST
            case 0x29: stack.append(.tuple([]))                          // EMPTY_TUPLE
            case 0x4E: stack.append(.none)                               // NONE
            case 0x88: stack.append(.bool(true))                         // NEWTRUE
            case 0x89: stack.append(.bool(false))                        // NEWFALSE
            case 0x4A: stack.append(.int(Int(Int32(truncatingIfNeeded: try uint(4)))))  // BININT
            case 0x4B: stack.append(.int(try uint(1)))                   // BININT1
            case 0x4D: stack.append(.int(try uint(2)))                   // BININT2
            case 0x8A:                                                   // LONG1
                let n = try uint(1)
                let raw = Array(try take(n))
                if n <= 8 {
                    var v: Int64 = 0
                    for (i, b) in raw.enumerated() { v |= Int64(b) << (8 * Int64(i)) }
                    if n > 0, n < 8, raw[n - 1] & 0x80 != 0 { v -= Int64(1) << (8 * Int64(n)) }
                    stack.append(.int(Int(v)))
                } else {
                    stack.append(.longBytes(raw))
                }
            case 0x47:                                                   // BINFLOAT (big-endian)
                let b = try take(8)
                stack.append(.float(Double(bitPattern: b.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })))
            case 0x58, 0x8C, 0x8D:                                       // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
                let n = try uint(op == 0x58 ? 4 : op == 0x8C ? 1 : 8)
                // Every string made printable as it is read: keys, globals and storage names reach messages.
                stack.append(.string(printable(String(decoding: try take(n), as: UTF8.self))))
            case 0x43, 0x42:                                             // SHORT_BINBYTES, BINBYTES
                stack.append(.bytes(Array(try take(try uint(op == 0x43 ? 1 : 4)))))
            case 0x71: memo[try uint(1)] = stack.last                    // BINPUT
            case 0x72: memo[try uint(4)] = stack.last                    // LONG_BINPUT
            case 0x94: memo[memo.count] = stack.last                     // MEMOIZE
            case 0x68, 0x6A:                                             // BINGET, LONG_BINGET
                let key = try uint(op == 0x68 ? 1 : 4)
                guard let v = memo[key] else { throw WeightFileError("pickle: unknown memo \(key) (corrupt data)") }
                stack.append(v)
            case 0x30: _ = try pop()                                     // POP
            case 0x31: _ = try popMark()                                 // POP_MARK
            case 0x32: stack.append(try pop()); stack.append(stack.last!) // DUP
            case 0x74: stack.append(.tuple(try popMark()))               // TUPLE
            case 0x85: stack.append(.tuple([try pop()]))                 // TUPLE1
            case 0x86: let b = try pop(); let a = try pop(); stack.append(.tuple([a, b]))        // TUPLE2
            case 0x87: let c = try pop(); let b = try pop(); let a = try pop(); stack.append(.tuple([a, b, c]))  // TUPLE3
            case 0x6C: let l = PickleList(); l.items = try popMark(); stack.append(.list(l))  // LIST
            case 0x64:                                                   // DICT
                let items = try popMark()
                guard items.count % 2 == 0 else { throw WeightFileError("pickle: odd dict items (corrupt data)") }
                let d = PickleDict()
                for i in stride(from: 0, to: items.count, by: 2) { d.items.append((items[i], items[i + 1])) }
                stack.append(.dict(d))
            case 0x61:                                                   // APPEND
                let v = try pop()
                guard case .list(let l)? = stack.last else { throw WeightFileError("pickle: APPEND to a non-list") }
                l.items.append(v)
            case 0x65:                                                   // APPENDS
                let items = try popMark()
                guard case .list(let l)? = stack.last else { throw WeightFileError("pickle: APPENDS to a non-list") }
                l.items += items
            case 0x73:                                                   // SETITEM
                let v = try pop(), k = try pop()
                guard case .dict(let d)? = stack.last else { throw WeightFileError("pickle: SETITEM on a non-dict") }
                d.items.append((k, v))
            case 0x75:                                                   // SETITEMS
                let items = try popMark()
                guard items.count % 2 == 0, case .dict(let d)? = stack.last else { throw WeightFileError("pickle: bad SETITEMS (corrupt data)") }
                for i in stride(from: 0, to: items.count, by: 2) { d.items.append((items[i], items[i + 1])) }
            case 0x63:                                                   // GLOBAL
                let module = try line(), name = try line()
                stack.append(try global(module, name))
            case 0x93:                                                   // STACK_GLOBAL
                guard case .string(let name) = try pop(), case .string(let module) = try pop() else {
                    throw WeightFileError("pickle: bad STACK_GLOBAL")
                }
                stack.append(try global(module, name))
            case 0x51:                                                   // BINPERSID
                guard case .tuple(let pid) = try pop(), pid.count >= 5, case .string("storage") = pid[0],
                      case .global(let type) = pid[1], case .string(let key) = pid[2],
                      let dtype = PickleDType(storage: String(type.split(separator: ".").last ?? "")) else {
                    throw WeightFileError("pickle: unsupported persistent id (not a tensor storage)")
                }
                let count = try int(pid[4])
                guard count >= 0 else { throw WeightFileError("pickle: negative storage size") }
                stack.append(.storage(StorageRef(key: key, dtype: dtype, count: count)))
            case 0x52:                                                   // REDUCE
                guard case .tuple(let args) = try pop(), case .global(let callable) = try pop() else {
                    throw WeightFileError("pickle: REDUCE without a known callable")
                }
                stack.append(try reduce(callable, args))
            case 0x62: _ = try pop()                                     // BUILD: state of an OrderedDict or tensor, unused
            default:
                throw WeightFileError(String(format: "pickle: unsupported opcode 0x%02x at byte %d (not a plain state_dict)", op, position - 1))
            }
        }
    }

    private func reduce(_ callable: String, _ args: [PickleValue]) throws -> PickleValue {
        func ints(_ v: PickleValue) throws -> [Int] {
            guard case .tuple(let items) = v else { throw WeightFileError("pickle: expected a tuple of sizes") }
            return try items.map { guard case .int(let i) = $0 else { throw WeightFileError("pickle: expected integer sizes") }; return i }
        }
        switch callable {
        case "collections.OrderedDict":
            return .dict(PickleDict())
        case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
            guard args.count >= 4, case .storage(let s) = args[0], case .int(let offset) = args[1] else {
                throw WeightFileError("pickle: malformed tensor record")
            }
            return .tensor(TensorRef(storage: s, offset: offset, size: try ints(args[2]), stride: try ints(args[3])))
        case "torch._utils._rebuild_parameter":
            guard let data = args.first else { throw WeightFileError("pickle: malformed parameter record") }
            return data
        default:
            throw WeightFileError("refusing to load: the pickle calls \(callable)")
        }
    }
}
