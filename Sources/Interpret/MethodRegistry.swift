import Backend

/// The attribution methods by name, in one place: each entry says what it is called, whether it
/// reads a layer (the CAM family), how costly it is, what it needs, how to make it from
/// settings and which settings it records. `loupe saliency` and `loupe sanity` list, parse,
/// build and describe methods through this table only.
public enum MethodRegistry {
    /// Settings the methods read (the flags of `loupe saliency`; defaults as Captum's and
    /// pytorch-grad-cam's).
    public struct Settings: Sendable {
        /// The CAM family's layer.
        public var layer: String
        /// Images per device batch of the batched methods.
        public var batch = 16
        /// SmoothGrad: samples, noise as a fraction of the value range, seed.
        public var samples = 25
        /// SmoothGrad's noise level, a fraction of the image's value range.
        public var noise: Float = 0.15
        /// SmoothGrad's noise seed.
        public var seed: UInt64 = 0
        /// Integrated Gradients: steps (Gauss-Legendre) and baseline (black, zero or blur).
        public var steps = 50
        /// Integrated Gradients' and DeepLIFT's baseline: "black", "zero", "blur" or "uniform"
        /// (noise from `seed`); for the SHAP methods a comma-separated distribution of them.
        public var baseline = "black"
        /// Integrated Gradients' baseline as normalized images instead (IntegratedGradients
        /// .Baseline.image: one for all, or one per image); `baseline` is then not read.
        public var baselineImages: [Float]?
        /// The references as a list (named or images; `baseline` and `baselineImages` are then
        /// not read): a distribution for the SHAP methods, one reference for IG and DeepLIFT.
        public var baselineList: [IntegratedGradients.Baseline]?
        /// GradientSHAP: the noise's standard deviation in the normalized input space (Captum's
        /// stdevs).
        public var stdev: Float = 0
        /// GradientSHAP: fixed draws instead of those of `seed` (Captum's, from its adapter).
        public var shapDraws: GradientShap.Draws?
        /// LIME and KernelSHAP: the features (a grid of `window` when nil).
        public var featureMask: FeatureMask?
        /// LIME and KernelSHAP: fixed binary vectors, samples per image in order (Captum's, from
        /// its adapters); drawn from `seed` when nil.
        public var surrogateSamples: [[Bool]]?
        /// Occlusion: window and stride in pixels; LIME's and KernelSHAP's grid cell.
        public var window = 16
        /// Occlusion's stride, pixels.
        public var stride = 8
        /// Occlusion's fill, in the model's normalized input space.
        public var fill: Float = 0
        /// DeepLIFT: whether max pools take its rule (false: their gradient, as Captum 0.9's
        /// DeepLift computes).
        public var maxPoolRule = true
        /// LRP: the composite (a zennit name or `conv=RULE,linear=RULE[,first=RULE]`).
        public var composite = "epsilon_plus_flat"
        /// LRP: the epsilon of the named composites' epsilon rule.
        public var epsilon: Float = 1e-6
        /// LRP: the gamma of `epsilon_gamma_box`.
        public var gamma: Float = 0.25
        /// Concept relevance: channels of `layer` (empty: each image's most relevant channel).
        public var concept: [Int] = []
        /// Guided backprop, deconvnet, guided Grad-CAM and DeepLIFT: the activation kinds their
        /// rule applies to (Captum's hook `nn.ReLU` only).
        public var ruleActivations = Set(Activation.allCases)
        /// Settings with the defaults, and `layer` for the CAM family.
        public init(layer: String) { self.layer = layer }
    }

    /// How many model passes a method needs per image.
    public enum Cost: Sendable {
        /// One to a few dozen passes per image.
        case passes
        /// Hundreds of passes per image (one per channel or per window position): left out of
        /// `--method all`.
        case slow
    }

    /// One method: its name, what it needs, its cost, and how to make it.
    public struct Entry: Sendable {
        /// The name `--method` takes.
        public let name: String
        /// Reads a layer's activations (the CAM family): `Settings.layer` must name a 4-D output.
        public let readsLayer: Bool
        /// How many passes it needs per image.
        public let cost: Cost
        /// Applies to vision transformers only (attention rollout).
        public let transformerOnly: Bool
        let build: @Sendable (Settings) throws -> any AttributionMethod
        let recorded: @Sendable (Settings) -> [String: Any]

        /// The method with these settings.
        public func make(_ s: Settings) throws -> any AttributionMethod { try build(s) }
        /// The settings this method uses, for a run's summary file.
        public func parameters(_ s: Settings) -> [String: Any] { recorded(s) }
    }

    /// Every method, in the order listings show them (`--method all` runs those of cost `.passes`).
    public static let entries: [Entry] = [
        Entry(name: "gradient", readsLayer: false, cost: .passes, transformerOnly: false,
              build: { _ in VanillaGradient() }, recorded: { _ in [:] }),
        Entry(name: "gradient_x_input", readsLayer: false, cost: .passes, transformerOnly: false,
              build: { _ in GradientTimesInput() }, recorded: { _ in [:] }),
        Entry(name: "guided_backprop", readsLayer: false, cost: .passes, transformerOnly: false,
              build: { GuidedBackprop(activations: $0.ruleActivations) }, recorded: { ruleSettings($0) }),
        Entry(name: "deconvnet", readsLayer: false, cost: .passes, transformerOnly: false,
              build: { Deconvnet(activations: $0.ruleActivations) }, recorded: { ruleSettings($0) }),
        Entry(name: "lrp", readsLayer: false, cost: .passes, transformerOnly: false,
              build: { try LRP(composite: $0.composite, epsilon: $0.epsilon, gamma: $0.gamma) },
              recorded: { ["composite": $0.composite, "epsilon": $0.epsilon, "gamma": $0.gamma] }),
        Entry(name: "concept_relevance", readsLayer: true, cost: .passes, transformerOnly: false,
              build: { ConceptRelevance(layer: $0.layer, channels: $0.concept, lrp: try LRP(composite: $0.composite, epsilon: $0.epsilon, gamma: $0.gamma)) },
              recorded: { ["layer": $0.layer, "concept": $0.concept.isEmpty ? "most relevant channel" : $0.concept.map(String.init).joined(separator: ","),
                           "composite": $0.composite, "epsilon": $0.epsilon, "gamma": $0.gamma] }),
        Entry(name: "gradcam", readsLayer: true, cost: .passes, transformerOnly: false,
              build: { CAM(.gradCAM, layer: $0.layer) }, recorded: { ["layer": $0.layer] }),
        Entry(name: "gradcam++", readsLayer: true, cost: .passes, transformerOnly: false,
              build: { CAM(.gradCAMPlusPlus, layer: $0.layer) }, recorded: { ["layer": $0.layer] }),
        Entry(name: "guided_gradcam", readsLayer: true, cost: .passes, transformerOnly: false,
              build: { GuidedGradCAM(layer: $0.layer, activations: $0.ruleActivations) }, recorded: { ["layer": $0.layer].merging(ruleSettings($0)) { a, _ in a } }),
        Entry(name: "layercam", readsLayer: true, cost: .passes, transformerOnly: false,
              build: { CAM(.layerCAM, layer: $0.layer) }, recorded: { ["layer": $0.layer] }),
        Entry(name: "hirescam", readsLayer: true, cost: .passes, transformerOnly: false,
              build: { CAM(.hiResCAM, layer: $0.layer) }, recorded: { ["layer": $0.layer] }),
        Entry(name: "xgradcam", readsLayer: true, cost: .passes, transformerOnly: false,
              build: { CAM(.xGradCAM, layer: $0.layer) }, recorded: { ["layer": $0.layer] }),
        Entry(name: "eigencam", readsLayer: true, cost: .passes, transformerOnly: false,
              build: { CAM(.eigenCAM, layer: $0.layer) }, recorded: { ["layer": $0.layer] }),
        Entry(name: "fullgrad", readsLayer: false, cost: .passes, transformerOnly: false,
              build: { _ in FullGrad() }, recorded: { _ in [:] }),
        Entry(name: "ablationcam", readsLayer: true, cost: .slow, transformerOnly: false,
              build: { CAM(.ablationCAM, layer: $0.layer, batch: $0.batch) }, recorded: { ["layer": $0.layer, "batch": $0.batch] }),
        Entry(name: "scorecam", readsLayer: true, cost: .slow, transformerOnly: false,
              build: { CAM(.scoreCAM, layer: $0.layer, batch: $0.batch) }, recorded: { ["layer": $0.layer, "batch": $0.batch] }),
        Entry(name: "smoothgrad", readsLayer: false, cost: .passes, transformerOnly: false,
              build: { SmoothGrad(.mean, samples: $0.samples, noiseLevel: $0.noise, batch: $0.batch, seed: $0.seed) },
              recorded: { ["samples": $0.samples, "noise": $0.noise, "seed": $0.seed, "batch": $0.batch] }),
        Entry(name: "smoothgrad_sq", readsLayer: false, cost: .passes, transformerOnly: false,
              build: { SmoothGrad(.meanOfSquares, samples: $0.samples, noiseLevel: $0.noise, batch: $0.batch, seed: $0.seed) },
              recorded: { ["samples": $0.samples, "noise": $0.noise, "seed": $0.seed, "batch": $0.batch] }),
        Entry(name: "vargrad", readsLayer: false, cost: .passes, transformerOnly: false,
              build: { SmoothGrad(.variance, samples: $0.samples, noiseLevel: $0.noise, batch: $0.batch, seed: $0.seed) },
              recorded: { ["samples": $0.samples, "noise": $0.noise, "seed": $0.seed, "batch": $0.batch] }),
        Entry(name: "integrated_gradients", readsLayer: false, cost: .passes, transformerOnly: false,
              build: { s in IntegratedGradients(steps: s.steps, baseline: try integrationBaseline(s), batch: s.batch) },
              recorded: { ["steps": $0.steps, "baseline": recordedBaseline($0), "method": "gausslegendre", "batch": $0.batch]
                  .merging(recordedBaseline($0).contains("uniform") ? ["seed": $0.seed] : [:]) { a, _ in a } }),
        Entry(name: "deeplift", readsLayer: false, cost: .passes, transformerOnly: false,
              build: { s in DeepLift(baseline: try integrationBaseline(s), activations: s.ruleActivations, batch: s.batch, maxPoolRule: s.maxPoolRule) },
              recorded: { ["baseline": recordedBaseline($0), "batch": $0.batch, "max_pool_rule": $0.maxPoolRule]
                  .merging(ruleSettings($0)) { a, _ in a } }),
        Entry(name: "gradient_shap", readsLayer: false, cost: .passes, transformerOnly: false,
              build: { s in GradientShap(baselines: try integrationBaselines(s), samples: s.samples, stdev: s.stdev, batch: s.batch, seed: s.seed,
                                                   draws: s.shapDraws) },
              recorded: { ["samples": $0.samples, "stdevs": $0.stdev, "seed": $0.shapDraws == nil ? "\($0.seed)" : "given draws", "batch": $0.batch,
                            "baselines": recordedBaseline($0)] }),
        Entry(name: "deeplift_shap", readsLayer: false, cost: .passes, transformerOnly: false,
              build: { s in DeepLiftShap(baselines: try integrationBaselines(s),
                                         deepLift: DeepLift(activations: s.ruleActivations, batch: s.batch, maxPoolRule: s.maxPoolRule)) },
              recorded: { ["baselines": recordedBaseline($0), "batch": $0.batch, "max_pool_rule": $0.maxPoolRule]
                  .merging(ruleSettings($0)) { a, _ in a } }),
        Entry(name: "lime", readsLayer: false, cost: .passes, transformerOnly: false,
              build: { s in Surrogate(.lime, samples: s.samples, baseline: try integrationBaseline(s), cell: s.window, mask: s.featureMask,
                                      batch: s.batch, seed: s.seed, given: s.surrogateSamples) },
              recorded: { surrogateSettings($0).merging(["alpha": 0.01, "kernel_width": 1.0]) { a, _ in a } }),
        Entry(name: "kernel_shap", readsLayer: false, cost: .passes, transformerOnly: false,
              build: { s in Surrogate(.kernelShap, samples: s.samples, baseline: try integrationBaseline(s), cell: s.window, mask: s.featureMask,
                                      batch: s.batch, seed: s.seed, given: s.surrogateSamples) },
              recorded: { surrogateSettings($0) }),
        Entry(name: "layer_gradient_x_activation", readsLayer: true, cost: .passes, transformerOnly: false,
              build: { LayerAttribution(.gradientXActivation, layer: $0.layer) }, recorded: { ["layer": $0.layer] }),
        Entry(name: "layer_conductance", readsLayer: true, cost: .passes, transformerOnly: false,
              build: { s in LayerAttribution(.conductance, layer: s.layer, steps: s.steps, baseline: try integrationBaseline(s), batch: s.batch) },
              recorded: { ["layer": $0.layer, "steps": $0.steps, "baseline": recordedBaseline($0), "method": "gausslegendre", "batch": $0.batch] }),
        Entry(name: "layer_integrated_gradients", readsLayer: true, cost: .passes, transformerOnly: false,
              build: { s in LayerAttribution(.integratedGradients, layer: s.layer, steps: s.steps, baseline: try integrationBaseline(s), batch: s.batch) },
              recorded: { ["layer": $0.layer, "steps": $0.steps, "baseline": recordedBaseline($0), "method": "gausslegendre", "batch": $0.batch] }),
        Entry(name: "occlusion", readsLayer: false, cost: .slow, transformerOnly: false,
              build: { Occlusion(window: $0.window, stride: $0.stride, baseline: $0.fill, batch: $0.batch) },
              recorded: { ["window": $0.window, "stride": $0.stride, "baseline": $0.fill, "batch": $0.batch] }),
        Entry(name: "attention_rollout", readsLayer: false, cost: .passes, transformerOnly: true,
              build: { _ in AttentionRollout() }, recorded: { _ in [:] }),
    ]

    /// Every method's name, in the table's order.
    public static var names: [String] { entries.map(\.name) }

    /// The entry called `name`, if any.
    public static func entry(_ name: String) -> Entry? { entries.first { $0.name == name } }
}

/// The references of the settings: the list, an image, or by name (comma-separated).
private func integrationBaselines(_ s: MethodRegistry.Settings) throws -> [IntegratedGradients.Baseline] {
    if let list = s.baselineList { return list }
    if let images = s.baselineImages { return [.image(images)] }
    return try s.baseline.split(separator: ",").map { try MethodRegistry.namedBaseline(String($0), seed: s.seed) }
}

/// Integrated Gradients' and DeepLIFT's one reference.
private func integrationBaseline(_ s: MethodRegistry.Settings) throws -> IntegratedGradients.Baseline {
    let list = try integrationBaselines(s)
    guard list.count == 1 else {
        throw InterpretError("integrated_gradients, deeplift, lime, kernel_shap and the layer methods start from one baseline, not \(list.count) (a distribution is for gradient_shap and deeplift_shap)")
    }
    return list[0]
}

/// LIME's and KernelSHAP's settings for a summary file.
private func surrogateSettings(_ s: MethodRegistry.Settings) -> [String: Any] {
    ["samples": s.samples, "baseline": recordedBaseline(s), "batch": s.batch,
     "features": s.featureMask.map { "mask of \($0.count)" } ?? "grid of \(s.window) px",
     "seed": s.surrogateSamples == nil ? "\(s.seed)" : "given samples"]
}

/// The references as a summary file records them.
private func recordedBaseline(_ s: MethodRegistry.Settings) -> String {
    s.baselineList == nil && s.baselineImages == nil ? s.baseline : "images"
}

extension MethodRegistry {
    /// The names `--baseline` takes.
    public static let baselineNames = ["black", "zero", "blur", "uniform"]

    /// A reference by name: black, zero, blur (sigma 10) or uniform (noise from `seed`).
    public static func namedBaseline(_ name: String, seed: UInt64) throws -> IntegratedGradients.Baseline {
        switch name {
        case "black": return .black
        case "zero": return .zero
        case "blur": return .blur(sigma: 10)
        case "uniform": return .uniform(seed: seed)
        default: throw InterpretError("baseline \(name): expected black, zero, blur or uniform")
        }
    }
}

/// The rule's activation kinds for a run's summary, when they are not every kind.
private func ruleSettings(_ s: MethodRegistry.Settings) -> [String: Any] {
    s.ruleActivations == Set(Activation.allCases) ? [:] : ["rule_activations": s.ruleActivations.map { "\($0)" }.sorted()]
}
