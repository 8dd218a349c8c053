import Backend
import Bench
import Foundation
import Interpret
import Models

/// `loupe bench --model`'s work: one network timed whole on one backend, with its installed
/// weights, or seeded random ones of the same architecture when they are not installed (the
/// times do not depend on the values).
public struct ModelBench {
    /// The network.
    public let model: Model
    /// Whether `model` has its installed weights (else seeded random ones).
    public let installedWeights: Bool

    /// `name` (a torchvision architecture) on `backend`.
    public init(model name: String, on backend: any Backend) throws {
        installedWeights = Architectures.torchvisionFiles[name].map {
            FileManager.default.fileExists(atPath: ModelLocator.checkpointDirectory.appendingPathComponent($0).path)
        } ?? true
        if installedWeights {
            model = try ModelLocator.load(model: name, on: backend)
        } else {
            let architecture = try Architectures.make(name)
            model = Model(architecture: architecture, parameters: try SeededWeights.parameters(for: architecture, seed: 1, on: backend), backend: backend)
        }
    }

    /// The methods `list` names (comma-separated, `all`, `all+slow`), each on the model's last
    /// convolutional block where it reads a layer.
    public func methods(_ list: String) throws -> [any AttributionMethod] {
        let names = list == "all" ? MethodRegistry.entries.filter { !$0.transformerOnly && $0.cost != .slow }.map(\.name)
            : list == "all+slow" ? MethodRegistry.entries.filter { !$0.transformerOnly }.map(\.name)
            : list.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        guard !names.isEmpty else { throw WorkflowError("--method names no method") }
        if let twice = names.enumerated().first(where: { i, name in names[..<i].contains(name) })?.element {
            throw WorkflowError("--method names \(twice) twice")
        }
        return try names.map { name in
            guard let entry = MethodRegistry.entry(name) else {
                throw WorkflowError("unknown method \(name); known: \(MethodRegistry.names.joined(separator: ", ")), all, all+slow")
            }
            do { return try entry.make(MethodRegistry.Settings(layer: model.architecture.lastConvLayer)) } catch let error as InterpretError {
                throw WorkflowError(error.description)
            }
        }
    }

    /// Forward and forward + backward at `batch` (or each of `methods`), the median of `runs`
    /// after a warm-up run.
    public func passes(batch: Int, runs: Int, methods: [any AttributionMethod]? = nil) throws -> [ModelBenchResult] {
        try methods.map { try SaliencyBenchmark.run(model, methods: $0, batch: batch, runs: runs) }
            ?? ModelBenchmark.run(model, batch: batch, runs: runs)
    }

    /// Feature visualization steps per second at `batch` (the faster of two runs of `steps`).
    public func visualizationRate(batch: Int, steps: Int) throws -> Double {
        try VisualizationBenchmark.stepsPerSecond(model, batch: batch, steps: steps)
    }

    /// Device time per kernel (largest first) of each pass `loupe bench --kernels` lists, with
    /// its title and the divisor that makes it per step: one forward and one forward + backward
    /// pass; or each of `methods`; or, with `visualizationSteps`, one optimization run.
    public func kernelBreakdowns(batch: Int, methods: [any AttributionMethod]?, visualizationSteps: Int?) throws
        -> [(title: String, kernels: [(name: String, milliseconds: Double, launches: Int)], divisor: Double)] {
        let backend = model.backend
        if let steps = visualizationSteps {
            let classes = try model.classCount()
            let job = FeatureVisualization(objectives: (0..<batch).map { .classLogit($0 * 37 % classes) }, size: 224, steps: steps,
                                           reportEvery: Int.max)
            return [("per optimization step (a run of \(steps) steps and its setup, divided by \(steps)), batch \(batch)",
                     try ModelBenchmark.kernelBreakdown(on: backend) { _ = try job.run(model) }, Double(steps))]
        }
        guard let methods else {
            return [("one forward pass, batch \(batch)", try ModelBenchmark.kernelBreakdown(model, batch: batch, backward: false), 1),
                    ("one forward + backward pass, batch \(batch)", try ModelBenchmark.kernelBreakdown(model, batch: batch), 1)]
        }
        let input = try backend.tensor([Float](repeating: 0.5, count: batch * 3 * 224 * 224), [batch, 3, 224, 224])
        let classes = try model.classCount()
        let targets = (0..<batch).map { $0 * 37 % 1000 % classes }
        return try methods.map { method in
            ("\(method.name), batch \(batch)", try ModelBenchmark.kernelBreakdown(on: backend) {
                _ = try method.attribute(model, input: input, targets: targets)
            }, 1)
        }
    }
}
