import BackendCore
import Foundation

/// A float32 array with its shape, on the host.
public struct HostTensor: Sendable, Equatable {
    /// The tensor's dimensions, as the file stores them.
    public let shape: Shape
    /// Its values in row-major order, converted to float32.
    public let values: [Float]
    /// A tensor of `shape` holding `values` in row-major order.
    public init(shape: Shape, values: [Float]) { self.shape = shape; self.values = values }
}

/// Reads the safetensors format: an 8-byte little-endian header length, a JSON header mapping
/// names to {dtype, shape, data_offsets}, then raw little-endian data. F32 tensors are read
/// as they are; F16, BF16 and F64 are converted to float32, and so are integer and boolean
/// tensors (a torchvision state_dict's int64 `num_batches_tracked`: exact up to 2^24). Every
/// length and offset is checked
/// against the file, so a corrupt file throws instead of trapping.
public struct SafeTensorsFile: Sendable {
    /// Every tensor of the file by name.
    public let tensors: [String: HostTensor]
    /// The optional `__metadata__` string map.
    public let metadata: [String: String]

    /// A file that is not valid safetensors: truncated, a malformed header, offsets or a dtype it
    /// does not know.
    public struct FormatError: Error, CustomStringConvertible, Sendable {
        /// What is wrong with the file.
        public let message: String
        /// `safetensors: ` followed by the message.
        public var description: String { "safetensors: \(message)" }
    }

    /// Reads and checks the file at `url`; a `FormatError` names what is wrong.
    public init(url: URL) throws {
        try self.init(data: try InputFile.read(url.path, what: "weight file", limit: TorchCheckpoint.weightFileLimit))
    }

    /// Parses and checks a whole file held in memory.
    public init(data: Data) throws {
        let bytes = [UInt8](data)
        guard bytes.count >= 8 else { throw FormatError(message: "file of \(bytes.count) bytes is too short") }
        let headerLength = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[$1]) << (8 * UInt64($1)) }
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw FormatError(message: "header length \(headerLength) exceeds the file (\(bytes.count) bytes)")
        }
        // The reference library refuses headers over 100 MB (a small file could otherwise make the
        // JSON parser build a huge object).
        guard headerLength <= 100_000_000 else {
            throw FormatError(message: "header of \(headerLength) bytes is over the format's 100 MB limit")
        }
        let dataStart = 8 + Int(headerLength)
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart])) } catch {
            throw FormatError(message: "header is not valid JSON")
        }
        guard let header = json as? [String: Any] else { throw FormatError(message: "header is not a JSON object") }
        // The JSON parser keeps the last of two equal keys; the reference library refuses them.
        let written = SafeTensorsFile.topLevelKeyCount(bytes[8..<dataStart])
        guard written == header.count else {
            throw FormatError(message: "header names a tensor twice (\(written) keys, \(header.count) distinct)")
        }
        var tensors: [String: HostTensor] = [:]
        var metadata: [String: String] = [:]
        var extents: [(start: Int, end: Int, name: String)] = []
        for (raw, entry) in header {
            let name = printable(raw)
            if raw == "__metadata__" {
                metadata = (entry as? [String: String]) ?? [:]
                continue
            }
            guard let info = entry as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = SafeTensorsFile.integers(info["shape"]), let offsets = SafeTensorsFile.integers(info["data_offsets"]),
                  offsets.count == 2 else {
                throw FormatError(message: "tensor \(name): missing or malformed dtype, shape or data_offsets")
            }
            guard shape.allSatisfy({ $0 >= 0 && $0 < 1 << 31 }) else {
                throw FormatError(message: "tensor \(name): invalid shape \(shape)")
            }
            let (count, overflow) = shape.reduce((1, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d); return (p, acc.1 || o)
            }
            let width: Int
            switch dtype {
            case "F32", "I32": width = 4
            case "F16", "BF16", "I16": width = 2
            case "F64", "I64": width = 8
            case "I8", "U8", "BOOL": width = 1
            default: throw FormatError(message: "tensor \(name): dtype \(printable(dtype)) is not supported (F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL)")
            }
            guard !overflow, offsets[0] >= 0, offsets[1] >= offsets[0], offsets[1] - offsets[0] == count * width,
                  dataStart + offsets[1] <= bytes.count else {
                throw FormatError(message: "tensor \(name): data_offsets \(offsets) do not hold \(shape) of \(dtype) inside the file")
            }
            extents.append((offsets[0], offsets[1], name))
            let base = dataStart + offsets[0]
            var values = [Float](repeating: 0, count: count)
            for i in 0..<count {
                let at = base + i * width
                switch dtype {
                case "F32":
                    values[i] = Float(bitPattern: UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24)
                case "F64":
                    let bits = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) }
                    values[i] = Float(Double(bitPattern: bits))
                case "BF16":
                    values[i] = Float(bitPattern: (UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8) << 16)
                case "I64":
                    values[i] = Float(Int64(bitPattern: (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) }))
                case "I32":
                    values[i] = Float(Int32(bitPattern: (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[at + $1]) << (8 * UInt32($1)) }))
                case "I16":
                    values[i] = Float(Int16(bitPattern: UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8))
                case "I8":
                    values[i] = Float(Int8(bitPattern: bytes[at]))
                case "U8", "BOOL":
                    values[i] = Float(bytes[at])
                default:
                    values[i] = Float(Float16(bitPattern: UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8))
                }
            }
            tensors[name] = HostTensor(shape: Shape(shape), values: values)
        }
        // As the reference library validates: the tensors' byte ranges, in order, tile the data
        // exactly (no overlap, no gap, nothing after the last).
        var end = 0
        for e in extents.sorted(by: { ($0.start, $0.end) < ($1.start, $1.end) }) {
            guard e.start == end else {
                throw FormatError(message: "tensor \(e.name): data_offsets start at \(e.start), \(e.start < end ? "overlapping" : "leaving a gap after") the tensor before (which ends at \(end))")
            }
            end = e.end
        }
        guard end == bytes.count - dataStart else {
            throw FormatError(message: "the tensors hold \(end) bytes of data, the file \(bytes.count - dataStart)")
        }
        self.tensors = tensors
        self.metadata = metadata
    }

    /// How many keys the JSON object in `json` writes at its top level (equal keys counted each
    /// time): strings followed by `:` at depth 1, outside other strings.
    static func topLevelKeyCount(_ json: ArraySlice<UInt8>) -> Int {
        var depth = 0, count = 0, inString = false, escaped = false, stringDepth = 0, lastWasString = false
        for byte in json {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") {
                    inString = false
                    lastWasString = stringDepth == 1
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true; stringDepth = depth
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1; lastWasString = false
            case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1; lastWasString = false
            case UInt8(ascii: ":"): if lastWasString { count += 1 }; lastWasString = false
            case 0x20, 0x09, 0x0A, 0x0D: break
            default: lastWasString = false
            }
        }
        return count
    }

    /// A JSON array of integers written as integers (not 2.0, not 2.5), or nil.
    static func integers(_ value: Any?) -> [Int]? {
        guard let list = value as? [Any] else { return nil }
        var out: [Int] = []
        for item in list {
            guard let n = item as? NSNumber, !"fdFD".contains(String(cString: n.objCType)), let i = Int(exactly: n.int64Value),
                  n.doubleValue == Double(i) else { return nil }
            out.append(i)
        }
        return out
    }

    /// The tensor `name`, or an error naming it.
    public func tensor(_ name: String) throws -> HostTensor {
        guard let t = tensors[name] else { throw FormatError(message: "no tensor named \(name)") }
        return t
    }
}
