import Backend
import Foundation
import Graph
import Interpret
import Models

/// Whole-network timing: forward, and forward + backward to the input (from the top-1 logit),
/// per batch size. Wall time includes host work and waits for the result; device time sums the
/// kernels' profiling events (OpenCL only).
public struct ModelBenchResult: Codable, Sendable {
    /// The architecture's name.
    public let model: String
    /// Images per pass.
    public let batch: Int
    /// "forward", "forward+backward", or an attribution method's name.
    public let pass: String
    /// Median wall time of the timed runs, including host work and transfers.
    public let wallMilliseconds: Double
    /// Median device time of the kernels (profiling events); nil on the CPU reference.
    public let deviceMilliseconds: Double?
}

/// Whole-network timings: a forward pass and a forward + backward pass to the input, on random
/// images, median of runs after a warm-up of at least 0.3 s (`warmUp`).
public enum ModelBenchmark {
    /// Device time per kernel of `body` (run once to build kernels, then once profiled), largest
    /// first; empty on the CPU reference.
    public static func kernelBreakdown(on backend: any Backend, _ body: () throws -> Void) throws
        -> [(name: String, milliseconds: Double, launches: Int)] {
        guard let cl = backend as? OpenCLBackend else { return [] }
        try body()
        let (_, kernels) = try cl.profileKernels(body)
        var totals: [String: (Double, Int)] = [:]
        for k in kernels { totals[k.name, default: (0, 0)].0 += k.seconds * 1e3; totals[k.name, default: (0, 0)].1 += 1 }
        return totals.map { ($0.key, $0.value.0, $0.value.1) }.sorted { $0.1 > $1.1 }
    }

    /// Device time per kernel over one forward pass (`backward: false`) or one forward + backward
    /// pass to the input.
    public static func kernelBreakdown(_ model: Model, batch: Int, size: Int = 224, backward: Bool = true) throws
        -> [(name: String, milliseconds: Double, launches: Int)] {
        try kernelBreakdown(on: model.backend, try plainPass(model, batch: batch, size: size, backward: backward))
    }

    /// Every launch of one forward pass (`backward: false`) or one forward + backward pass to the
    /// input, in order: kernel, global size, device milliseconds and the device's idle
    /// milliseconds before it (since the previous launch ended; 0 for the first), each the
    /// median of `runs` profiled passes after one to build the kernels; empty on the CPU
    /// reference.
    public static func launches(_ model: Model, batch: Int, size: Int = 224, backward: Bool = false, runs: Int) throws
        -> [(name: String, global: [Int], milliseconds: Double, idleMilliseconds: Double)] {
        guard let cl = model.backend as? OpenCLBackend else { return [] }
        let body = try plainPass(model, batch: batch, size: size, backward: backward)
        try body()
        let passes = try (0..<Swift.max(runs, 1)).map { _ in try cl.profileKernels(body).kernels }
        func idle(_ pass: [(name: String, global: [Int], seconds: Double, start: Double)], _ i: Int) -> Double {
            i == 0 ? 0 : Swift.max(0, pass[i].start - pass[i - 1].start - pass[i - 1].seconds) * 1e3
        }
        return passes[0].indices.map { i in
            let present = passes.filter { $0.indices.contains(i) }
            return (passes[0][i].name, passes[0][i].global, median(present.map { $0[i].seconds * 1e3 }), median(present.map { idle($0, i) }))
        }
    }

    /// One plain pass on a constant input, as the kernel tables time it.
    private static func plainPass(_ model: Model, batch: Int, size: Int, backward: Bool) throws -> () throws -> Void {
        let backend = model.backend
        let shape: Shape = [batch, 3, size, size]
        let input = try backend.tensor([Float](repeating: 0.5, count: shape.count), shape)
        return {
            let g = Graph(backend: backend)
            g.keptLayers = []
            g.forwardOnly = !backward
            g.fusesResiduals = true
            let x = g.input(input)
            let y = try model.forward(g, x)
            if backward { _ = try backend.values(try g.backward(from: y).of(x)!) } else { _ = try backend.values(g.tensor(y)) }
        }
    }

    /// Times `model`'s forward pass (forward only, as classification runs it: `Graph.forwardOnly`)
    /// and its forward + backward pass (input gradient only, seeded at one logit per image) on a
    /// random [batch, 3, size, size] input.
    public static func run(_ model: Model, batch: Int, size: Int = 224, runs: Int) throws -> [ModelBenchResult] {
        let backend = model.backend
        var rng = SystemRandomNumberGenerator()
        let shape: Shape = [batch, 3, size, size]
        let input = try backend.tensor((0..<shape.count).map { _ in Float.random(in: -2..<2, using: &rng) }, shape)
        func forward(only: Bool = false) throws -> (Graph, Graph.Value, Graph.Value) {
            let g = Graph(backend: backend)
            g.keptLayers = []
            g.forwardOnly = only
            g.fusesResiduals = true
            let x = g.input(input)
            return (g, x, try model.forward(g, x))
        }
        let classes = try model.classCount(size: size)
        var seedValues = [Float](repeating: 0, count: batch * classes)
        for n in 0..<batch { seedValues[n * classes] = 1 }
        let seed = try backend.tensor(seedValues, [batch, classes])
        let passes: [(String, () throws -> Void)] = [
            ("forward", { let (g, _, y) = try forward(only: true); _ = try backend.values(g.tensor(y)) }),
            ("forward+backward", {
                let (g, x, y) = try forward()
                _ = try backend.values(try g.backward(from: y, seed: seed).of(x)!)
            }),
        ]
        var results: [ModelBenchResult] = []
        for (name, body) in passes {
            try warmUp(body)
            let (wall, device) = try timed(on: backend, runs: runs, body)
            results.append(ModelBenchResult(model: model.architecture.name, batch: batch, pass: name,
                                            wallMilliseconds: wall * 1e3, deviceMilliseconds: device.map { $0 * 1e3 }))
        }
        return results
    }
}

/// Attribution methods timed end to end (maps on the host), per batch size.
public enum SaliencyBenchmark {
    /// Times each method's `attribute` end to end (maps on the host) on a random batch, one
    /// target per image.
    public static func run(_ model: Model, methods: [any AttributionMethod], batch: Int, size: Int = 224,
                           runs: Int) throws -> [ModelBenchResult] {
        let backend = model.backend
        var rng = SystemRandomNumberGenerator()
        let shape: Shape = [batch, 3, size, size]
        let input = try backend.tensor((0..<shape.count).map { _ in Float.random(in: -2..<2, using: &rng) }, shape)
        let classes = try model.classCount(size: size)
        let targets = (0..<batch).map { $0 * 37 % 1000 % classes }
        return try methods.map { method in
            let body = { _ = try method.attribute(model, input: input, targets: targets) }
            try warmUp(body)
            let (wall, device) = try timed(on: backend, runs: runs, body)
            return ModelBenchResult(model: model.architecture.name, batch: batch, pass: method.name,
                                    wallMilliseconds: wall * 1e3, deviceMilliseconds: device.map { $0 * 1e3 })
        }
    }
}

func median(_ v: [Double]) -> Double { let s = v.sorted(); return s[s.count / 2] }

/// Runs `body` once (building its kernels) and again until `seconds` of wall time have passed,
/// at most 100 times: on PoCL the first runs after the kernels are built stay slow for a while
/// (MobileNetV2's Grad-CAM at batch 1: the median of 5 runs after one warm-up 16.6 ms, of 30
/// runs 7.2 ms), which put a method first in its `bench` call at a disadvantage.
func warmUp(seconds: Double = 0.3, _ body: () throws -> Void) throws {
    let start = DispatchTime.now().uptimeNanoseconds
    var count = 0
    repeat {
        try body()
        count += 1
    } while Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 < seconds && count < 100
}

/// Median wall seconds of `body` over `runs` plain runs, then (OpenCL) the median device seconds
/// over as many profiled runs: wall times are taken without profiling, whose per-launch events
/// cost driver time that a user's run does not pay.
func timed(on backend: any Backend, runs: Int, _ body: () throws -> Void) throws -> (wall: Double, device: Double?) {
    let walls = try (0..<Swift.max(runs, 1)).map { _ in
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    }
    guard let cl = backend as? OpenCLBackend else { return (median(walls), nil) }
    return (median(walls), median(try (0..<Swift.max(runs, 1)).map { _ in try cl.profile(body).deviceSeconds }))
}

/// Optimization steps per second of feature visualization with its defaults (Fourier basis,
/// decorrelated colour, standard transforms, Adam), one class objective per image.
public enum VisualizationBenchmark {
    /// Optimization steps per second of `loupe visualize`'s defaults at `size`, `batch` images
    /// with one class objective each: the faster of two runs of `steps` steps (each with its
    /// setup) after a one-step warm-up run; two, because one run of a few steps on a shared
    /// machine was now and then several times slower than the runs around it.
    public static func stepsPerSecond(_ model: Model, batch: Int, size: Int = 224, steps: Int) throws -> Double {
        let classes = try model.classCount(size: size)
        let objectives = (0..<batch).map { Objective.classLogit($0 * 37 % classes) }
        _ = try FeatureVisualization(objectives: objectives, size: size, steps: 1).run(model)  // warm-up: builds kernels
        let job = FeatureVisualization(objectives: objectives, size: size, steps: Swift.max(steps, 1), reportEvery: Int.max)
        var best = Double.infinity
        for _ in 0..<2 {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try job.run(model)
            best = Swift.min(best, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
        return Double(job.steps) / best
    }
}
