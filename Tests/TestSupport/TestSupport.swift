import Backend
import Device
import Foundation

/// A small deterministic generator (SplitMix64), so every test draws the same numbers.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
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
            return .success(try OpenCLBackend(device: device))
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
/// `backward(inputs, r)`. Checks `samples` random coordinates of every input whose gradient is
/// given; returns one message per mismatch (empty when all agree). Tolerance is relative to the
/// largest analytic gradient of that input (at least 1).
public func finiteDifferenceMismatches(
    inputs: [[Float]], eps: Float = 1e-2, samples: Int = 10, tolerance: Float = 2e-2, seed: UInt64 = 7,
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
        let scale = Swift.max(1, grad.map(abs).max() ?? 0)
        let picks = inputs[j].count <= samples ? Array(inputs[j].indices)
            : (0..<samples).map { _ in Int.random(in: 0..<inputs[j].count, using: &rng) }
        for i in picks {
            var plus = inputs, minus = inputs
            plus[j][i] += eps
            minus[j][i] -= eps
            let numeric = Float((try loss(plus) - loss(minus)) / Double(2 * eps))
            if abs(numeric - grad[i]) > tolerance * scale {
                problems.append("input \(j)[\(i)]: analytic \(grad[i]), finite difference \(numeric)")
            }
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
