import Backend
import Device
import Foundation
import Graph
import ImageIO
import Interpret
import Models
import Workflows

/// The calls `loupe_run` takes on a model, by name; each reads its options and arrays, refuses
/// what it does not know, and gives a JSON text and named arrays.
extension Session {
    static let operations = ["info", "layers", "forward", "activations", "attribute", "visualize", "invert", "metrics", "sanity",
                             "concept_scores", "reference_heatmaps"]

    func run(_ op: String, _ o: Options, _ a: inout Arrays) throws -> CallResult {
        lock.lock()
        defer { lock.unlock() }
        switch op {
        case "info": return try info(o, &a)
        case "layers": return try layers(o, &a)
        case "forward": return try forward(o, &a)
        case "activations": return try activations(o, &a)
        case "attribute": return try attribute(o, &a)
        case "visualize": return try visualize(o, &a)
        case "invert": return try invert(o, &a)
        case "metrics": return try metrics(o, &a)
        case "sanity": return try sanity(o, &a)
        case "concept_scores": return try conceptScores(o, &a)
        case "reference_heatmaps": return try referenceHeatmaps(o, &a)
        default: throw CallError(.invalidArgument, "unknown operation \(op); expected \(Self.operations.joined(separator: ", "))")
        }
    }

    func info(_ o: Options, _ a: inout Arrays) throws -> CallResult {
        try o.finish(); try a.finish()
        let (h, w) = inputSize
        let classes = try ClassScores(model, input: try backend.tensor([Float](repeating: 0, count: 3 * h * w), [1, 3, h, w])).classes
        var json: [String: Any] = [
            "name": name, "architecture": model.architecture.name, "device": backend.name, "classes": classes,
            "input_size": [h, w], "crop": preprocessing.crop, "resize": preprocessing.resizeShorter ?? 0, "interpolation": preprocessing.interpolation.rawValue,
            "mean": preprocessing.mean, "std": preprocessing.std, "default_layer": model.architecture.lastConvLayer,
            "methods": MethodRegistry.names, "warnings": warnings,
        ]
        if let maxBatch = model.architecture.maxBatch { json["max_batch"] = maxBatch }
        if classes == imageNetClasses.count { json["class_names"] = imageNetClasses }
        return try CallResult(json: json)
    }

    func layers(_ o: Options, _ a: inout Arrays) throws -> CallResult {
        let h = try o.int("height", in: 1...4096) ?? inputSize.height
        let w = try o.int("width", in: 1...4096) ?? inputSize.width
        try o.finish(); try a.finish()
        try MemoryBudget.requirePass(model, batch: 1, height: h, width: w, what: "a pass to list the layers")
        let g = Graph(backend: backend)
        _ = try model.forward(g, g.input(try backend.tensor([Float](repeating: 0, count: 3 * h * w), [1, 3, h, w])))
        let layers: [[String: Any]] = g.tapNames.map { ["name": $0, "kind": g.tapKinds[$0] ?? "", "shape": g.shape(g.tapped($0)!).dims] }
        // An imported graph's torch module names (outermost first), each with its node output.
        let modules: [[String: Any]] = model.architecture.modules.compactMap { m in
            g.tapped(m.layer).map { ["name": m.name, "layer": m.layer, "kind": m.type, "depth": m.depth, "shape": g.shape($0).dims] }
        }
        return try CallResult(json: ["layers": layers, "modules": modules])
    }

    func forward(_ o: Options, _ a: inout Arrays) throws -> CallResult {
        let x = try batch(try a.require("x"), what: "a forward pass")
        try o.finish(); try a.finish()
        let scores = try ClassScores(model, input: x.tensor)
        // `output` is the model's own ([N, classes], or a segmentation's [N, classes, H, W]);
        // `logits` and `probabilities` are `ClassScores`' rows (a segmentation's mean scores
        // and each class's share of the predicted pixels).
        let output = scores.dense.map { HostArray(values: $0.logits, shape: [x.n, scores.classes, $0.height, $0.width]) }
            ?? HostArray(values: scores.logits, shape: [x.n, scores.classes])
        return try CallResult(json: [:], arrays: ["output": output, "logits": HostArray(values: scores.logits, shape: [x.n, scores.classes]),
                                                  "probabilities": HostArray(values: scores.probabilities, shape: [x.n, scores.classes])])
    }

    func activations(_ o: Options, _ a: inout Arrays) throws -> CallResult {
        let x = try batch(try a.require("x"), what: "a forward pass")
        guard let names = try o.strings("layers"), !names.isEmpty else { throw CallError(.invalidArgument, "activations: name at least one layer") }
        try o.finish(); try a.finish()
        let g = Graph(backend: backend)
        g.keptLayers = Set(names)
        let y = try model.forward(g, g.input(x.tensor))
        var arrays: [String: HostArray] = ["logits": HostArray(values: try backend.values(g.tensor(y)), shape: g.shape(y).dims)]
        for layer in names {
            try checkLayerName(layer, in: g.layerNames, model: name)
            let v = g.tapped(layer)!
            arrays[layer] = HostArray(values: try backend.values(g.tensor(v)), shape: g.shape(v).dims)
        }
        return try CallResult(json: [:], arrays: arrays)
    }

    /// Any method of the registry: options method, targets, layer, batch, samples, noise, seed,
    /// steps, baseline ("black", "zero", "blur", "uniform"; or an array `baseline` [N or 1, 3, H, W];
    /// the SHAP methods a comma-separated list, or an array `baselines` [B, 3, H, W]), stdevs,
    /// draw_indices, draw_alphas and draw_noise (gradient_shap's draws, as Captum makes them),
    /// feature_mask [H, W] and surrogate_samples [N * samples, features] (lime, kernel_shap),
    /// window, stride, occlusion_baseline, composite, epsilon and gamma (LRP), max_pool_rule
    /// (DeepLIFT), concept (concept_relevance's channels; `concepts` returns each image's),
    /// rule_activations (["relu"]: guided backprop's and
    /// deconvnet's rule on ReLU only, as Captum's hooks), layer_map (the CAM family's weighted
    /// sums at the layer's resolution, before ReLU and normalization: Captum's LayerGradCam),
    /// objective (explain an objective in `visualize`'s syntax instead of `targets`: a neuron
    /// "layer3:88@3,1", a channel, a direction, a weighted sum; `values` returns its value per
    /// image), region (a segmentation's target: an array [N or 1, H', W'] on the output's grid,
    /// nonzero inside, that each image's class is summed over; by default, for a model whose
    /// output is [N, classes, H', W'], the pixels predicted as the class). The layer methods
    /// return `layer_attribution` [N, C, lh, lw].
    func attribute(_ o: Options, _ a: inout Arrays) throws -> CallResult {
        let x = try batch(try a.require("x"), what: "an attribution pass")
        guard let method = try o.string("method") else { throw CallError(.invalidArgument, "attribute: option method is required (\(MethodRegistry.names.joined(separator: ", ")))") }
        guard let entry = MethodRegistry.entry(method) else {
            throw CallError(.invalidArgument, "unknown method \(method); Loupe has \(MethodRegistry.names.joined(separator: ", "))")
        }
        var s = MethodRegistry.Settings(layer: try o.string("layer") ?? model.architecture.lastConvLayer)
        s.batch = try o.int("batch", in: 1...4096) ?? s.batch
        s.samples = try o.int("samples", in: 1...100_000) ?? s.samples
        s.noise = try o.float("noise", in: 0...1000) ?? s.noise
        s.seed = try o.uint64("seed") ?? s.seed
        s.steps = try o.int("steps", in: 1...100_000) ?? s.steps
        s.baseline = try o.string("baseline") ?? s.baseline
        s.window = try o.int("window", in: 1...16384) ?? s.window
        s.stride = try o.int("stride", in: 1...16384) ?? s.stride
        s.maxPoolRule = try o.bool("max_pool_rule") ?? s.maxPoolRule
        s.composite = try o.string("composite") ?? s.composite
        s.epsilon = try o.float("epsilon", in: 0...Float.greatestFiniteMagnitude) ?? s.epsilon
        s.gamma = try o.float("gamma", in: 0...Float.greatestFiniteMagnitude) ?? s.gamma
        s.concept = try o.ints("concept", in: 0...(1 << 24)) ?? s.concept
        if let kinds = try o.strings("rule_activations") {
            s.ruleActivations = Set(try kinds.map { text in
                guard let kind = Activation.allCases.first(where: { "\($0)" == text }) else {
                    throw CallError(.invalidArgument, "rule_activations: \(text) is not relu or relu6")
                }
                return kind
            })
        }
        s.fill = try o.float("occlusion_baseline") ?? s.fill
        let layerMap = try o.bool("layer_map") ?? false
        var model = self.model, objective: Objective?
        if let text = try o.string("objective") {
            guard try o.intsOrStrings("targets", in: 0...Int(Int32.max)) == nil else {
                throw CallError(.invalidArgument, "objective and targets both name what to explain; give one")
            }
            let lookup = { (name: String) throws -> Int in
                if case .found(let k) = ClassLookup.match(name, names: imageNetClasses, synonyms: imageNetSynonyms) { return k }
                throw CallError(.invalidArgument, "class \(name): not one ImageNet class name; give its index (class:K)")
            }
            do { objective = try Objective.parse(text, classIndex: lookup) } catch let e as InterpretError {
                throw CallError(.invalidArgument, e.description)
            }
            model = model.targeting(objective!)
        }
        let targets = objective == nil ? try self.targets(o, n: x.n, x: x.tensor) : [Int](repeating: 0, count: x.n)
        s.stdev = try o.float("stdevs", in: 0...1000) ?? s.stdev
        if let images = try a.optional("baseline") {
            guard ["integrated_gradients", "deeplift", "lime", "kernel_shap", "layer_conductance", "layer_integrated_gradients"].contains(method) else {
                throw CallError(.invalidArgument, "a baseline array is for integrated_gradients, deeplift, lime, kernel_shap, layer_conductance and layer_integrated_gradients, not \(method) (gradient_shap and deeplift_shap take baselines)")
            }
            guard images.shape.count == 4, images.shape[0] == x.n || images.shape[0] == 1, Array(images.shape.dropFirst()) == [3, x.h, x.w] else {
                throw CallError(.invalidArgument, "baseline must be [N or 1, 3, \(x.h), \(x.w)], got \(images.shape)")
            }
            s.baselineImages = images.values
        }
        if let images = try a.optional("baselines") {
            guard ["gradient_shap", "deeplift_shap"].contains(method) else {
                throw CallError(.invalidArgument, "a baselines array (a distribution) is for gradient_shap and deeplift_shap, not \(method)")
            }
            let plane = 3 * x.h * x.w
            guard images.shape.count == 4, (1...4096).contains(images.shape[0]), Array(images.shape.dropFirst()) == [3, x.h, x.w] else {
                throw CallError(.invalidArgument, "baselines must be [B, 3, \(x.h), \(x.w)] with 1 to 4096 references, got \(images.shape)")
            }
            s.baselineList = (0..<images.shape[0]).map { .image(Array(images.values[($0 * plane)..<(($0 + 1) * plane)])) }
        }
        if let labels = try a.optional("feature_mask") {
            guard ["lime", "kernel_shap"].contains(method) else {
                throw CallError(.invalidArgument, "feature_mask is for lime and kernel_shap, not \(method)")
            }
            guard labels.values.count == x.h * x.w, labels.values.allSatisfy({ $0 >= 0 && $0 < Float(1 << 24) && $0 == $0.rounded() }) else {
                throw CallError(.invalidArgument, "feature_mask must be \(x.h) x \(x.w) whole-number labels from 0, got shape \(labels.shape)")
            }
            let ints = labels.values.map { Int($0) }
            do { s.featureMask = try FeatureMask(labels: ints, count: (ints.max() ?? -1) + 1) } catch let e as InterpretError {
                throw CallError(.invalidArgument, e.description)
            }
        }
        if let given = try a.optional("surrogate_samples") {
            guard ["lime", "kernel_shap"].contains(method) else {
                throw CallError(.invalidArgument, "surrogate_samples are lime's and kernel_shap's binary vectors, not \(method)'s")
            }
            guard given.shape.count == 2, given.shape[0] == x.n * s.samples, given.shape[1] >= 1,
                  given.values.allSatisfy({ $0 == 0 || $0 == 1 }) else {
                throw CallError(.invalidArgument, "surrogate_samples must be [\(x.n * s.samples), features] of 0 and 1, got shape \(given.shape)")
            }
            let m = given.shape[1]
            s.surrogateSamples = (0..<given.shape[0]).map { r in (0..<m).map { given.values[r * m + $0] == 1 } }
        }
        if let indices = try a.optional("draw_indices") {
            guard method == "gradient_shap", let alphas = try a.optional("draw_alphas") else {
                throw CallError(.invalidArgument, "draw_indices and draw_alphas are gradient_shap's draws, given together")
            }
            let noise = try a.optional("draw_noise")
            let draws = x.n * s.samples
            guard indices.values.count == draws, alphas.values.count == draws, noise.map({ $0.values.count == draws * 3 * x.h * x.w }) ?? true else {
                throw CallError(.invalidArgument, "gradient_shap's draws: \(draws) indices and alphas (and [\(draws), 3, \(x.h), \(x.w)] noise) for \(x.n) images of \(s.samples) samples")
            }
            guard indices.values.allSatisfy({ $0 >= 0 && $0 < Float(1 << 20) && $0 == $0.rounded() }) else {
                throw CallError(.invalidArgument, "draw_indices must be whole numbers of references from 0")
            }
            s.shapDraws = GradientShap.Draws(baselineIndices: indices.values.map { Int($0) }, alphas: Array(alphas.values), noise: noise.map { Array($0.values) })
        }
        let regionMasks = try a.optional("region")
        try o.finish(); try a.finish()

        // A segmentation's target (a model that declares [N, classes, H, W] outputs, or any
        // given `region`): each image's class summed over its region, one image at a time.
        if objective == nil, regionMasks != nil || model.architecture.isDense {
            guard !layerMap else { throw CallError(.invalidArgument, "layer_map is not available for a segmentation's region target") }
            guard let dense = try ClassScores(model, input: x.tensor).dense else {
                throw CallError(.invalidArgument, "region: the model's output is [N, classes], a classifier's; a region is a segmentation's target ([N, classes, H, W])")
            }
            if let r = regionMasks {
                let grid = [dense.height, dense.width]
                guard (r.shape.count == 2 && r.shape == grid) || (r.shape.count == 3 && [1, x.n].contains(r.shape[0]) && Array(r.shape.dropFirst()) == grid) else {
                    throw CallError(.invalidArgument, "region must be [N or 1, \(dense.height), \(dense.width)] (the output's grid), got \(r.shape)")
                }
            }
            let values = try backend.values(x.tensor), plane = 3 * x.h * x.w
            var parts: [Attribution] = [], milliseconds = 0.0
            for i in 0..<x.n {
                let mask = regionMasks.map { r in
                    let k = r.shape.count == 3 && r.shape[0] == x.n ? i : 0
                    return r.values[(k * dense.area)..<((k + 1) * dense.area)].map { $0 != 0 }
                } ?? dense.predictedMask(i, targets[i])
                guard mask.contains(true) else {
                    throw CallError(.invalidArgument, "image \(i): " + (regionMasks == nil ? "no pixel is predicted as class \(targets[i]); give a region" : "the region holds no pixel"))
                }
                let image = try backend.tensor(Array(values[(i * plane)..<((i + 1) * plane)]), [1, 3, x.h, x.w])
                let run = try SaliencyRun(model: try model.summed(over: mask), input: image, methods: [(method, try entry.make(s), entry.parameters(s))],
                                          targets: [targets[i]], metrics: nil)
                parts.append(run.results[0].attribution)
                milliseconds += run.results[0].milliseconds
            }
            var json: [String: Any] = ["method": method, "targets": targets, "settings": entry.parameters(s), "milliseconds": milliseconds]
            if entry.readsLayer { json["layer"] = s.layer }
            return try attributionResult(try Attribution.joined(parts), json: json, x: (x.n, x.h, x.w))
        }

        if layerMap {
            guard let kind = CAM.Kind(rawValue: method) else { throw CallError(.invalidArgument, "layer_map is for the CAM family (gradcam, gradcam++, layercam, hirescam, xgradcam, eigencam, ablationcam, scorecam), not \(method)") }
            let (values, shape) = try CAM(kind, layer: s.layer, batch: s.batch).layerMaps(model, input: x.tensor, targets: targets)
            return try CallResult(json: ["method": method, "layer": s.layer, "targets": targets], arrays: ["layer_map": HostArray(values: values, shape: shape.dims)])
        }
        var json: [String: Any] = ["method": method, "targets": targets, "settings": entry.parameters(s)]
        if entry.readsLayer { json["layer"] = s.layer }
        if let objective { json["objective"] = objective.description }
        let run = try SaliencyRun(model: model, input: x.tensor, methods: [(method, try entry.make(s), entry.parameters(s))],
                                  targets: targets, metrics: nil)
        json["milliseconds"] = run.results[0].milliseconds
        var values: [String: HostArray] = [:]
        if objective != nil { values["values"] = HostArray(values: try model.outputValues(x.tensor), shape: [x.n]) }
        return try attributionResult(run.results[0].attribution, json: json, x: (x.n, x.h, x.w), extra: values)
    }

    /// `attribute`'s answer: the maps [N, H, W], and where the method has them the raw
    /// attributions, completeness errors, layer attributions and concepts.
    func attributionResult(_ result: Attribution, json: [String: Any], x: (n: Int, h: Int, w: Int), extra: [String: HostArray] = [:]) throws -> CallResult {
        var json = json, arrays = extra
        arrays["map"] = HostArray(values: result.map, shape: [x.n, x.h, x.w])
        if let raw = result.raw { arrays["raw"] = HostArray(values: raw, shape: [x.n, 3, x.h, x.w]) }
        if let delta = result.completenessError { arrays["delta"] = HostArray(values: delta, shape: [x.n]) }
        if let values = result.layerValues, let shape = result.layerShape {
            arrays["layer_attribution"] = HostArray(values: values, shape: [x.n] + shape)
        }
        if let concepts = result.concepts { json["concepts"] = concepts }
        return try CallResult(json: json, arrays: arrays)
    }

    /// Feature visualization: options objectives (a string or a list, `loupe visualize
    /// --objective` syntax; `class:NAME` looks up ImageNet's names), size, steps, seed, lr,
    /// basis (fourier, pixel), decorrelate, transforms (standard, none).
    func visualize(_ o: Options, _ a: inout Arrays) throws -> CallResult {
        guard let texts = try o.strings("objectives"), !texts.isEmpty else { throw CallError(.invalidArgument, "visualize: option objectives is required (for example \"class:948\" or \"features.10:5\")") }
        let size = try o.int("size", in: 8...1024) ?? 224
        let steps = try o.int("steps", in: 0...100_000) ?? 512
        let seed = try o.uint64("seed") ?? 0
        let lr = try o.float("lr", in: 1e-6...100) ?? 0.05
        let basisName = try o.string("basis") ?? "fourier"
        guard let basis = ImageParameterization.Basis(rawValue: basisName) else { throw CallError(.invalidArgument, "basis \(basisName): expected fourier or pixel") }
        let decorrelate = try o.bool("decorrelate") ?? true
        let transformName = try o.string("transforms") ?? "standard"
        guard ["standard", "none"].contains(transformName) else { throw CallError(.invalidArgument, "transforms \(transformName): expected standard or none") }
        try o.finish(); try a.finish()
        let lookup = { (text: String) throws -> Int in
            if case .found(let k) = ClassLookup.match(text, names: imageNetClasses, synonyms: imageNetSynonyms) { return k }
            throw CallError(.invalidArgument, "class \(text): not one ImageNet class name; give its index (class:K)")
        }
        let objectives = try texts.map { try Objective.parse($0, classIndex: lookup) }
        let job = FeatureVisualization(objectives: objectives, size: size, steps: steps, basis: basis, decorrelate: decorrelate,
                                       transforms: transformName == "none" ? .none : .standard,
                                       optimizer: .adam(AdamSettings(learningRate: lr)), seed: seed)
        let result = try job.run(model) { p in Interpret.Progress.report("visualize", Swift.min(p.step + 1, steps), steps) }
        return try CallResult(json: ["objectives": result.objectives, "seconds": result.seconds],
                              arrays: ["images": HostArray(values: result.images, shape: [result.count, 3, size, size])])
    }

    /// Feature inversion of one normalized image x [1, 3, H, W] at a layer: options layer,
    /// steps, lr, seed, tv, jitter. The image comes back in [0, 1] (before normalization).
    func invert(_ o: Options, _ a: inout Arrays) throws -> CallResult {
        let x = try batch(try a.require("x"), what: "feature inversion")
        guard x.n == 1 else { throw CallError(.invalidArgument, "invert takes one image [1, 3, H, W], got \(x.n)") }
        guard let layer = try o.string("layer") else { throw CallError(.invalidArgument, "invert: option layer is required") }
        let steps = try o.int("steps", in: 0...100_000) ?? 600
        let lr = try o.float("lr", in: 1e-6...100) ?? 0.1
        let seed = try o.uint64("seed") ?? 0
        let tv = try o.float("tv", in: 0...1e6)
        let jitter = try o.int("jitter", in: 0...64) ?? 4
        try o.finish(); try a.finish()
        // The [0, 1] image the inversion matches, from the normalized input.
        let n = model.architecture.normalization
        let plane = x.h * x.w
        var pixels = try backend.values(x.tensor)
        for i in pixels.indices { pixels[i] = pixels[i] * n.std[i / plane] + n.mean[i / plane] }
        let target = try backend.tensor(pixels, [1, 3, x.h, x.w])
        let g = Graph(backend: backend)
        _ = try model.forward(g, g.input(x.tensor))
        try checkLayerName(layer, in: g.layerNames, model: name)
        let shape = g.shape(g.tapped(layer)!)
        let stride = shape.rank == 4 ? Swift.max(Int((Double(x.h) / Double(Swift.max(shape[2], 1))).rounded()), 1) : 32
        let job = FeatureInversion(layers: [layer], steps: steps, learningRate: lr, tvWeight: tv ?? FeatureInversion.defaultTVWeight(stride: stride),
                                   jitter: jitter, seed: seed)
        let result = try job.run(model, target: target) { p in Interpret.Progress.report("invert", Swift.min(p.step + 1, steps), steps) }
        return try CallResult(json: ["layer": layer, "relative_feature_error": result.errors.first ?? 0, "seconds": result.seconds],
                              arrays: ["image": HostArray(values: result.image, shape: [1, 3, result.height, result.width])])
    }

    /// Deletion and insertion (Petsiuk et al.) and the perturbation metrics: x [N, 3, H, W],
    /// maps [N, H, W]; options targets, modes (deletion, insertion and `PerturbationMetric`'s
    /// names), step, batch, blur, runs, subset_size, patch, regions, samples, radius, stdev, normalize,
    /// percentages, imputation_noise, seed, method and layer (the method the sensitivities run again); optional arrays raw
    /// [N, 3, H, W] (infidelity's attributions), subsets [runs, k], noise and perturbations
    /// [S, 3, H, W] (given draws); and each map's `MapQuality`, against the optional array
    /// `masks` [N, H, W] (nonzero inside).
    func metrics(_ o: Options, _ a: inout Arrays) throws -> CallResult {
        let x = try batch(try a.require("x"), what: "the metrics' passes")
        let maps = try a.require("maps")
        guard maps.shape == [x.n, x.h, x.w] else { throw CallError(.invalidArgument, "maps must be [\(x.n), \(x.h), \(x.w)] for x \([x.n, 3, x.h, x.w]), got \(maps.shape)") }
        let modeNames = try o.strings("modes") ?? ["deletion", "insertion"]
        var modes: [CausalMetric.Mode] = [], others: [PerturbationMetric] = []
        for text in modeNames {
            if let m = CausalMetric.Mode(rawValue: text) { modes.append(m) } else if let m = PerturbationMetric(rawValue: text) { others.append(m) } else {
                throw CallError(.invalidArgument, "mode \(text): expected deletion, insertion, \(PerturbationMetric.names)")
            }
        }
        let step = try o.int("step", in: 1...(1 << 26)) ?? x.w
        let batchSize = try o.int("batch", in: 1...4096) ?? 16
        let blur = try o.float("blur", in: 0.1...1000) ?? 5
        var settings = PerturbationMetric.Settings()
        settings.step = step
        settings.batch = batchSize
        settings.runs = try o.int("runs", in: 2...100_000) ?? settings.runs
        settings.subsetSize = try o.int("subset_size", in: 1...(1 << 26)) ?? settings.subsetSize
        settings.patch = try o.int("patch", in: 1...16384) ?? settings.patch
        settings.regions = try o.int("regions", in: 1...(1 << 26)) ?? settings.regions
        settings.samples = try o.int("samples", in: 1...100_000) ?? settings.samples
        settings.radius = try o.float("radius", in: 1e-12...1e6) ?? settings.radius
        settings.stdev = try o.float("stdev", in: 1e-12...1e6) ?? settings.stdev
        settings.seed = try o.uint64("seed") ?? settings.seed
        settings.normalize = try o.bool("normalize") ?? settings.normalize
        if let percentages = try o.floats("percentages") {
            guard !percentages.isEmpty, percentages.allSatisfy({ $0 > 0 && $0 < 100 }) else {
                throw CallError(.invalidArgument, "option percentages must hold numbers between 0 and 100")
            }
            settings.percentages = percentages.map(Double.init)
        }
        settings.imputationNoise = try o.float("imputation_noise", in: 0...1e6) ?? settings.imputationNoise
        let methodName = try o.string("method"), layer = try o.string("layer")
        let targets = try self.targets(o, n: x.n, x: x.tensor)
        let masks = try a.optional("masks")
        if let masks, masks.shape != [x.n, x.h, x.w] {
            throw CallError(.invalidArgument, "masks must be [\(x.n), \(x.h), \(x.w)] like maps, got \(masks.shape)")
        }
        let plane = 3 * x.h * x.w, pixels = x.h * x.w
        let raw = try a.optional("raw")
        if let raw, raw.shape != [x.n, 3, x.h, x.w] { throw CallError(.invalidArgument, "raw must be [\(x.n), 3, \(x.h), \(x.w)] like x, got \(raw.shape)") }
        /// Rows of a given draw array [S, ...] of `width` values each.
        func rows(_ name: String, width: Int?) throws -> [[Float]]? {
            guard let given = try a.optional(name) else { return nil }
            let count = given.shape.first ?? 0, size = count == 0 ? 0 : given.values.count / count
            guard count >= 1, size >= 1, width.map({ size == $0 }) ?? true else {
                throw CallError(.invalidArgument, "\(name) must be [S, \(width.map { _ in "3, \(x.h), \(x.w)" } ?? "k")], got \(given.shape)")
            }
            return (0..<count).map { Array(given.values[($0 * size)..<(($0 + 1) * size)]) }
        }
        if let subsets = try rows("subsets", width: nil) {
            guard subsets.joined().allSatisfy({ $0 >= 0 && $0 < Float(plane) && $0 == $0.rounded() }) else {
                throw CallError(.invalidArgument, "subsets must hold whole feature indices in 0..<\(plane)")
            }
            settings.subsets = subsets.map { $0.map { Int($0) } }
        }
        settings.noise = try rows("noise", width: plane)
        settings.perturbations = try rows("perturbations", width: plane)
        var method: (any AttributionMethod)?
        if others.contains(where: \.needsMethod) {
            guard let methodName, let entry = MethodRegistry.entry(methodName) else {
                throw CallError(.invalidArgument, "max_sensitivity and avg_sensitivity run the method again: option method must name one of \(MethodRegistry.names.joined(separator: ", "))")
            }
            var s = MethodRegistry.Settings(layer: layer ?? model.architecture.lastConvLayer)
            (s.batch, s.seed) = (batchSize, settings.seed)
            method = try entry.make(s)
        } else if methodName != nil {
            throw CallError(.invalidArgument, "option method is for max_sensitivity and avg_sensitivity")
        }
        try o.finish(); try a.finish()
        let values = try backend.values(x.tensor)
        var json: [String: Any] = ["targets": targets, "step": step]
        // Quantus' scores of each map (and against its mask): no model pass.
        let quality = try (0..<x.n).map { i in
            try MapQuality(map: maps.values[(i * pixels)..<((i + 1) * pixels)],
                           mask: masks.map { m in m.values[(i * pixels)..<((i + 1) * pixels)].map { $0 != 0 } })
        }
        json["sparseness"] = quality.map(\.sparseness)
        json["complexity"] = quality.map(\.complexity)
        if masks != nil {
            json["relevance_mass_accuracy"] = quality.map { $0.massAccuracy.map { $0 as Any } ?? NSNull() }
            json["relevance_rank_accuracy"] = quality.map { $0.rankAccuracy.map { $0 as Any } ?? NSNull() }
            json["pointing_game"] = quality.map { $0.pointingGame.map { $0 as Any } ?? NSNull() }
        }
        var arrays: [String: HostArray] = [:]
        let images = try (0..<x.n).map { i in try backend.tensor(Array(values[(i * plane)..<((i + 1) * plane)]), [1, 3, x.h, x.w]) }
        for mode in modes {
            var aucs: [Float] = [], curves: [Float] = []
            for i in 0..<x.n {
                let r = try CausalMetric(mode, step: step, batch: batchSize, blurSigma: blur)
                    .evaluate(model, image: images[i], target: targets[i], map: maps.values[(i * pixels)..<((i + 1) * pixels)])
                aucs.append(r.auc); curves += r.curve
            }
            json[mode.rawValue] = aucs
            arrays[mode.rawValue + "_curves"] = HostArray(values: curves, shape: [x.n, curves.count / x.n])
        }
        for metric in others {
            var scores: [Any] = [], curves: [Float] = []
            for i in 0..<x.n {
                let r = try metric.evaluate(model, image: images[i], target: targets[i], map: maps.values[(i * pixels)..<((i + 1) * pixels)],
                                            raw: raw.map { $0.values[(i * plane)..<((i + 1) * plane)] }, method: method, settings: settings)
                scores.append(jsonNumber(r.value))
                curves += r.curve ?? []
            }
            json[metric.rawValue] = scores
            if !curves.isEmpty { arrays[metric.rawValue + "_curves"] = HostArray(values: curves, shape: [x.n, curves.count / x.n]) }
        }
        return try CallResult(json: json, arrays: arrays)
    }

    /// zennit-crp's relevance maximization scores of one batch (`RelevanceMaximization`):
    /// options layer (required), targets (default: each image's top class), composite, epsilon
    /// and gamma (as `lrp`), max_target ("sum" or "max"), abs_norm (default true); arrays scores
    /// and neurons [N, C] (the most relevant neuron, y * W + x, of the layer's H x W).
    func conceptScores(_ o: Options, _ a: inout Arrays) throws -> CallResult {
        let x = try batch(try a.require("x"), what: "relevance maximization")
        guard let layer = try o.string("layer") else { throw CallError(.invalidArgument, "concept_scores: option layer is required") }
        let lrp = try self.lrp(o)
        let name = try o.string("max_target") ?? "sum"
        guard let target = RelevanceMaximization.Target(rawValue: name) else {
            throw CallError(.invalidArgument, "max_target \(name): expected sum or max")
        }
        let absNorm = try o.bool("abs_norm") ?? true
        let targets = try self.targets(o, n: x.n, x: x.tensor)
        try o.finish(); try a.finish()
        let s = try RelevanceMaximization(layer: layer, lrp: lrp, target: target, absNorm: absNorm).scores(model, input: x.tensor, targets: targets)
        return try CallResult(json: ["targets": targets, "height": s.height, "width": s.width],
                              arrays: ["scores": HostArray(values: s.scores, shape: [s.count, s.channels]),
                                       "neurons": HostArray(values: s.neurons.map(Float.init), shape: [s.count, s.channels])])
    }

    /// zennit-crp's reference heatmaps (`RelevanceMaximization.referenceHeatmaps`): options layer
    /// and channel (required), neurons (one per image, y * W + x; absent: the whole channel),
    /// composite, epsilon and gamma; array heatmaps [N, H, W]; json crops, per image zennit-crp's
    /// window [row0, row1, col0, col1] (ends excluded) or null.
    func referenceHeatmaps(_ o: Options, _ a: inout Arrays) throws -> CallResult {
        let x = try batch(try a.require("x"), what: "reference heatmaps")
        guard let layer = try o.string("layer") else { throw CallError(.invalidArgument, "reference_heatmaps: option layer is required") }
        guard let channel = try o.int("channel", in: 0...(1 << 24)) else { throw CallError(.invalidArgument, "reference_heatmaps: option channel is required") }
        let lrp = try self.lrp(o)
        let neurons = try o.ints("neurons", in: 0...(1 << 30))
        try o.finish(); try a.finish()
        let maps = try RelevanceMaximization(layer: layer, lrp: lrp).referenceHeatmaps(model, input: x.tensor, channel: channel, neurons: neurons)
        let crops: [Any] = maps.map { map in
            RelevanceMaximization.crop(map, width: x.w, height: x.h).map { [$0.rows.lowerBound, $0.rows.upperBound, $0.columns.lowerBound, $0.columns.upperBound] as Any } ?? NSNull()
        }
        return try CallResult(json: ["crops": crops], arrays: ["heatmaps": HostArray(values: maps.flatMap { $0 }, shape: [x.n, x.h, x.w])])
    }

    /// The LRP rules of options composite, epsilon and gamma (the `lrp` method's defaults).
    func lrp(_ o: Options) throws -> LRP {
        let d = MethodRegistry.Settings(layer: "")
        return try LRP(composite: try o.string("composite") ?? d.composite, epsilon: try o.float("epsilon", in: 0...Float.greatestFiniteMagnitude) ?? d.epsilon,
                       gamma: try o.float("gamma", in: 0...Float.greatestFiniteMagnitude) ?? d.gamma)
    }

    /// The model randomization checks (Adebayo et al.'s cascade, Quantus' MPRT, smooth MPRT and
    /// efficient MPRT): x [1, 3, H, W]; options methods, target, test, granularity, order,
    /// stages, seed (the weights'), smooth_samples, smooth_noise, noise_seed, batch, layer (the
    /// CAM family's).
    func sanity(_ o: Options, _ a: inout Arrays) throws -> CallResult {
        let x = try batch(try a.require("x"), what: "the sanity check")
        guard x.n == 1 else { throw CallError(.invalidArgument, "sanity takes one image [1, 3, H, W], got \(x.n)") }
        let names = try o.strings("methods") ?? ["gradient", "gradcam"]
        let settings = MethodRegistry.Settings(layer: try o.string("layer") ?? model.architecture.lastConvLayer)
        let methods = try names.map { text in
            guard let e = MethodRegistry.entry(text) else { throw CallError(.invalidArgument, "unknown method \(text); Loupe has \(MethodRegistry.names.joined(separator: ", "))") }
            return try e.make(settings)
        }
        let testName = try o.string("test") ?? "cascade"
        guard let test = RandomizationTest(rawValue: testName) else {
            throw CallError(.invalidArgument, "unknown test \(testName); expected \(RandomizationTest.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let stages = try o.int("stages", in: 1...10_000)
        let seed = try o.uint64("seed") ?? 1
        var randomization = test.randomization(seed: seed)
        if let g = try o.string("granularity") {
            guard let granularity = ModelRandomization.Granularity(rawValue: g) else { throw CallError(.invalidArgument, "granularity \(g): expected block or layer") }
            randomization.granularity = granularity
        }
        if let text = try o.string("order") {
            guard let order = ModelRandomization.Order(rawValue: text) else { throw CallError(.invalidArgument, "order \(text): expected top_down, bottom_up or independent") }
            randomization.order = order
        }
        let samples = try o.int("smooth_samples", in: 1...100_000), noise = try o.float("smooth_noise", in: 0...Float.greatestFiniteMagnitude)
        let noiseSeed = try o.uint64("noise_seed"), chunk = try o.int("batch", in: 1...4096)
        if !test.smooths && (samples != nil || noise != nil || noiseSeed != nil) {
            throw CallError(.invalidArgument, "smooth_samples, smooth_noise and noise_seed belong to the smooth_mprt test")
        }
        let smoothing = test.smooths ? MapSmoothing(samples: samples ?? 50, magnitude: noise ?? 0.1, batch: chunk ?? 8, seed: noiseSeed ?? 0) : nil
        let target = try self.targets(o, n: 1, x: x.tensor)[0]
        try o.finish(); try a.finish()
        if let smoothing {
            try MemoryBudget.requirePass(model, batch: Swift.min(smoothing.batch, smoothing.samples), height: x.h, width: x.w,
                                         what: "smooth MPRT's noisy copies")
        }
        let check = try SanityCheck(model: model, image: x.tensor, target: target, methods: methods, randomization: randomization,
                                    stageCount: stages, smoothing: smoothing, finalOnly: test.finalOnly)
        let maps = check.stages.flatMap { $0.maps.flatMap { $0 } }
        return try CallResult(json: ["methods": check.methods, "target": target, "stages": check.stages.map(\.name), "test": test.rawValue,
                                     "granularity": randomization.granularity.rawValue, "order": randomization.order.rawValue,
                                     "spearman": check.stages.map { $0.spearman.map(jsonNumber) }, "ssim": check.stages.map { $0.ssim.map(jsonNumber) },
                                     "entropy": check.stages.map { $0.entropy.map(jsonNumber) }, "mean_spearman": check.meanSpearman.map(jsonNumber),
                                     "entropy_rise": check.entropyRise.map(jsonNumber)],
                              arrays: ["maps": HostArray(values: maps, shape: [check.stages.count, check.methods.count, x.h, x.w])])
    }
}

/// The calls that need no model: devices, methods, preprocess.
enum Calls {
    static func run(_ op: String, _ o: Options, _ a: inout Arrays) throws -> CallResult {
        switch op {
        case "devices":
            try o.finish(); try a.finish()
            let devices = (try? ComputeDevice.all()) ?? []
            let preferred = ComputeDevice.preferred(among: devices)
            return try CallResult(json: ["devices": devices.enumerated().map { i, d in
                ["name": "opencl:\(i)", "device": d.name, "vendor": d.vendor, "platform": d.platform.name, "kind": "\(d.kind)",
                 "compute_units": d.computeUnits, "memory": d.globalMemory, "default": d.id == preferred?.id] as [String: Any]
            } + [["name": "cpu", "device": "CPU reference (plain Swift)", "vendor": "", "platform": "", "kind": "reference",
                  "compute_units": 1, "memory": 0, "default": preferred == nil] as [String: Any]]])
        case "methods":
            try o.finish(); try a.finish()
            return try CallResult(json: ["methods": MethodRegistry.entries.map { e in
                ["name": e.name, "reads_layer": e.readsLayer, "slow": e.cost == .slow, "transformer_only": e.transformerOnly] as [String: Any]
            }])
        case "preprocess":
            guard let path = try o.string("path") else { throw CallError(.invalidArgument, "preprocess: option path is required") }
            let p = try Session.preprocessing(o)
            try o.finish(); try a.finish()
            let original = try RGBImage(contentsOf: URL(fileURLWithPath: path))
            let prepared = try p.prepare(original)
            return try CallResult(json: ["width": prepared.width, "height": prepared.height, "original_width": original.width, "original_height": original.height],
                                  arrays: ["x": HostArray(values: p.normalize(prepared), shape: [1, 3, prepared.height, prepared.width]),
                                           "image": HostArray(values: prepared.planes, shape: [3, prepared.height, prepared.width])])
        default:
            throw CallError(.invalidArgument, "unknown call \(op) without a model; expected devices, methods, preprocess")
        }
    }
}
