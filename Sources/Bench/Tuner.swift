import Backend
import Device
import Foundation

/// `loupe tune`: times each candidate kernel parameter set of the device's family on a set of
/// convolution shapes (forward and backward input, the passes every command runs) and keeps the
/// fastest in the tuning cache.
public enum Tuner {
    /// The tuning set: ResNet18/VGG16/MobileNetV2 layers at batch 1, early (large maps, few
    /// channels) to late (small maps, many channels), 3x3 and 1x1.
    public static let shapes: [(cin: Int, cout: Int, size: Int, k: Int, stride: Int)] = [
        (64, 64, 56, 3, 1), (128, 128, 28, 3, 1), (256, 256, 14, 3, 1), (512, 512, 7, 3, 1),
        (96, 24, 56, 1, 1), (256, 512, 14, 1, 2),
    ]

    /// One candidate's measurement.
    public struct Result: Sendable {
        /// The candidate's parameters, as its `description` prints them ("6x16", "64x64x16/4x4").
        public let candidate: String
        /// Device milliseconds over the tuning set (median per shape and pass, summed).
        public let milliseconds: Double
    }

    /// Times every candidate of `family` on `device` (median of `runs` per shape and pass, summed)
    /// and returns the results, fastest first, with the entry to store.
    public static func run(device: ComputeDevice, family: KernelFamily, runs: Int = 3, quick: Bool = false,
                           progress: (String) -> Void = { _ in }) throws -> (results: [Result], entry: TuningEntry) {
        let context = try Context(device: device)
        let set = quick ? Array(shapes.prefix(2)) : shapes
        var rng = SystemRandomNumberGenerator()
        func timeAll(_ backend: OpenCLBackend) throws -> Double {
            var bench = Benchmark(backend: backend)
            bench.runs = runs
            var total = 0.0
            for s in set {
                let p = Conv2DParams(stride: s.stride, padding: s.k / 2)
                let xs: Shape = [1, s.cin, s.size, s.size], ws: Shape = [s.cout, s.cin, s.k, s.k]
                let x = try backend.tensor((0..<xs.count).map { _ in Float.random(in: -1..<1, using: &rng) }, xs)
                let w = try backend.tensor((0..<ws.count).map { _ in Float.random(in: -1..<1, using: &rng) }, ws)
                let ys = try p.outputShape(input: xs, weight: ws)
                let gy = try backend.tensor((0..<ys.count).map { _ in Float.random(in: -1..<1, using: &rng) }, ys)
                total += try bench.time { _ = try backend.conv2d(x, weight: w, bias: nil, p) }
                total += try bench.time { _ = try backend.conv2dBackwardInput(gy, weight: w, inputShape: xs, p) }
            }
            return total * 1e3
        }
        switch family {
        case .registerBlocked:
            var results: [(PackedTiling, Double)] = []
            for c in PackedTiling.candidates {
                let ms = try timeAll(OpenCLBackend(context: context, family: family, packing: c))
                progress("register block \(c.mr)x\(c.vw)x\(c.nv) (\(c)): \(String(format: "%.2f", ms)) ms")
                results.append((c, ms))
            }
            results.sort { $0.1 < $1.1 }
            let measured = Dictionary(results.map { ("\($0.0.mr)x\($0.0.vw)x\($0.0.nv)", $0.1) }) { a, _ in a }
            return (results.map { Result(candidate: "\($0.0.mr)x\($0.0.vw)x\($0.0.nv)", milliseconds: $0.1) },
                    TuningEntry(packed: results[0].0, measured: measured))
        case .tiled:
            var results: [(GemmTiling, Double)] = []
            for c in GemmTiling.candidates where c.local[0] * c.local[1] <= device.maxWorkGroupSize {
                let ms = try timeAll(OpenCLBackend(context: context, convTiling: c, family: family))
                progress("tile \(c): \(String(format: "%.2f", ms)) ms")
                results.append((c, ms))
            }
            guard !results.isEmpty else { throw BackendError("tune", "no tile candidate fits \(device.name)'s work-group size") }
            results.sort { $0.1 < $1.1 }
            let measured = Dictionary(results.map { ($0.0.description, $0.1) }) { a, _ in a }
            return (results.map { Result(candidate: $0.0.description, milliseconds: $0.1) }, TuningEntry(tiled: results[0].0, measured: measured))
        }
    }
}
