import BackendCore
import Foundation

/// Reads PyTorch checkpoints (`torch.save` of a state_dict) straight from the file, in both
/// formats: the zip archive of torch >= 1.6 (`<name>/data.pkl` plus raw storages under
/// `<name>/data/`) and the legacy sequential format (magic number, protocol, system info, the
/// pickle, its storage keys, then each storage's element count and bytes). The pickle goes
/// through `PickleReader`, which never executes anything. Tensors become float32 (half,
/// bfloat16, double and integer storages are converted); non-tensor entries are skipped.
public enum TorchCheckpoint {
    /// The largest weight file read (a file is read whole): 16 GiB, beyond any image network.
    public static let weightFileLimit = 16 << 30

    /// The state_dict in the file at `url` (torch.save's zip format or the legacy one), by
    /// parameter name; a `WeightFileError` naming the file otherwise.
    public static func load(url: URL) throws -> [String: HostTensor] {
        let data = try InputFile.read(url.path, what: "weight file", limit: weightFileLimit)
        do { return try load(bytes: [UInt8](data)) } catch let error as WeightFileError {
            throw WeightFileError("\(printable(url.lastPathComponent)): \(error.description)")
        }
    }

    /// The state_dict in a whole checkpoint held in memory.
    public static func load(bytes: [UInt8]) throws -> [String: HostTensor] {
        if ZipArchive.isZip(bytes) { return try loadZip(bytes) }
        if bytes.first == 0x80 { return try loadLegacy(bytes) }
        throw WeightFileError("not a PyTorch checkpoint (neither a zip archive nor a pickle)")
    }

    static func loadZip(_ bytes: [UInt8]) throws -> [String: HostTensor] {
        let zip = try ZipArchive(bytes)
        let pickles = zip.entries.keys.filter { $0 == "data.pkl" || $0.hasSuffix("/data.pkl") }
        guard pickles.count <= 1 else {
            throw WeightFileError("zip archive with \(pickles.count) data.pkl entries (\(pickles.sorted().prefix(4).joined(separator: ", "))): which one is the checkpoint is ambiguous, refused")
        }
        guard let pkl = pickles.first, let entry = zip.entries[pkl] else {
            throw WeightFileError("zip archive without data.pkl: not a torch.save checkpoint")
        }
        let prefix = String(pkl.dropLast("data.pkl".count))
        if let order = zip.entries[prefix + "byteorder"], String(decoding: try zip.data(order), as: UTF8.self) != "little" {
            throw WeightFileError("big-endian checkpoints are not supported")
        }
        var reader = PickleReader(Array(try zip.data(entry)))
        let root = try reader.read()
        return try materialize(root) { storage in
            guard let e = zip.entries[prefix + "data/" + storage.key] else {
                throw WeightFileError("storage \(storage.key) is missing from the archive")
            }
            let data = try zip.data(e)
            // As torch.load checks: the pickle's element count is the entry's size exactly.
            let (expected, overflow) = storage.count.multipliedReportingOverflow(by: storage.dtype.size)
            guard !overflow, expected == data.count else {
                throw WeightFileError("storage \(storage.key): the pickle gives \(storage.count) elements of \(storage.dtype.size) bytes, the archive holds \(data.count) bytes")
            }
            return data
        }
    }

    static func loadLegacy(_ bytes: [UInt8]) throws -> [String: HostTensor] {
        var reader = PickleReader(bytes)
        guard case .longBytes(let magic) = try reader.read(),
              magic == [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19] else {
            throw WeightFileError("a pickle without PyTorch's magic number: not a torch.save checkpoint")
        }
        guard case .int(1001) = try reader.read() else { throw WeightFileError("unsupported legacy checkpoint protocol") }
        if case .dict(let info) = try reader.read(),
           let little = info.items.first(where: { if case .string("little_endian") = $0.key { return true }; return false }),
           case .bool(false) = little.value {
            throw WeightFileError("big-endian checkpoints are not supported")
        }
        let root = try reader.read()
        guard case .list(let keyList) = try reader.read() else { throw WeightFileError("legacy checkpoint without storage keys") }
        var position = reader.position
        var storages: [String: ArraySlice<UInt8>] = [:]
        var refs: [String: StorageRef] = [:]
        collectStorages(root, into: &refs)
        for key in keyList.items {
            guard case .string(let k) = key, let ref = refs[k] else { throw WeightFileError("legacy checkpoint: unknown storage key") }
            guard position + 8 <= bytes.count else { throw WeightFileError("legacy checkpoint: truncated storage \(k)") }
            let count = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[position + $1]) << (8 * UInt64($1)) }
            let (length, overflow) = Int(clamping: count).multipliedReportingOverflow(by: ref.dtype.size)
            position += 8
            guard !overflow, count < UInt64(Int.max / 16), position + length <= bytes.count else {
                throw WeightFileError("legacy checkpoint: storage \(k) runs past the end of the file (truncated)")
            }
            guard count == UInt64(ref.count) else {
                throw WeightFileError("legacy checkpoint: storage \(k) holds \(count) elements, its pickle says \(ref.count)")
            }
            storages[k] = bytes[position..<(position + length)]
            position += length
        }
        return try materialize(root) { storage in
            guard let data = storages[storage.key] else { throw WeightFileError("storage \(storage.key) is missing") }
            return data
        }
    }

    static func collectStorages(_ v: PickleValue, into refs: inout [String: StorageRef]) {
        switch v {
        case .tensor(let t): refs[t.storage.key] = t.storage
        case .storage(let s): refs[s.key] = s
        case .dict(let d): for item in d.items { collectStorages(item.value, into: &refs) }
        case .list(let l): for item in l.items { collectStorages(item, into: &refs) }
        case .tuple(let items): for item in items { collectStorages(item, into: &refs) }
        default: break
        }
    }

    /// The name -> tensor entries of the state_dict in `root` (or in its "state_dict" / "model"
    /// entry), with a DataParallel "module." prefix removed.
    static func materialize(_ root: PickleValue, storage: (StorageRef) throws -> ArraySlice<UInt8>) throws -> [String: HostTensor] {
        guard case .dict(var dict) = root else {
            throw WeightFileError("the checkpoint holds a pickled object, not a state_dict; save model.state_dict() instead")
        }
        for wrapper in ["state_dict", "model"] {
            if let inner = dict.items.first(where: { if case .string(wrapper) = $0.key { return true }; return false }),
               case .dict(let d) = inner.value { dict = d }
        }
        var result: [String: HostTensor] = [:]
        for (key, value) in dict.items {
            guard case .string(let raw) = key, case .tensor(let t) = value else { continue }
            var name = printable(raw)
            if name.hasPrefix("module.") { name.removeFirst("module.".count) }
            guard result[name] == nil else { throw WeightFileError("the checkpoint holds two tensors named \(name)") }
            result[name] = try tensor(t, try storage(t.storage), name: name)
        }
        guard !result.isEmpty else { throw WeightFileError("the checkpoint holds no tensors") }
        return result
    }

    static func tensor(_ t: TensorRef, _ data: ArraySlice<UInt8>, name: String) throws -> HostTensor {
        guard t.size.count == t.stride.count, t.size.allSatisfy({ $0 >= 0 && $0 < 1 << 31 }), t.stride.allSatisfy({ $0 >= 0 }),
              t.offset >= 0 else { throw WeightFileError("tensor \(name): invalid size \(t.size) or stride \(t.stride)") }
        let count = t.size.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }
        let elementSize = t.storage.dtype.size
        let available = data.count / elementSize
        // The offset of the last element, in checked arithmetic: a crafted stride (2^62) or offset
        // must be refused, not overflow.
        var last = t.offset
        for (size, stride) in zip(t.size, t.stride) where size > 0 {
            let (step, over) = (size - 1).multipliedReportingOverflow(by: stride)
            let (sum, past) = last.addingReportingOverflow(step)
            guard !over, !past else {
                throw WeightFileError("tensor \(name): size \(t.size) with stride \(t.stride) at offset \(t.offset) reaches past any storage")
            }
            last = sum
        }
        guard count < 1 << 32, count == 0 || last < available else {
            throw WeightFileError("tensor \(name): \(t.size) at offset \(t.offset) does not fit its storage of \(available) elements (truncated or corrupt)")
        }
        let base = data.startIndex
        func element(_ i: Int) -> Float {
            let at = base + i * elementSize
            func le(_ n: Int) -> UInt64 { (0..<n).reduce(UInt64(0)) { $0 | UInt64(data[at + $1]) << (8 * UInt64($1)) } }
            switch t.storage.dtype {
            case .float32: return Float(bitPattern: UInt32(le(4)))
            case .float16: return Float(Float16(bitPattern: UInt16(le(2))))
            case .bfloat16: return Float(bitPattern: UInt32(le(2)) << 16)
            case .float64: return Float(Double(bitPattern: le(8)))
            case .int64: return Float(Int64(bitPattern: le(8)))
            case .int32: return Float(Int32(truncatingIfNeeded: le(4)))
            case .int16: return Float(Int16(truncatingIfNeeded: le(2)))
            case .int8: return Float(Int8(truncatingIfNeeded: le(1)))
            case .uint8, .bool: return Float(le(1))
            }
        }
        var values = [Float](repeating: 0, count: count)
        var index = [Int](repeating: 0, count: t.size.count)
        for i in 0..<count {
            var flat = t.offset
            for d in index.indices { flat += index[d] * t.stride[d] }
            values[i] = element(flat)
            var d = index.count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < t.size[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return HostTensor(shape: Shape(t.size), values: values)
    }
}
