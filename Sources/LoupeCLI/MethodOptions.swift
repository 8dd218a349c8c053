import ArgumentParser
import Graph
import Interpret
import Models

/// The attribution methods, their targets and settings: shared by `saliency` and `sanity`.
public struct MethodOptions: ParsableArguments {
    /// The methods' names, layers, costs and settings: `MethodRegistry` (Interpret).
    static let names = MethodRegistry.names
    /// What `--method all+slow` runs: every method that applies to any network (attention
    /// rollout needs a vision transformer); `all` leaves out the slow ones (hundreds of passes
    /// per image: Score-CAM, occlusion).
    static let anyNetwork = MethodRegistry.entries.filter { !$0.transformerOnly }
    static let camNames = Set(MethodRegistry.entries.filter(\.readsLayer).map(\.name))

    @Option(help: "Comma-separated methods; all (every method but the slow scorecam and occlusion, and attention_rollout, which needs a vision transformer); all+slow (with scorecam and occlusion).")
    public var method: String = "gradient,guided_backprop,gradcam"
    @Option(help: "Target class: an index or a class name (\"tabby\", \"tabby cat\"); with several images one for all or one per image, comma-separated. Default: the top-1 class.")
    public var target: String?
    @Option(help: "Layer of the CAM methods (`loupe layers`); default: the model's last convolutional block.")
    public var layer: String?
    @Option(parsing: .unconditional, help: "SmoothGrad samples.") public var samples: Int = 25
    @Option(parsing: .unconditional, help: "SmoothGrad noise, as a fraction of the image's value range.") public var noise: Float = 0.15
    @Option(name: .customLong("ig-steps"), parsing: .unconditional, help: "Integrated Gradients steps (Gauss-Legendre).") public var igSteps: Int = 50
    /// The spelling before 0.9 (hidden; one release).
    @Option(name: .customLong("steps"), parsing: .unconditional, help: .hidden) public var stepsAlias: Int?
    var steps: Int { stepsAlias ?? igSteps }
    @Option(help: "Integrated Gradients baseline: black, zero, or blur.") public var baseline: String = "black"
    @Option(parsing: .unconditional, help: "Occlusion window (pixels).") public var window: Int = 16
    @Option(parsing: .unconditional, help: "Occlusion stride (pixels).") public var stride: Int = 8
    @Option(parsing: .unconditional, help: "Images per device batch of the batched methods (Score-CAM, SmoothGrad, IG, occlusion) and of saliency's --metrics.") public var batch: Int = 16
    @Option(parsing: .unconditional, help: "Seed of SmoothGrad's noise.") public var seed: UInt64 = 0

    public init() {}

    func parseMethods() throws -> [String] {
        try requireNumber("--noise", noise, atLeast: 0)
        let list = method == "all" ? Self.anyNetwork.filter { $0.cost != .slow }.map(\.name)
            : method == "all+slow" ? Self.anyNetwork.map(\.name)
            : method.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        for name in list where !Self.names.contains(name) {
            throw UserError("unknown method \(name); known: \(Self.names.joined(separator: ", ")), all, all+slow")
        }
        guard !list.isEmpty else { throw UserError("--method names no method") }
        if let twice = firstRepeated(list) {
            throw UserError("--method names \(twice) twice")
        }
        return list
    }

    /// The CAM layer (default: the model's last convolutional block), checked on a graph that
    /// ran the model when any of `methods` needs it: it must exist and have a 4-D output.
    func camLayer(for methods: [String], model: Model, graph g: Graph) throws -> String {
        let camLayer = layer ?? model.architecture.lastConvLayer
        guard methods.contains(where: Self.camNames.contains) else { return camLayer }
        try checkLayerName(camLayer, in: g.tapNames, model: model.architecture.name)
        let shape = g.shape(g.tapped(camLayer)!)
        guard shape.rank == 4 || tokenGridSide(shape) != nil else {
            let valid = g.tapNames.filter { g.shape(g.tapped($0)!).rank == 4 || tokenGridSide(g.shape(g.tapped($0)!)) != nil }.suffix(6)
            throw UserError("--layer \(camLayer) has a \(shape.rank)-D output \(shape); CAM methods need a 4-D one (or a transformer's tokens [N, 1 + s^2, C]), e.g. \(valid.joined(separator: ", "))")
        }
        return camLayer
    }

    /// One class per image: `--target` (indices or class names) or else `top`, each image's
    /// most probable class (ClassScores.topClasses).
    func resolveTargets(count: Int, classes: Int, top: [Int], names: [String]?, synonyms: [String]? = nil, flag: String = "--target") throws -> [Int] {
        guard let target else { return top }
        let parts = target.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        guard parts.count == 1 || parts.count == count else {
            throw UserError("\(flag): \(parts.count) targets for \(count) images (give one, or one per image)")
        }
        let resolved = try parts.map { part -> Int in
            if let index = Int(part) {
                guard index >= 0, index < classes else { throw UserError("\(flag) \(index) is out of range 0...\(classes - 1)") }
                return index
            }
            return try resolveClass(part, names: names, synonyms: synonyms, flag: flag)
        }
        return parts.count == 1 ? [Int](repeating: resolved[0], count: count) : resolved
    }

    /// A class by name (`ClassLookup`): ambiguous names are refused with the candidates.
    func resolveClass(_ part: String, names: [String]?, synonyms: [String]?, flag: String) throws -> Int {
        guard let names else { throw UserError("\(flag) \(part): this model's classes have no names (give an index, or names with --labels)") }
        switch ClassLookup.match(part, names: names, synonyms: synonyms) {
        case .found(let index): return index
        case .ambiguous(let candidates):
            let listed = candidates.prefix(12).map { "\($0) \(names[$0])" }.joined(separator: ", ")
            throw UserError("\(flag) \(part): \(candidates.count) classes match: \(listed)\(candidates.count > 12 ? ", ..." : ""); give one of these names or its index")
        case .none(let near):
            throw UserError("\(flag) \(part): no such class; nearest: \(near.joined(separator: ", "))")
        }
    }

    /// `--batch`, or the model's largest batch when it runs at a fixed one.
    func deviceBatch(for model: Model) -> Int { Swift.min(batch, model.architecture.maxBatch ?? batch) }

    /// The registry's settings from these flags.
    func settings(layer: String, model: Model) -> MethodRegistry.Settings {
        var s = MethodRegistry.Settings(layer: layer)
        s.batch = deviceBatch(for: model)
        s.samples = samples; s.noise = noise; s.seed = seed
        s.steps = steps; s.baseline = baseline
        s.window = window; s.stride = stride
        return s
    }

    func makeMethod(_ name: String, layer: String, model: Model) throws -> any AttributionMethod {
        guard let entry = MethodRegistry.entry(name) else { throw UserError("unknown method \(name)") }
        do { return try entry.make(settings(layer: layer, model: model)) } catch let error as InterpretError {
            throw UserError(error.description)
        }
    }

    /// The settings of method `name`, for summary files.
    func parameters(_ name: String, layer: String, model: Model) -> [String: Any] {
        MethodRegistry.entry(name)?.parameters(settings(layer: layer, model: model)) ?? [:]
    }
}
