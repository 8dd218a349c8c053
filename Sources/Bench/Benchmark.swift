import Backend
import Device
import Foundation

/// One row of `loupe bench`.
public struct BenchResult: Codable, Sendable {
    /// The op's family: "conv", "conv dw", "relu", "maxpool", "linear", ...
    public let op: String
    /// The layer shape, e.g. "3x3 64->64 56x56 s1 p1".
    public let shape: String
    /// The networks that have a layer of this shape.
    public let models: [String]
    /// Images per launch.
    public let batch: Int
    /// "forward", "backward input", "backward weight" or "backward".
    public let pass: String
    /// Median device time over the timed runs, milliseconds (profiling events).
    public let milliseconds: Double
    /// GFLOP/s for conv and linear, GB/s for memory-bound ops.
    public let rate: Double
    /// "GFLOP/s" or "GB/s".
    public let unit: String
    /// rate / the peak measured on this device, percent.
    public let percentOfPeak: Double
}

/// What this device reaches at best, measured by `bench.cl`.
public struct DevicePeak: Codable, Sendable {
    /// Fused multiply-add throughput, GFLOP/s (an FMA counts 2).
    public let gflops: Double
    /// Device memory copy bandwidth, GB/s (bytes read plus bytes written).
    public let gbPerSecond: Double
    /// Wall time per launch of a one-work-item kernel enqueued back to back without events and
    /// waited for once, microseconds: the driver's cost per op, which bounds small-batch passes
    /// (a network at batch 1 launches 60-150 kernels).
    public let launchMicroseconds: Double
}

/// Kernel microbenchmarks on an OpenCL device: each op of `LayerShapes` forward and backward at
/// the given batch sizes, device time from profiling events (the median of `runs` after
/// `warmup` runs and at least 50 ms of them), as a rate and a percent of the device's peak.
public struct Benchmark {
    /// The device backend the kernels run on.
    public let backend: OpenCLBackend
    /// Timed runs per measurement (the median is reported).
    public var runs = 3
    /// Untimed runs before them (kernel builds, buffer pool).
    public var warmup = 1

    /// Benchmarks on `backend` with 3 runs after 1 warm-up.
    public init(backend: OpenCLBackend) { self.backend = backend }

    func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// Device time the warm-up runs take at least: a millisecond-long op that follows an idle
    /// moment runs 2-3x slower for its first few runs on these machines (clocks and caches
    /// warming up), so one warm-up run is not enough for small ops.
    public var warmupSeconds = 0.05

    /// Median device seconds of `body` over `runs` after `warmup` runs (and `warmupSeconds`).
    func time(_ body: () throws -> Void) throws -> Double {
        var warmed = 0.0, count = 0
        while count < warmup || (warmed < warmupSeconds && count < 1000) {
            warmed += try backend.profile(body).deviceSeconds
            count += 1
        }
        return median(try (0..<Swift.max(runs, 1)).map { _ in try backend.profile(body).deviceSeconds })
    }

    /// FMA throughput and copy bandwidth of this device.
    public func peak() throws -> DevicePeak {
        let ctx = backend.context
        let source = try OpenCLBackend.kernelSource("bench")
        let program = try ctx.program(name: "bench", sources: [source])
        // CPU: a few long work-items, one per work-group (see bench.cl); GPU: many short ones.
        let cpu = backend.family == .registerBlocked
        let items = cpu ? 1 << 11 : 1 << 16, iterations = cpu ? 8192 : 256
        let out = try Buffer<Float>(context: ctx, count: items)
        let fma = try program.kernel("fma_peak")
        let flopSeconds = try (0..<3).map { _ in
            try fma.launch(global: [items], local: cpu ? [1] : nil,
                           try KernelCall.fma_peak(out: out, a: 0.999, b: 0.001, rounds: iterations).arguments).deviceSeconds()
        }.min()!
        let n = 1 << 24
        let src = try Buffer<Float>(context: ctx, count: n), dst = try Buffer<Float>(context: ctx, count: n)
        try src.fill(1)
        let copy = try program.kernel("copy_bandwidth")
        let copySeconds = try (0..<3).map { _ in
            try copy.launch(global: [n / 4], try KernelCall.copy_bandwidth(src: src, dst: dst).arguments).deviceSeconds()
        }.min()!
        let launches = 2000
        let copyArguments = try KernelCall.copy_bandwidth(src: src, dst: dst).arguments
        let launchSeconds = try (0..<3).map { _ in
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<launches { try copy.launch(global: [1], local: [1], copyArguments, event: false) }
            try ctx.finish()
            return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        }.min()!
        return DevicePeak(gflops: Double(items * 6 * 16 * 2 * iterations) / flopSeconds / 1e9,
                          gbPerSecond: Double(2 * n * 4) / copySeconds / 1e9,
                          launchMicroseconds: launchSeconds / Double(launches) * 1e6)
    }

    /// Benchmarks `op` at `batch`: forward and each backward pass.
    public func run(_ op: BenchOp, batch n: Int, models: [String], peak: DevicePeak) throws -> [BenchResult] {
        var rng = SystemRandomNumberGenerator()
        func random(_ shape: Shape) throws -> Tensor {
            try backend.tensor((0..<shape.count).map { _ in Float.random(in: -1..<1, using: &rng) }, shape)
        }
        func row(_ pass: String, seconds: Double, flops: Double? = nil, bytes: Double = 0) -> BenchResult {
            let rate = flops.map { $0 / seconds / 1e9 } ?? bytes / seconds / 1e9
            let top = flops == nil ? peak.gbPerSecond : peak.gflops
            return BenchResult(op: op.family, shape: op.shapeDescription, models: models, batch: n, pass: pass,
                               milliseconds: seconds * 1e3, rate: rate, unit: flops == nil ? "GB/s" : "GFLOP/s",
                               percentOfPeak: 100 * rate / top)
        }
        switch op {
        case let .conv(cin, cout, size, k, stride, pad, groups):
            let p = Conv2DParams(stride: stride, padding: pad, groups: groups)
            let xs: Shape = [n, cin, size, size], ws: Shape = [cout, cin / groups, k, k]
            let x = try random(xs), w = try random(ws), b = try random([cout])
            let ys = try p.outputShape(input: xs, weight: ws)
            let gy = try random(ys)
            let flops = 2.0 * Double(ys.count) * Double(cin / groups * k * k)
            return [
                row("forward", seconds: try time { _ = try backend.conv2d(x, weight: w, bias: b, p) }, flops: flops),
                row("backward input", seconds: try time { _ = try backend.conv2dBackwardInput(gy, weight: w, inputShape: xs, p) }, flops: flops),
                row("backward weight", seconds: try time { _ = try backend.conv2dBackwardWeight(gy, input: x, weightShape: ws, p) }, flops: flops),
            ]
        case let .activation(kind, c, s):
            let x = try random([n, c, s, s]), g = try random([n, c, s, s])
            let bytes = Double(n * c * s * s * 4)
            return [row("forward", seconds: try time { _ = try backend.activation(x, kind) }, bytes: 2 * bytes),
                    row("backward", seconds: try time { _ = try backend.activationBackward(g, input: x, kind, rule: .standard) }, bytes: 3 * bytes)]
        case let .batchNorm(c, s):
            let x = try random([n, c, s, s]), g = try random([n, c, s, s])
            let bn = BatchNormParams(gamma: try random([c]), beta: try random([c]), mean: try random([c]),
                                     variance: try backend.tensor([Float](repeating: 1, count: c), [c]))
            let bytes = Double(n * c * s * s * 4)
            return [row("forward", seconds: try time { _ = try backend.batchNorm2d(x, bn) }, bytes: 2 * bytes),
                    row("backward", seconds: try time { _ = try backend.batchNorm2dBackward(g, bn) }, bytes: 2 * bytes)]
        case let .maxPool(c, s, k, stride, pad):
            let p = Pool2DParams(kernel: k, stride: stride, padding: pad)
            let x = try random([n, c, s, s])
            let ys = try p.outputShape(input: x.shape, op: "maxpool2d")
            let g = try random(ys)
            let bytes = Double(x.shape.count * 4), outBytes = Double(ys.count * 4)
            return [row("forward", seconds: try time { _ = try backend.maxPool2d(x, p) }, bytes: bytes + outBytes),
                    row("backward", seconds: try time { _ = try backend.maxPool2dBackward(g, input: x, p) }, bytes: 2 * bytes + outBytes)]
        case let .adaptiveAvgPool(c, s):
            let x = try random([n, c, s, s]), g = try random([n, c, 1, 1])
            let bytes = Double(x.shape.count * 4)
            return [row("forward", seconds: try time { _ = try backend.adaptiveAvgPool2d(x, outputSize: (1, 1)) }, bytes: bytes),
                    row("backward", seconds: try time { _ = try backend.adaptiveAvgPool2dBackward(g, inputShape: x.shape) }, bytes: bytes)]
        case let .add(c, s):
            let a = try random([n, c, s, s]), b = try random([n, c, s, s])
            return [row("forward", seconds: try time { _ = try backend.add(a, b) }, bytes: Double(3 * a.shape.count * 4))]
        case let .linear(inF, outF):
            let x = try random([n, inF]), w = try random([outF, inF]), b = try random([outF]), g = try random([n, outF])
            let flops = 2.0 * Double(n * inF * outF)
            return [row("forward", seconds: try time { _ = try backend.linear(x, weight: w, bias: b) }, flops: flops),
                    row("backward input", seconds: try time { _ = try backend.linearBackwardInput(g, weight: w) }, flops: flops),
                    row("backward weight", seconds: try time { _ = try backend.linearBackwardWeight(g, input: x) }, flops: flops)]
        case let .softmax(classes):
            let x = try random([n, classes]), g = try random([n, classes])
            let y = try backend.softmax(x)
            let bytes = Double(n * classes * 4)
            return [row("forward", seconds: try time { _ = try backend.softmax(x) }, bytes: 2 * bytes),
                    row("backward", seconds: try time { _ = try backend.softmaxBackward(g, output: y) }, bytes: 3 * bytes)]
        }
    }

    /// The distinct ops of `models`, each with the models it appears in, in first-seen order.
    public static func plan(models: [String], filter: String?) -> [(op: BenchOp, models: [String])] {
        var order: [BenchOp] = []
        var owners: [BenchOp: [String]] = [:]
        for model in models {
            for op in LayerShapes.ops(model: model) {
                if owners[op] == nil { order.append(op) }
                if !(owners[op] ?? []).contains(model) { owners[op, default: []].append(model) }
            }
        }
        return order.filter { op in
            guard let filter, !filter.isEmpty else { return true }
            let text = "\(op.family) \(op.shapeDescription)"
            return filter.split(separator: ",").contains { text.contains($0.trimmingCharacters(in: .whitespaces)) }
        }.map { ($0, owners[$0]!) }
    }
}
