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

    @Option(help: "Comma-separated methods; all (every method but the slow scorecam, ablationcam and occlusion, and attention_rollout, which needs a vision transformer); all+slow (with scorecam, ablationcam and occlusion).")
    public var method: String = "gradient,guided_backprop,gradcam"
    @Option(parsing: .unconditional, help: "Target class: an index or a class name (\"tabby\", \"tabby cat\"); with several images one for all or one per image, comma-separated. Default: the top-1 class.")
    public var target: String?
    @Option(help: "Layer of the CAM methods (`loupe layers`); default: the model's last convolutional block.")
    public var layer: String?
    @Option(parsing: .unconditional, help: "Samples per image of SmoothGrad, GradientSHAP, LIME and KernelSHAP.") public var samples: Int = 25
    @Option(parsing: .unconditional, help: "SmoothGrad noise, as a fraction of the image's value range.") public var noise: Float = 0.15
    @Option(name: .customLong("ig-steps"), parsing: .unconditional, help: "Integrated Gradients steps (Gauss-Legendre).") public var igSteps: Int = 50
    /// The spelling before 0.9 (hidden; one release).
    @Option(name: .customLong("steps"), parsing: .unconditional, help: .hidden) public var stepsAlias: Int?
    var steps: Int { stepsAlias ?? igSteps }
    @Option(help: "Integrated Gradients' and DeepLIFT's baseline: black, zero, blur, uniform (noise from --seed), or (saliency) an image file, prepared as the inputs are; gradient_shap and deeplift_shap take a comma-separated distribution of them.") public var baseline: String = "black"
    @Option(parsing: .unconditional, help: "GradientSHAP: standard deviation of the noise added to each sample, in the model's normalized input space (Captum's stdevs).") public var stdevs: Float = 0

    /// `--baseline`'s references, in order.
    var baselineEntries: [String] { baseline.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
    /// The entries of `--baseline` that are image files rather than names.
    var baselineFiles: [String] { baselineEntries.filter { !MethodRegistry.baselineNames.contains($0) } }
    @Option(parsing: .unconditional, help: "Occlusion window, and the grid cell of LIME's and KernelSHAP's features (pixels).") public var window: Int = 16
    @Option(parsing: .unconditional, help: "Occlusion stride (pixels).") public var stride: Int = 8
    @Option(parsing: .unconditional, help: "Images per device batch of the batched methods (Score-CAM, SmoothGrad, IG, occlusion) and of saliency's --metrics.") public var batch: Int = 16
    @Option(parsing: .unconditional, help: "Seed of SmoothGrad's and smooth MPRT's noise and of the uniform baseline.") public var seed: UInt64 = 0
    @Option(help: "LRP composite: epsilon_plus, epsilon_plus_flat, epsilon_gamma_box, epsilon_alpha2_beta1, epsilon_alpha2_beta1_flat (zennit's), or rules by layer kind, conv=RULE,linear=RULE[,first=RULE] with RULE epsilon[:E], gamma[:G], z_plus, alpha_beta[:A:B], flat, w_square, z_box.")
    public var composite: String = "epsilon_plus_flat"
    @Option(parsing: .unconditional, help: "LRP: epsilon of the named composites' epsilon rule (linear layers).") public var epsilon: Float = 1e-6
    @Option(parsing: .unconditional, help: "LRP: gamma of epsilon_gamma_box's gamma rule (convolutions).") public var gamma: Float = 0.25
    @Option(help: "concept_relevance: channels of --layer, comma-separated, whose relevance the conditional heatmap follows (default: each image's most relevant channel).")
    public var concept: String?

    public init() {}

    func parseMethods() throws -> [String] {
        try requireNumber("--noise", noise, atLeast: 0)
        try requireNumber("--stdevs", stdevs, atLeast: 0)
        guard noise <= 10 else { throw UserError("--noise \(noise): at most 10 times the image's value range (SmoothGrad uses 0.1 to 0.2)") }
        for (flag, value) in [("--batch", batch), ("--samples", samples), ("--ig-steps", steps), ("--window", window), ("--stride", stride)]
        where value < 1 {
            throw UserError("\(flag) \(value): must be at least 1")
        }
        for (flag, value, limit) in [("--samples", samples, SmoothGrad.maxSamples), ("--ig-steps", steps, IntegratedGradients.maxSteps)] where value > limit {
            throw UserError("\(flag) \(value): at most \(limit) (each is a forward and backward pass)")
        }
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

    /// `--batch`, or the model's largest batch when it runs at a fixed one.
    func deviceBatch(for model: Model) -> Int { Swift.min(batch, model.architecture.maxBatch ?? batch) }

    /// The registry's settings from these flags; `baselineImages`, the normalized pixels of the
    /// image files `--baseline` names, take their places in its list.
    func settings(layer: String, model: Model, baselineImages: [String: [Float]] = [:], featureMask: FeatureMask? = nil) throws -> MethodRegistry.Settings {
        var s = MethodRegistry.Settings(layer: layer)
        s.featureMask = featureMask
        if !baselineImages.isEmpty {
            s.baselineList = try baselineEntries.map { entry in
                try baselineImages[entry].map { .image($0) } ?? MethodRegistry.namedBaseline(entry, seed: seed)
            }
        }
        s.batch = deviceBatch(for: model)
        s.samples = samples; s.noise = noise; s.seed = seed; s.stdev = stdevs
        s.steps = steps; s.baseline = baseline
        s.window = window; s.stride = stride
        s.composite = composite; s.epsilon = epsilon; s.gamma = gamma
        if let concept {
            s.concept = try concept.split(separator: ",").map { part in
                guard let c = Int(part.trimmingCharacters(in: .whitespaces)), c >= 0 else { throw UserError("--concept \(concept): expected channel numbers, e.g. 5 or 5,17") }
                return c
            }
        }
        return s
    }

    func makeMethod(_ name: String, layer: String, model: Model, baselineImages: [String: [Float]] = [:], featureMask: FeatureMask? = nil) throws -> any AttributionMethod {
        guard let entry = MethodRegistry.entry(name) else { throw UserError("unknown method \(name)") }
        do { return try entry.make(try settings(layer: layer, model: model, baselineImages: baselineImages, featureMask: featureMask)) } catch let error as InterpretError {
            throw UserError(error.description)
        }
    }

    /// The settings of method `name`, for summary files.
    func parameters(_ name: String, layer: String, model: Model, baselineImages: [String: [Float]] = [:], featureMask: FeatureMask? = nil) -> [String: Any] {
        guard let entry = MethodRegistry.entry(name), let s = try? settings(layer: layer, model: model, baselineImages: baselineImages, featureMask: featureMask) else { return [:] }
        var recorded = entry.parameters(s)
        for key in ["baseline", "baselines"] where !baselineImages.isEmpty && recorded[key] != nil { recorded[key] = baseline }
        return recorded
    }
}
