import Foundation

/// The options of a call: a JSON object whose keys are read by type; a key of the wrong type,
/// or a key no reader asked for, is refused by name (an option is never ignored).
final class Options {
    private let values: [String: Any]
    private var read: Set<String> = []
    let context: String

    init(json: UnsafePointer<CChar>?, context: String) throws {
        self.context = context
        guard let json, json.pointee != 0 else { values = [:]; return }
        let data = Data(bytes: json, count: strlen(json))
        guard let object = try? JSONSerialization.jsonObject(with: data), let dictionary = object as? [String: Any] else {
            throw CallError(.invalidArgument, "\(context): the options are not a JSON object")
        }
        values = dictionary
    }

    private func value(_ key: String) -> Any? {
        read.insert(key)
        guard let v = values[key], !(v is NSNull) else { return nil }
        return v
    }

    func has(_ key: String) -> Bool { values[key] != nil && !(values[key] is NSNull) }

    func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v as? String else { throw CallError(.invalidArgument, "\(context): option \(key) must be a string") }
        return s
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard let b = v as? Bool else { throw CallError(.invalidArgument, "\(context): option \(key) must be true or false") }
        return b
    }

    /// An integer in `range`.
    func int(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let v = value(key) else { return nil }
        guard let n = v as? NSNumber, let d = Optional(n.doubleValue), d.rounded() == d, d >= Double(range.lowerBound), d <= Double(range.upperBound) else {
            throw CallError(.invalidArgument, "\(context): option \(key) must be an integer from \(range.lowerBound) to \(range.upperBound), got \(v)")
        }
        return Int(d)
    }

    func uint64(_ key: String) throws -> UInt64? {
        guard let v = value(key) else { return nil }
        guard let n = v as? NSNumber, n.doubleValue >= 0, n.doubleValue.rounded() == n.doubleValue, n.doubleValue < 1.8e19 else {
            throw CallError(.invalidArgument, "\(context): option \(key) must be a non-negative integer")
        }
        return n.uint64Value
    }

    /// A finite number in `range`.
    func float(_ key: String, in range: ClosedRange<Float> = -Float.greatestFiniteMagnitude...Float.greatestFiniteMagnitude) throws -> Float? {
        guard let v = value(key) else { return nil }
        guard let n = v as? NSNumber, n.floatValue.isFinite, range.contains(n.floatValue) else {
            throw CallError(.invalidArgument, "\(context): option \(key) must be a finite number from \(range.lowerBound) to \(range.upperBound), got \(v)")
        }
        return n.floatValue
    }

    func ints(_ key: String, in range: ClosedRange<Int>) throws -> [Int]? {
        guard let v = value(key) else { return nil }
        guard let list = v as? [Any] else { throw CallError(.invalidArgument, "\(context): option \(key) must be a list of integers") }
        return try list.map { item in
            guard let n = item as? NSNumber, n.doubleValue.rounded() == n.doubleValue, n.doubleValue >= Double(range.lowerBound), n.doubleValue <= Double(range.upperBound) else {
                throw CallError(.invalidArgument, "\(context): option \(key) holds \(item), not an integer from \(range.lowerBound) to \(range.upperBound)")
            }
            return Int(n.doubleValue)
        }
    }

    func floats(_ key: String) throws -> [Float]? {
        guard let v = value(key) else { return nil }
        guard let list = v as? [Any] else { throw CallError(.invalidArgument, "\(context): option \(key) must be a list of numbers") }
        return try list.map { item in
            guard let n = item as? NSNumber, n.floatValue.isFinite else { throw CallError(.invalidArgument, "\(context): option \(key) holds \(item), not a finite number") }
            return n.floatValue
        }
    }

    /// A list of integers (from `range`) and strings, in order, or one of them alone.
    func intsOrStrings(_ key: String, in range: ClosedRange<Int>) throws -> [Either]? {
        guard let v = value(key) else { return nil }
        let list = (v as? [Any]) ?? [v]
        return try list.map { item in
            if let text = item as? String { return .string(text) }
            guard let n = item as? NSNumber, n.doubleValue.rounded() == n.doubleValue,
                  n.doubleValue >= Double(range.lowerBound), n.doubleValue <= Double(range.upperBound) else {
                throw CallError(.invalidArgument, "\(context): option \(key) holds \(item), not an integer from \(range.lowerBound) to \(range.upperBound) or a name")
            }
            return .int(Int(n.doubleValue))
        }
    }

    /// An item of `intsOrStrings`.
    enum Either { case int(Int), string(String) }

    func strings(_ key: String) throws -> [String]? {
        guard let v = value(key) else { return nil }
        if let s = v as? String { return [s] }
        guard let list = v as? [String] else { throw CallError(.invalidArgument, "\(context): option \(key) must be a string or a list of strings") }
        return list
    }

    /// Refuses every key no reader asked for.
    func finish() throws {
        let unknown = Set(values.keys).subtracting(read).sorted()
        guard unknown.isEmpty else {
            throw CallError(.invalidArgument, "\(context): unknown option\(unknown.count > 1 ? "s" : "") \(unknown.joined(separator: ", "))")
        }
    }
}

/// One float32 array passed in or out: values and shape.
struct HostArray {
    var values: [Float]
    var shape: [Int]
}

/// The named arrays of a call, copied from the caller's buffers after checking each shape.
struct Arrays {
    private var arrays: [String: HostArray] = [:]
    private var read: Set<String> = []
    let context: String

    /// At most 2^31 values an array: a shape past it is refused before anything is read.
    static let maxValues = 1 << 31

    init(count: Int32, names: UnsafePointer<UnsafePointer<CChar>?>?, data: UnsafePointer<UnsafePointer<Float>?>?,
         shapes: UnsafePointer<UnsafePointer<Int64>?>?, ranks: UnsafePointer<Int32>?, context: String) throws {
        self.context = context
        guard count >= 0, count <= 64 else { throw CallError(.invalidArgument, "\(context): \(count) arrays (0 to 64)") }
        guard count == 0 || (names != nil && data != nil && shapes != nil && ranks != nil) else {
            throw CallError(.invalidArgument, "\(context): null array pointers")
        }
        for i in 0..<Int(count) {
            guard let namePointer = names![i], let values = data![i] else { throw CallError(.invalidArgument, "\(context): array \(i) has a null name or data") }
            let name = String(cString: namePointer)
            let rank = Int(ranks![i])
            guard (0...8).contains(rank), rank == 0 || shapes![i] != nil else { throw CallError(.invalidArgument, "\(context): array \(name) has rank \(rank) (0 to 8)") }
            var dims: [Int] = [], total = 1
            for d in 0..<rank {
                let dim = shapes![i]![d]
                guard dim >= 0, dim <= Int64(Self.maxValues) else { throw CallError(.invalidArgument, "\(context): array \(name) has dimension \(dim)") }
                let (product, overflow) = total.multipliedReportingOverflow(by: Int(dim))
                guard !overflow, product <= Self.maxValues else { throw CallError(.invalidArgument, "\(context): array \(name) has more than 2^31 values") }
                dims.append(Int(dim)); total = product
            }
            arrays[name] = HostArray(values: Array(UnsafeBufferPointer(start: values, count: total)), shape: dims)
        }
    }

    /// The array `name` when given, checked to be finite.
    mutating func optional(_ name: String) throws -> HostArray? {
        guard arrays[name] != nil else { read.insert(name); return nil }
        return try require(name)
    }

    /// The array `name`, required, finite, of `rank` (when given).
    mutating func require(_ name: String, rank: Int? = nil, finite: Bool = true) throws -> HostArray {
        read.insert(name)
        guard let a = arrays[name] else { throw CallError(.invalidArgument, "\(context): the array \(name) is missing") }
        if let rank, a.shape.count != rank {
            throw CallError(.invalidArgument, "\(context): \(name) must have \(rank) dimensions, got shape \(a.shape)")
        }
        if finite, let bad = a.values.firstIndex(where: { !$0.isFinite }) {
            throw CallError(.invalidArgument, "\(context): \(name) holds \(a.values[bad]) at flat index \(bad); every value must be finite")
        }
        return a
    }

    func finish() throws {
        let unknown = Set(arrays.keys).subtracting(read).sorted()
        guard unknown.isEmpty else { throw CallError(.invalidArgument, "\(context): unknown array\(unknown.count > 1 ? "s" : "") \(unknown.joined(separator: ", "))") }
    }
}
