import Backend
import Device
import Foundation

/// A small deterministic generator (SplitMix64), so every test draws the same numbers.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var generator: SplitMix64
    public init(seed: UInt64) { generator = SplitMix64(seed: seed) }
    public mutating func next() -> UInt64 { generator.next() }
    /// Uniform values in [lo, hi).
    public mutating func floats(_ count: Int, _ lo: Float = -1, _ hi: Float = 1) -> [Float] {
        (0..<count).map { _ in Float.random(in: lo..<hi, using: &self) }
    }
    /// Values in [-hi, -lo] or [lo, hi]: at least `lo` away from zero (away from ReLU's kink).
    public mutating func awayFromZero(_ count: Int, _ lo: Float = 0.05, _ hi: Float = 1) -> [Float] {
        (0..<count).map { _ in Float.random(in: lo..<hi, using: &self) * (Bool.random(using: &self) ? 1 : -1) }
    }
}

/// The largest error relative to the magnitude of the expected values:
/// max|a - e| / max(1e-6, max|e|). This is llm.c's and ggml's normalized comparison.
public func normalizedError(_ actual: [Float], _ expected: [Float]) -> Float {
    precondition(actual.count == expected.count, "sizes differ: \(actual.count) vs \(expected.count)")
    var worst: Float = 0
    var scale: Float = 1e-6
    for (a, e) in zip(actual, expected) {
        worst = Swift.max(worst, abs(a - e))
        scale = Swift.max(scale, abs(e))
        if a.isNaN != e.isNaN { return .infinity }
    }
    return worst / scale
}

/// max |a - e|, or infinity when the counts differ (a `zip` would compare the shorter prefix and
/// pass).
public func maxAbsDifference<A: Collection<Float>, E: Collection<Float>>(_ a: A, _ e: E) -> Float {
    guard a.count == e.count else { return .infinity }
    return zip(a, e).map { abs($0 - $1) }.max() ?? 0
}

/// Where OpenCL tests get their device. Without any OpenCL device they are skipped with a
/// message, unless LOUPE_REQUIRE_OPENCL=1 (set by .ci/run), which turns the skip into a failure.
public enum TestDevice {
    public static let required = ProcessInfo.processInfo.environment["LOUPE_REQUIRE_OPENCL"] == "1"

    /// The shared backend on the preferred device, or the reason there is none.
    public static let shared: Result<OpenCLBackend, Error> = {
        do {
            guard let device = ComputeDevice.preferred(among: try ComputeDevice.all()) else {
                throw BackendError("opencl", "no OpenCL device found (install pocl-opencl-icd, or run `make setup`)")
            }
            // The built-in tile and register block, whatever `loupe tune` stored for this device:
            // tests that try another one pass it (ConvTests' candidate sweeps).
            return .success(try OpenCLBackend(device: device, convTiling: device.kind == .gpu ? .gpu : .large, packing: .default))
        } catch {
            return .failure(error)
        }
    }()

    /// The backend, or nil after printing why the test is skipped. With LOUPE_REQUIRE_OPENCL=1
    /// the caller's `fail` is called instead (tests pass `{ Issue.record($0) }`).
    public static func backend(fail: (String) -> Void) -> OpenCLBackend? {
        switch shared {
        case .success(let b): return b
        case .failure(let error):
            let message = "OpenCL test skipped: \(error)"
            if required { fail(message + " (LOUPE_REQUIRE_OPENCL=1: OpenCL tests must run)") }
            else { FileHandle.standardError.write(Data((message + "\n").utf8)) }
            return nil
        }
    }
}

/// Central finite differences against an analytic backward pass. The scalar is
/// L = sum(forward(inputs) * r) for a fixed random r, so the analytic gradient of each input is
/// `backward(inputs, r)`. Checks the first and last coordinates and `samples` random ones of
/// every input whose gradient is given; returns one message per mismatch (empty when all agree).
/// Tolerance is relative to the gradient's own magnitude at those coordinates (the larger of the
/// analytic and the numeric, at least `floor`), so a gradient of r/1000 that is zero or doubled
/// fails as surely as one of size 1.
public func finiteDifferenceMismatches(
    inputs: [[Float]], eps: Float = 1e-2, samples: Int = 10, tolerance: Float = 2e-2, floor: Float = 1e-4, seed: UInt64 = 7,
    forward: ([[Float]]) throws -> [Float],
    backward: ([[Float]], [Float]) throws -> [[Float]?]
) throws -> [String] {
    var rng = SeededRandom(seed: seed)
    let y = try forward(inputs)
    let r = rng.floats(y.count)
    let analytic = try backward(inputs, r)
    func loss(_ xs: [[Float]]) throws -> Double {
        zip(try forward(xs), r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }
    var problems: [String] = []
    for (j, grad) in analytic.enumerated() {
        guard let grad else { continue }
        guard grad.count == inputs[j].count else {
            problems.append("input \(j): gradient has \(grad.count) values, input \(inputs[j].count)")
            continue
        }
        let count = inputs[j].count
        let picks = count <= samples + 2 ? Array(inputs[j].indices)
            : [0, count - 1] + (0..<samples).map { _ in Int.random(in: 0..<count, using: &rng) }
        let numeric = try picks.map { i -> Float in
            var plus = inputs, minus = inputs
            plus[j][i] += eps
            minus[j][i] -= eps
            return Float((try loss(plus) - loss(minus)) / Double(2 * eps))
        }
        let scale = Swift.max(floor, picks.map { abs(grad[$0]) }.max() ?? 0, numeric.map(abs).max() ?? 0)
        for (i, n) in zip(picks, numeric) where abs(n - grad[i]) > tolerance * scale {
            problems.append("input \(j)[\(i)]: analytic \(grad[i]), finite difference \(n) (scale \(scale))")
        }
    }
    return problems
}

/// Whether torchvision's MobileNetV2 weights are installed (`make models`); when they are not,
/// prints why a test is skipped, or calls `fail` under LOUPE_REQUIRE_MODELS=1 (CI).
public func realWeightsPresent(fail: (String) -> Void) -> Bool {
    let env = ProcessInfo.processInfo.environment
    let home = env["TORCH_HOME"] ?? (NSHomeDirectory() + "/.cache/torch")
    let path = home + "/hub/checkpoints/mobilenet_v2-b0353104.pth"
    if FileManager.default.fileExists(atPath: path) { return true }
    let message = "real-model test skipped: \(path) is absent (run `make models`)"
    if env["LOUPE_REQUIRE_MODELS"] == "1" { fail(message) } else { FileHandle.standardError.write(Data((message + "\n").utf8)) }
    return false
}

/// Mutations per parser in the fuzz tests: `normal` in `make test`, LOUPE_FUZZ_MUTATIONS when set
/// (`make fuzz` sets 100,000). Each fuzz test prints its count and outcome on one line.
public func fuzzMutations(_ normal: Int) -> Int {
    ProcessInfo.processInfo.environment["LOUPE_FUZZ_MUTATIONS"].flatMap { Int($0) }.map { Swift.max($0, 1) } ?? normal
}

/// One line for `make fuzz` to collect.
/// Whether `text` (a message or a name read from a file) holds a control character other than
/// the line breaks of a message: what could drive a terminal or forge a line.
public func holdsControlCharacters(_ text: String) -> Bool {
    text.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\n") || (0x7F..<0xA0).contains($0.value) || (0x202A...0x202E).contains($0.value) }
}

public func reportFuzz(_ what: String, mutations: Int, refused: Int) {
    // A trap would have ended the process before this line.
    print("fuzz \(what): \(mutations) mutations, \(mutations - refused) loaded and checked, \(refused) refused with a message")
}

/// Deterministic mutations of a valid file for parser robustness tests: truncation, bit flips,
/// random bytes, 2/4/8-byte fields overwritten with values near 2^31, 2^32, 2^62 and 2^63 (or
/// negative), duplicated and deleted spans, and control characters (ESC sequences, a newline that
/// would forge a line, BEL, a bidirectional override) written into the bytes, where names live.
/// Mutation i of a given seed is always the same bytes.
public struct Mutator {
    public let original: [UInt8]
    var rng: SeededRandom

    public init(_ original: [UInt8], seed: UInt64 = 11) {
        self.original = original
        rng = SeededRandom(seed: seed)
    }

    mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(rng.next() % UInt64(n)) }

    /// The next mutated copy and what was done to it.
    public mutating func next() -> (bytes: [UInt8], what: String) {
        var b = original
        guard !b.isEmpty else { return (b, "empty") }
        switch below(8) {
        case 0:
            let n = below(b.count)
            return (Array(b.prefix(n)), "truncated to \(n)")
        case 1:
            let flips = 1 + below(8)
            for _ in 0..<flips { b[below(b.count)] ^= UInt8(1 << below(8)) }
            return (b, "\(flips) bit flips")
        case 2:
            let at = below(b.count), n = Swift.min(1 + below(16), b.count - at)
            for i in at..<(at + n) { b[i] = UInt8(truncatingIfNeeded: rng.next()) }
            return (b, "\(n) random bytes at \(at)")
        case 3:
            // A length-like field: little- or big-endian, 2, 4 or 8 bytes of a huge or negative value.
            let width = [2, 4, 8][below(3)]
            let at = below(Swift.max(b.count - width, 1))
            let values: [UInt64] = [0xFFFF_FFFF_FFFF_FFFF, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, 0x4000_0000_0000_0000,
                                    0x8000_0000, 0xFFFF_FFFF, 0xFFFF_FFFE, 0x7FFF_FFFF, 0x1_0000_0000, 0]
            let v = values[below(values.count)]
            let bigEndian = below(2) == 1
            for i in 0..<Swift.min(width, b.count - at) {
                let shift = UInt64(bigEndian ? (width - 1 - i) * 8 : i * 8)
                b[at + i] = UInt8(truncatingIfNeeded: v >> shift)
            }
            return (b, "\(width)-byte field at \(at) set to \(v) (\(bigEndian ? "big" : "little") endian)")
        case 7:
            // A protocol-buffer varint (after a byte that reads as a varint field's tag: the dims,
            // pads, strides and other integers of an ONNX file) set to a value near 2^31, 2^32,
            // 2^62 or 2^63, or negative (ten bytes, as protobuf writes a negative int64).
            guard let tag = (below(b.count)..<b.count).first(where: { b[$0] & 7 == 0 && b[$0] != 0 }), tag + 1 < b.count else {
                return (b, "no varint field")
            }
            var end = tag + 1
            while end < b.count, b[end] & 0x80 != 0, end - tag < 10 { end += 1 }
            end = Swift.min(end + 1, b.count)
            let values: [UInt64] = [0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x1_0000_0000, 0x4000_0000_0000_0000, 0x7FFF_FFFF_FFFF_FFFF,
                                    0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFE]
            var v = values[below(values.count)]
            var varint: [UInt8] = []
            repeat {
                varint.append(UInt8(v & 0x7F) | (v >= 0x80 ? 0x80 : 0))
                v >>= 7
            } while v > 0
            b.replaceSubrange((tag + 1)..<end, with: varint)
            return (b, "varint after byte \(tag) set to \(varint.count) bytes")
        case 6:
            let sequences = ["\u{1B}[2J", "\u{1B}]0;title\u{7}", "\nError: forged", "\r", "\u{202E}"]
            let text = Array(sequences[below(sequences.count)].utf8)
            let at = below(b.count)
            let n = Swift.min(text.count, b.count - at)
            b.replaceSubrange(at..<(at + n), with: text)
            return (b, "\(text.count) control bytes at \(at)")
        case 4:
            let at = below(b.count), n = Swift.min(1 + below(64), b.count - at)
            b.insert(contentsOf: b[at..<(at + n)], at: at)
            return (b, "\(n) bytes at \(at) duplicated")
        default:
            let at = below(b.count), n = Swift.min(1 + below(64), b.count - at)
            b.removeSubrange(at..<(at + n))
            return (b, "\(n) bytes at \(at) deleted")
        }
    }
}
