import Backend
import Foundation
import Graph
import Models

/// The class activation map family, on any layer with a 4-D output (named as `loupe layers`
/// prints it), or a vision transformer's token sequence (laid out on its grid). As pytorch-grad-cam: cam = ReLU(sum_c w_c A_c) at the layer's resolution,
/// min-max normalized (x - min) / (max + 1e-7), resized to the input with bilinear interpolation
/// (half-pixel centres, on the device), then ReLU and normalized again.
public struct CAM: AttributionMethod {
    /// How the channels are weighted; the raw value is the method's name.
    public enum Kind: String, Sendable, CaseIterable {
        /// Grad-CAM (Selvaraju et al.): w_c = mean over the map of dlogit/dA_c.
        case gradCAM = "gradcam"
        /// Grad-CAM++ (Chattopadhay et al.): w_c = sum ReLU(g) * g^2 / (2 g^2 + sum(A_c) g^3).
        case gradCAMPlusPlus = "gradcam++"
        /// LayerCAM (Jiang et al.): cam = sum_c ReLU(g_c) * A_c, elementwise.
        case layerCAM = "layercam"
        /// HiResCAM (Draelos and Carin): cam = sum_c g_c * A_c, elementwise (Grad-CAM without
        /// averaging the gradients over the map).
        case hiResCAM = "hirescam"
        /// XGradCAM (Fu et al.): w_c = sum(g_c * A_c) / (sum(A_c) + 1e-7) over the map.
        case xGradCAM = "xgradcam"
        /// EigenCAM (Muhammad and Yeasin 2020): the activations' projection on their first
        /// principal component (centred over the positions), class-agnostic, no gradients; the
        /// sign Seg-Eigen-CAM's (negated when its minimum outweighs its maximum).
        case eigenCAM = "eigencam"
        /// AblationCAM (Desai and Ramaswamy 2020): w_c = (s - s_c) / s, s the target's logit and
        /// s_c its logit with channel c of the layer ablated (set to 0 when the layer's smallest
        /// value is 0, as after a ReLU; else to that value less 1e7), the ablated layers run
        /// `batch` at a time through the rest of the network (the layer's output replaced).
        case ablationCAM = "ablationcam"
        /// Score-CAM (Wang et al.): w = softmax over channels of the target logit of the input
        /// masked by each channel's map (upsampled with aligned corners, min-max normalized);
        /// the masked passes run `batch` at a time on the device.
        case scoreCAM = "scorecam"
    }

    /// Which member of the family.
    public let kind: Kind
    /// The layer whose activations are weighted, named as `loupe layers` prints it.
    public let layer: String
    /// Score-CAM: masked images per device pass.
    public var batch: Int
    public var name: String { kind.rawValue }

    /// A CAM method of `kind` at `layer` (Score-CAM runs `batch` masked images per pass).
    public init(_ kind: Kind, layer: String, batch: Int = 16) {
        self.kind = kind; self.layer = layer; self.batch = batch
    }

    public func attribute(_ model: Model, input: Tensor, targets: [Int]) throws -> Attribution {
        let (n, h, w) = try checkBatch(input, targets)
        let map = try finishCAM(model.backend, try weightedSums(model, input: input, targets: targets), height: h, width: w)
        return Attribution(method: name, count: n, height: h, width: w, map: map, raw: nil)
    }

    /// The weighted sums at the layer's resolution, before any ReLU, normalization or resizing:
    /// [N, 1, lh, lw] on the host, as Captum's `LayerGradCam` returns them (with
    /// `relu_attributions=False`). Throws as ``attribute(_:input:targets:)``.
    public func layerMaps(_ model: Model, input: Tensor, targets: [Int]) throws -> (values: [Float], shape: Shape) {
        _ = try checkBatch(input, targets)
        let sums = try weightedSums(model, input: input, targets: targets)
        return (try model.backend.values(sums), sums.shape)
    }

    /// sum_c w_c A_c per image at the layer's resolution (LayerCAM: sum_c ReLU(g_c) A_c), before
    /// the ReLU and normalization: [N, 1, lh, lw] on the model's device. The weights are made
    /// there too (Score-CAM's from its masked passes' scores; XGradCAM's quotient of two sums
    /// per channel on the host), so Grad-CAM, Grad-CAM++, LayerCAM and HiResCAM run one forward
    /// and one backward pass with no host round trip.
    func weightedSums(_ model: Model, input: Tensor, targets: [Int]) throws -> Tensor {
        let (n, h, w) = try checkBatch(input, targets)
        let b = model.backend
        if kind == .eigenCAM { return try eigenProjections(model, input: input) }
        if kind == .ablationCAM { return try ablationSums(model, input: input, targets: targets) }
        let pass = try targetGradient(model, input, targets, keeping: [layer], stoppingAtKept: true)
        let (activations, layerGradients, shape) = try layerTensors(pass.graph, pass.grads, layer: layer, model: model)
        guard let gradients = layerGradients else { throw InterpretError("layer \(layer) does not influence the output") }
        let (c, lh, lw) = (shape[1], shape[2], shape[3])
        let weights: Tensor, maps: Tensor
        switch kind {
        case .gradCAM:
            (weights, maps) = (try b.reduce(gradients, .mean, axis: 2), activations)
        case .gradCAMPlusPlus:
            (weights, maps) = (try b.gradCAMPlusPlusWeights(activations, gradients: gradients), activations)
        case .layerCAM:
            (weights, maps) = (try b.tensor([Float](repeating: 1, count: n * c), [n, c]),
                               try b.mul(try b.activation(gradients, .relu), activations))
        case .hiResCAM:
            (weights, maps) = (try b.tensor([Float](repeating: 1, count: n * c), [n, c]), try b.mul(gradients, activations))
        case .xGradCAM:
            // Two sums per channel on the device; their quotient (N x C values) on the host.
            let numerators = try b.values(b.reduce(try b.mul(gradients, activations), .sum, axis: 2))
            let denominators = try b.values(b.reduce(activations, .sum, axis: 2))
            (weights, maps) = (try b.tensor(zip(numerators, denominators).map { $0 / ($1 + 1e-7) }, [n, c]), activations)
        case .eigenCAM:
            return try eigenProjections(model, input: input)
        case .ablationCAM:
            return try ablationSums(model, input: input, targets: targets)
        case .scoreCAM:
            try MemoryBudget.requirePass(model, batch: Swift.min(batch, c), height: h, width: w, what: "score-CAM's batch of masked images")
            let a = try b.values(activations), inputValues = try b.values(input)
            var all: [Float] = []
            for i in 0..<n {
                all += try scoreWeights(model, image: inputValues[(i * 3 * h * w)..<((i + 1) * 3 * h * w)], target: targets[i],
                                        activations: a[(i * c * lh * lw)..<((i + 1) * c * lh * lw)], channels: c, lh: lh, lw: lw, h: h, w: w)
            }
            (weights, maps) = (try b.tensor(all, [n, c]), activations)
        }
        // [N, 1, C] x [N, C, lh * lw] per image.
        let sums = try b.matmul(Tensor(shape: [n, 1, c], storage: weights.storage), Tensor(shape: [n, c, lh * lw], storage: maps.storage),
                                transposeA: false, transposeB: false)
        return Tensor(shape: [n, 1, lh, lw], storage: sums.storage)
    }

    /// AblationCAM's sums [N, 1, lh, lw]: one pass for the layer and the scores, then per image
    /// one pass per channel from the layer on, `batch` channels at a time; each batch's ablated
    /// layers made on the device from the layer's activations by a per-channel scale and shift.
    /// The ablated passes resume from the first (`Graph.resumption`): what comes before the
    /// layer is the same in every one of them, so it is not run again (pytorch-grad-cam runs
    /// the whole network per batch).
    func ablationSums(_ model: Model, input: Tensor, targets: [Int]) throws -> Tensor {
        let (n, h, w) = try checkBatch(input, targets)
        let b = model.backend
        let g = Graph(backend: b)
        g.keptLayers = [layer]
        let logits = try model.forward(g, g.constant(input))
        try checkLayerName(layer, in: g.layerNames, model: model.architecture.name)
        let activations = g.tensor(g.tapped(layer)!)
        guard let (_, c, lh, lw) = activations.shape.nchw else {
            throw InterpretError("ablationcam needs a layer with a 4-D output; \(layer) is \(activations.shape)")
        }
        let classes = g.shape(logits)[1], scores = try b.values(g.tensor(logits))
        try MemoryBudget.requirePass(model, batch: Swift.min(batch, c), height: h, width: w, what: "ablationcam's batch of ablated layers")
        let values = try b.values(activations), plane = c * lh * lw
        let rows = try b.split(Tensor(shape: [1, n * plane, 1, 1], storage: activations.storage), sizes: [Int](repeating: plane, count: n))
        let inputValues = try b.values(input)
        var weights: [Float] = []
        for i in 0..<n {
            guard targets[i] >= 0, targets[i] < classes else { throw InterpretError("target class \(targets[i]) is out of range 0...\(classes - 1)") }
            let score = scores[i * classes + targets[i]]
            let low = values[(i * plane)..<((i + 1) * plane)].min() ?? 0
            let ablated: Float = low == 0 ? 0 : low - 1e7
            let image = try b.tensor(Array(inputValues[(i * 3 * h * w)..<((i + 1) * 3 * h * w)]), [1, 3, h, w])
            var channelScores: [Float] = []
            // The first pass's outputs of this image repeated over a batch, by layer and batch
            // size: made once per image, not once per batch of ablated channels.
            var resumed: [String: Tensor] = [:]
            for start in stride(from: 0, to: c, by: batch) {
                let count = Swift.min(batch, c - start)
                // Row k of the batch: the activations with channel start + k set to `ablated`.
                let repeated = try b.broadcastMul(Tensor(shape: [1, plane, 1, 1], storage: rows[i].storage),
                                                  masks: b.tensor([Float](repeating: 1, count: count), [count, 1, 1, 1]))
                var scale = [Float](repeating: 1, count: count * c), shift = [Float](repeating: 0, count: count * c)
                for k in 0..<count { scale[k * c + start + k] = 0; shift[k * c + start + k] = ablated }
                let bn = BatchNormParams(gamma: try b.tensor(scale, [count * c]), beta: try b.tensor(shift, [count * c]),
                                         mean: try b.tensor([Float](repeating: 0, count: count * c), [count * c]),
                                         variance: try b.tensor([Float](repeating: 1, count: count * c), [count * c]), eps: 0)
                let layerValues = try b.batchNorm2d(Tensor(shape: [1, count * c, lh, lw], storage: repeated.storage), bn)
                let pass = Graph(backend: b)
                pass.keptLayers = [layer]
                pass.forwardOnly = true
                pass.resumption = Graph.Resumption(layer: layer) { name in
                    guard let v = g.tapped(name) else { return nil }
                    let key = "\(name) \(count)"
                    if let made = resumed[key] { return made }
                    let made = try Self.repeated(g.tensor(v), image: i, of: n, count: count, on: b)
                    resumed[key] = made
                    return made
                }
                let patched = pass.constant(Tensor(shape: [count, c, lh, lw], storage: layerValues.storage))
                pass.patches[layer] = { _, _ in patched }
                let images = try b.broadcastMul(image, masks: b.tensor([Float](repeating: 1, count: count * h * w), [count, 1, h, w]))
                let out = try b.values(pass.tensor(try model.forward(pass, pass.constant(images))))
                channelScores += (0..<count).map { out[$0 * classes + targets[i]] }
                Progress.report("ablationcam", i * c + start + count, n * c)
            }
            weights += channelScores.map { (score - $0) / score }
        }
        let sums = try b.matmul(try b.tensor(weights, [n, 1, c]), Tensor(shape: [n, c, lh * lw], storage: activations.storage),
                                transposeA: false, transposeB: false)
        return Tensor(shape: [n, 1, lh, lw], storage: sums.storage)
    }

    /// Image `image` of `t` (a batch of `images`) repeated `count` times: [count, ...].
    static func repeated(_ t: Tensor, image: Int, of images: Int, count: Int, on b: any Backend) throws -> Tensor {
        let per = t.shape.count / images
        let one = images == 1 ? t : try b.split(Tensor(shape: [1, images * per, 1, 1], storage: t.storage),
                                                sizes: [Int](repeating: per, count: images))[image]
        let copies = try b.broadcastMul(Tensor(shape: [1, per, 1, 1], storage: one.storage),
                                        masks: b.tensor([Float](repeating: 1, count: count), [count, 1, 1, 1]))
        return Tensor(shape: Shape([count] + Array(t.shape.dims.dropFirst())), storage: copies.storage)
    }

    /// EigenCAM's projections [N, 1, lh, lw] from one forward pass (`eigenProjection`).
    func eigenProjections(_ model: Model, input: Tensor) throws -> Tensor {
        let g = Graph(backend: model.backend)
        g.keptLayers = [layer]
        _ = try model.forward(g, g.input(input))
        let (activations, _, shape) = try layerTensors(g, nil, layer: layer, model: model)
        guard Swift.min(shape[1], shape[2] * shape[3]) <= 4096 else {
            throw InterpretError("eigencam: layer \(layer) has \(shape[1]) channels at \(shape[2]) x \(shape[3]); at most 4096 on the smaller side")
        }
        return try model.backend.tensor(try Self.eigenProjection(activations, on: model.backend), [shape[0], 1, shape[2], shape[3]])
    }

    /// Each image's activations [N, C, lh, lw] (positions x channels) projected on their first
    /// principal component, on the host in float64, with Seg-Eigen-CAM's sign: N x lh x lw values.
    public static func eigenProjection(_ activations: Tensor, on b: any Backend) throws -> [Float] {
        guard let (n, c, lh, lw) = activations.shape.nchw else { throw InterpretError("eigencam needs [N, C, H, W] activations, got \(activations.shape)") }
        let values = try b.values(activations)
        var out: [Float] = []
        for i in 0..<n {
            var m = [Double](repeating: 0, count: lh * lw * c)
            for ch in 0..<c { for p in 0..<(lh * lw) { m[p * c + ch] = Double(values[(i * c + ch) * lh * lw + p]) } }
            out += firstComponentProjection(m, rows: lh * lw, columns: c).map(Float.init)
        }
        return out
    }

    /// Score-CAM's channel weights for one image (its normalized values and layer activations).
    func scoreWeights(_ model: Model, image values: ArraySlice<Float>, target: Int, activations: ArraySlice<Float>,
                      channels c: Int, lh: Int, lw: Int, h: Int, w: Int) throws -> [Float] {
        let b = model.backend
        let mine = try b.tensor(Array(activations), [1, c, lh, lw])
        let up = try b.resize(mine, height: h, width: w, mode: .bilinearAlignCorners)
        let rows = Tensor(shape: [c, h * w], storage: up.storage)
        let maxs = try b.values(b.max(rows, axis: 1).values)
        let mins = try b.values(b.max(b.scale(rows, -1), axis: 1).values).map { -$0 }
        let scale = zip(maxs, mins).map { 1 / ($0 - $1 + 1e-8) }
        let shift = zip(mins, scale).map { -$0 * $1 }
        let bn = BatchNormParams(gamma: try b.tensor(scale, [c]), beta: try b.tensor(shift, [c]),
                                 mean: try b.tensor([Float](repeating: 0, count: c), [c]),
                                 variance: try b.tensor([Float](repeating: 1, count: c), [c]), eps: 0)
        let masks = try b.batchNorm2d(up, bn)  // [1, C, H, W], each channel in [0, 1]
        let image = try b.tensor(Array(values), [1, 3, h, w])
        var scores: [Float] = []
        let sizes = stride(from: 0, to: c, by: batch).map { Swift.min(batch, c - $0) }
        for (part, size) in zip(try b.split(masks, sizes: sizes), sizes) {
            let batchMasks = Tensor(shape: [size, 1, h, w], storage: part.storage)
            scores += try targetScores(model, try b.broadcastMul(image, masks: batchMasks), [Int](repeating: target, count: size))
            Progress.report("scorecam", scores.count, c)
        }
        let top = scores.max() ?? 0
        let e = scores.map { exp($0 - top) }
        let total = e.reduce(0, +)
        return e.map { $0 / total }
    }
}

/// The activation and gradient (when `grads` is given) of `layer` after a pass, checked to be 4-D.
func layerTensors(_ g: Graph, _ grads: Gradients?, layer: String, model: Model) throws -> (Tensor, Tensor?, Shape) {
    try checkLayerName(layer, in: g.layerNames, model: model.architecture.name)
    let value = g.tapped(layer)!
    let shape = g.shape(value)
    guard shape.rank == 4 || tokenGrid(shape) != nil else {
        let valid = g.tapNames.filter { g.shape(g.tapped($0)!).rank == 4 || tokenGrid(g.shape(g.tapped($0)!)) != nil }
        throw InterpretError("layer \(layer) has a \(shape.rank)-D output \(shape); CAM methods need a 4-D one (or a transformer's tokens [N, s^2, C] or [N, 1 + s^2, C]): "
                             + valid.suffix(8).joined(separator: ", ") + (valid.count > 8 ? " (and \(valid.count - 8) more, see `loupe layers`)" : ""))
    }
    let (activations, gridShape) = try layerGrid(g.backend, g.tensor(value))
    return (activations, try grads.map { try layerGrid(g.backend, try tappedGradient($0, layer)).0 }, gridShape)
}

/// A layer's output as [N, C, lh, lw]: a 4-D output as it is; a transformer's tokens [N, s^2, C]
/// (Swin's and Twins' last stage) or [N, 1 + s^2, C] (a ViT's, the class token dropped) laid out
/// on their s x s grid (pytorch-grad-cam's reshape_transform for Swin and ViT).
func layerGrid(_ b: any Backend, _ t: Tensor) throws -> (Tensor, Shape) {
    let shape = t.shape
    guard let (side, skipped) = tokenGrid(shape) else { return (t, shape) }
    let (n, c) = (shape[0], shape[2])
    let tokens = skipped == 0 ? t : try b.split(Tensor(shape: [n, skipped + side * side, c, 1], storage: t.storage), sizes: [skipped, side * side])[1]
    let channelsFirst = try b.permute(Tensor(shape: [n, side * side, c], storage: tokens.storage), [0, 2, 1])
    return (Tensor(shape: [n, c, side, side], storage: channelsFirst.storage), [n, c, side, side])
}

/// The gradient at `layer` of a pass; an error if the output does not depend on it.
private func tappedGradient(_ grads: Gradients, _ layer: String) throws -> Tensor {
    guard let gradient = grads.tapped(layer) else {
        throw InterpretError("layer \(layer) does not influence the output (to explain an objective, name a layer before the ones it reads)")
    }
    return gradient
}

/// The side s of a token sequence [N, 1 + s^2, C] (a class token and an s x s grid), or nil.
public func tokenGridSide(_ shape: Shape) -> Int? {
    guard shape.rank == 3, shape[1] > 1 else { return nil }
    let side = Int(Double(shape[1] - 1).squareRoot().rounded())
    return side * side == shape[1] - 1 ? side : nil
}

/// The grid of a token sequence a CAM lays out: [N, s^2, C] (s > 1, no class token) or
/// [N, 1 + s^2, C] (a class token first); the side s and the tokens before the grid, or nil.
/// (No count is both: s^2 + 1 is never a square for s > 0.)
public func tokenGrid(_ shape: Shape) -> (side: Int, skipped: Int)? {
    guard shape.rank == 3, shape[1] > 1 else { return nil }
    let side = Int(Double(shape[1]).squareRoot().rounded())
    if side > 1, side * side == shape[1] { return (side, 0) }
    return tokenGridSide(shape).map { ($0, 1) }
}

/// pytorch-grad-cam's post-processing of CAMs [N, 1, lh, lw] on their device: ReLU and
/// normalize, resize to the input (bilinear, half-pixel centres), ReLU and normalize again.
/// The maps [N * h * w] on the host.
func finishCAM(_ b: any Backend, _ cams: Tensor, height h: Int, width w: Int) throws -> [Float] {
    try b.values(b.normalizePlanes(b.resizeBilinear(b.normalizePlanes(cams), height: h, width: w)))
}

/// Guided Grad-CAM (Selvaraju et al.), as Captum's GuidedGradCam: guided backprop times the
/// layer's ReLU(Grad-CAM), upsampled to the input by nearest neighbour (on the device).
public struct GuidedGradCAM: AttributionMethod {
    /// The Grad-CAM layer.
    public let layer: String
    public var name: String { "guided_gradcam" }
    /// The activation kinds guided backprop's rule applies to (Captum's: `[.relu]`).
    public var activations: Set<Activation>
    /// Guided Grad-CAM at `layer`, guided backprop on `activations` (every ReLU and ReLU6 by default).
    public init(layer: String, activations: Set<Activation> = Set(Activation.allCases)) { self.layer = layer; self.activations = activations }

    public func attribute(_ model: Model, input: Tensor, targets: [Int]) throws -> Attribution {
        let (n, h, w) = try checkBatch(input, targets)
        let b = model.backend
        let cams = try CAM(.gradCAM, layer: layer).weightedSums(model, input: input, targets: targets)
        let cam = try b.resize(try b.activation(cams, .relu), height: h, width: w, mode: .nearest)
        let guided = try targetGradient(model, input, targets, rule: .guided, ruleActivations: activations)
        let raw = try b.broadcastMul(try inputGradient(guided), masks: cam)
        return Attribution(method: name, count: n, height: h, width: w, map: try b.values(absChannelMax(b, raw)), raw: try b.values(raw))
    }
}
