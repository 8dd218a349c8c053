import BackendCore

/// A tape over a `Backend`: ops called on a `Graph` run at once on the backend and are recorded,
/// so `backward` can run the backward pass from any value to the input and, when asked, to the
/// parameters. Named taps capture a layer's activation and, after `backward`, its gradient,
/// without changing the model. One graph is one forward pass; make a new one per pass (the
/// tensors it holds are freed with it).
///
/// Everything stays on the backend: no host round trip happens during a pass.
public final class Graph {
    /// Where every op of this pass runs.
    public let backend: any Backend
    /// Whether `parameter` values get gradients (off: only the input and activations do).
    public let parameterGradients: Bool

    /// A value recorded on this graph.
    public struct Value: Hashable, Sendable {
        /// The value's index among the graph's nodes, in recording order.
        public let id: Int
    }

    /// A backward rule: from the output gradient, the gradients of the inputs whose `needs` is
    /// true (nil elsewhere). `rule` is the activation override of this pass.
    typealias Backward = (_ gy: Tensor, _ rule: GradientRule, _ needs: [Bool]) throws -> [Tensor?]

    /// A convolution's backward to its input alone (`inputs[0]`), for passes that ask nothing
    /// else: `gyMasked`, gy already went through this op's own fused activation's backward (the
    /// op reading its output applied it); `maskInput`, the fused activation that made the input,
    /// whose backward the op may apply as it stores dL/dx. Returns dL/dx and whether it did.
    typealias InputBackward = (_ gy: Tensor, _ rule: GradientRule, _ gyMasked: Bool, _ maskInput: Activation?) throws
        -> (gradient: Tensor, inputMasked: Bool)

    struct Node {
        let inputs: [Int]
        let backward: Backward
        /// The activation fused into this op's output (a conv + ReLU or ReLU6), or an activation op's kind.
        var activation: Activation? = nil
        var inputBackward: InputBackward? = nil
        /// The input (an index into `inputs`) whose gradient is gy through this op's fused
        /// activation and nothing else (a residual op's shortcut); `inputBackward` still serves
        /// a pass that asks for it besides `inputs[0]`.
        var passThrough: Int? = nil
        /// How relevance propagation treats this op (`relevance(from:seed:composite:)`); nil:
        /// the gradient.
        var relevance: RelevanceRole? = nil
        /// The op's input and output where DeepLIFT replaces its gradient (`deepLift`).
        var difference: DifferenceRole? = nil
        /// Whether `backward` also takes the gradient of the first n rows of the op's batch alone
        /// (gy [n, ...] for an output [N, ...]) and gives its inputs' gradients for those rows,
        /// reading its forward tensors' first rows (`leading`): DeepLIFT's backward runs over
        /// its pass's inputs' half so. False: gy must be the whole batch's.
        var rowwise = false
    }

    private(set) var tensors: [Tensor] = []
    /// Ones and zeros of each length asked for in this pass (axisAffine's identity parts),
    /// uploaded once per pass instead of once per op.
    var unitVectors: [Int: (ones: Tensor, zeros: Tensor)] = [:]
    /// Ones of each shape a DeepLIFT pass asked for, uploaded once per pass.
    var onesByShape: [Shape: Tensor] = [:]
    /// Copies of forward tensors' first rows (`leading`), by the storage they were copied from
    /// (held, so that its identifier is not reused).
    private var leadingCopies: [ObjectIdentifier: (source: any TensorStorage, copy: Tensor)] = [:]
    var nodes: [Node?] = []
    var requiresGrad: [Bool] = []
    /// Values known to hold no negative number (an activation's output, pools and sums of
    /// such): relevance rules skip the negative part of their input there.
    var nonNegative = Set<Int>()
    private var tapOrder: [(name: String, id: Int)] = []
    private(set) var tapIndex: [String: Int] = [:]
    /// Other names of taps (alias -> tap name): an imported graph's module names for the node
    /// outputs that are those modules' outputs (`layer4` for `/layer4/layer4.1/relu_1/Relu`).
    public private(set) var aliases: [String: String] = [:]
    /// The tap a layer name or alias names.
    func tapID(_ name: String) -> Int? { tapIndex[name] ?? aliases[name].flatMap { tapIndex[$0] } }
    /// Layers after which a forward pass may stop: once all of them are tapped, `stopped` is
    /// true and sequential containers skip the rest (feature inversion needs no logits).
    public var stopWhenTapped: Set<String> = []
    /// Whether convolutions with a bias and batch norms record the bias they add per channel
    /// (a batch norm's: beta - mean gamma / sqrt(var + eps), its output for a zero input), for
    /// `bias(of:)` (FullGrad reads them). Off by default: nothing is recorded.
    public var recordsBiases = false
    var biases: [Int: Tensor] = [:]
    /// The per-channel bias [C] the op that made `v` adds, when `recordsBiases` was on.
    public func bias(of v: Value) -> Tensor? { biases[v.id] }
    /// Whether every layer of `stopWhenTapped` has been tapped: the rest of the pass may be skipped.
    public var stopped: Bool { !stopWhenTapped.isEmpty && stopWhenTapped.allSatisfy { tapID($0) != nil } }
    /// Layers whose own outputs this pass must produce. nil (the default): every layer, each
    /// op as the model defines it. A set: the model may fuse a convolution with the batchnorm and
    /// ReLU after it (`mayFuse`), computing and tapping neither intermediate output unless it is
    /// named here (or in `stopWhenTapped`). Attribution and visualization name the layers they
    /// read; `loupe layers` and `compare` keep every layer.
    public var keptLayers: Set<String>?
    /// Whether no backward pass follows this one (classification, the scores of perturbation
    /// methods and metrics): convolutions may then take faster forms with more rounding error
    /// (`Backend.conv2d(_:weight:bias:_:activation:residual:forwardOnly:)`), and `backward` throws.
    public var forwardOnly = false
    /// Layers from which on this pass is differentiated: its `backward` stops at one of them
    /// (`stoppingAt`), as Grad-CAM's and the layer attributions' passes do. Until one of them is
    /// tapped, convolutions take the forward-only forms (as in a `forwardOnly` pass): no
    /// gradient goes through them. Empty (the default): every op may be differentiated.
    public var differentiatedFrom: Set<String> = []
    /// Whether the op recorded now may take a forward-only form (`forwardOnly`, or before every
    /// layer of `differentiatedFrom`).
    var recordsForwardOnly: Bool { forwardOnly || (!differentiatedFrom.isEmpty && !differentiatedFrom.contains { tapID($0) != nil }) }
    /// Whether an op recorded now may take a fused forward-only form: `recordsForwardOnly`
    /// with activations fused (`expandDepthwise`).
    public var takesForwardOnlyFusion: Bool { recordsForwardOnly && fusesActivations }
    /// Whether a residual block's last convolution, the shortcut's sum and the activation after
    /// it may run as one op (`conv2d(_:weight:bias:_:activation:residual:)`) in this pass, where
    /// `mayFuse` allows the layers: passes that take only gradients (attribution by gradients,
    /// visualization) or none (`forwardOnly`). Off by default: relevance and DeepLIFT passes
    /// treat the sum by rules of their own.
    public var fusesResiduals = false
    /// Whether a fused convolution may apply the activation after it as it stores its result
    /// (on by default). Off, the batchnorm is still folded into the convolution but the
    /// activation is its own op, whose input and output a DeepLIFT pass compares.
    public var fusesActivations = true
    /// Whether the layers `names` may be fused into a residual op (`fusesResiduals`).
    public func mayFuseResidual(_ names: [String]) -> Bool { (fusesResiduals || forwardOnly) && mayFuse(names) }
    /// Whether the layers `names` may be fused away in this pass: `keptLayers` is set, names
    /// none of them, and no parameter gradients are asked (folded weights have none of their own).
    public func mayFuse(_ names: [String]) -> Bool {
        guard let kept = keptLayers, !parameterGradients else { return false }
        return names.allSatisfy { !kept.contains($0) && !stopWhenTapped.contains($0) && patches[$0] == nil }
    }
    /// Replacements of layer outputs: when layer `name` is tapped, the pass goes on from the
    /// value its patch returns (of the same shape) instead of the layer's own output, as a
    /// PyTorch forward hook that returns a new output (Captum's LayerIntegratedGradients,
    /// pytorch-grad-cam's AblationCAM). A patched layer is never fused away.
    public var patches: [String: (Graph, Value) throws -> Value] = [:]
    /// Where this pass begins when it goes on from a pass already made (nil, the default: from
    /// its input). See `Resumption`.
    public var resumption: Resumption?
    /// A pass that begins at layer `layer` of a pass already made on the same model and input
    /// size, as AblationCAM's passes do, whose inputs differ only from that layer on: the
    /// model's containers that run their modules in order skip every module before the one
    /// that holds `layer` and go on from `value(name)`, the output of the last skipped module
    /// that it gives, at this pass's batch (the container's own input when it gives none); a
    /// module named `layer` is not run either, its output is `value(layer)`, tapped (and
    /// patched) as the module's would be. Values the pass skipped get no gradient. An imported
    /// graph runs whole.
    public struct Resumption {
        /// The layer the pass begins at.
        public let layer: String
        /// A layer's output in the pass already made, at this pass's batch; nil where that pass
        /// has no such tap (fused away).
        public let value: (String) throws -> Tensor?
        /// Begins at `layer`, reading the outputs before it from `value`.
        public init(layer: String, value: @escaping (String) throws -> Tensor?) { self.layer = layer; self.value = value }
    }
    /// Whether the pass is still skipping towards its resumption's layer (not tapped yet).
    public var resuming: Bool { resumption.map { tapID($0.layer) == nil } ?? false }
    /// Layer types of taps, for listings (`loupe layers`).
    public private(set) var tapKinds: [String: String] = [:]

    /// An empty tape on `backend`. With `parameterGradients`, `backward` also computes the
    /// gradient of every parameter (weights, biases), which attribution never needs.
    public init(backend: any Backend, parameterGradients: Bool = false) {
        self.backend = backend
        self.parameterGradients = parameterGradients
    }

    /// The tensor a value holds.
    public func tensor(_ v: Value) -> Tensor { tensors[v.id] }
    /// Floats held by the values recorded so far (activations kept for the backward pass), not
    /// counting parameters.
    public var storedFloats: Int { tensors.reduce(0) { $0 + $1.shape.count } - parameterFloats }
    private var parameterFloats = 0
    /// The shape of a value.
    public func shape(_ v: Value) -> Shape { tensors[v.id].shape }

    private func leaf(_ t: Tensor, grad: Bool) -> Value {
        tensors.append(t)
        nodes.append(nil)
        requiresGrad.append(grad)
        return Value(id: tensors.count - 1)
    }

    /// The network input; its gradient is computed.
    public func input(_ t: Tensor) -> Value { leaf(t, grad: true) }
    /// A value that never gets a gradient.
    public func constant(_ t: Tensor) -> Value { leaf(t, grad: false) }
    /// A weight: gets a gradient when `parameterGradients` is on.
    public func parameter(_ t: Tensor) -> Value {
        parameterFloats += t.shape.count
        return leaf(t, grad: parameterGradients)
    }

    /// Records `output`, computed from `inputs`, with its backward rule.
    func record(_ output: Tensor, _ inputs: [Value], activation: Activation? = nil, inputBackward: InputBackward? = nil,
                passThrough: Int? = nil, relevance: RelevanceRole? = nil, difference: DifferenceRole? = nil, rowwise: Bool = false,
                _ backward: @escaping Backward) -> Value {
        let grad = inputs.contains { requiresGrad[$0.id] }
        tensors.append(output)
        nodes.append(grad ? Node(inputs: inputs.map(\.id), backward: backward, activation: activation, inputBackward: inputBackward,
                                 passThrough: passThrough, relevance: relevance, difference: difference, rowwise: rowwise) : nil)
        requiresGrad.append(grad)
        return Value(id: tensors.count - 1)
    }

    /// The first `rows` rows of t's batch (its dimension 0): t itself when it has that many,
    /// else a copy, made once per tensor in a pass. Backward rules that take part of their
    /// batch (`Node.rowwise`) read their forward tensors through it.
    func leading(_ t: Tensor, _ rows: Int) throws -> Tensor {
        guard t.shape.rank >= 1, rows != t.shape[0] else { return t }
        guard rows >= 1, rows < t.shape[0] else { throw BackendError("backward", "a gradient of \(rows) rows for \(t.shape)") }
        let shape = Self.leading(t.shape, rows)
        let key = ObjectIdentifier(t.storage)
        if let made = leadingCopies[key]?.copy, made.shape.count == shape.count { return Tensor(shape: shape, storage: made.storage) }
        let parts = try backend.split(Tensor(shape: [1, t.shape.count, 1, 1], storage: t.storage),
                                      sizes: [shape.count, t.shape.count - shape.count])
        leadingCopies[key] = (t.storage, parts[0])
        return Tensor(shape: shape, storage: parts[0].storage)
    }

    /// `s` with `rows` rows (its dimension 0 replaced).
    static func leading(_ s: Shape, _ rows: Int) -> Shape { Shape([rows] + Array(s.dims.dropFirst())) }

    // MARK: Taps

    /// Names `v` as the output of layer `name` (a torchvision module name, e.g. "features.10")
    /// and returns what the pass goes on from: `v`, or its replacement when `patches` has one.
    /// `aliases` are other names of the same output (the modules it is the output of); a patch
    /// under an alias applies as under `name`, and a later tap takes over an alias.
    @discardableResult
    public func tap(_ name: String, _ v: Value, kind: String, aliases: [String] = []) throws -> Value {
        var v = v
        for alias in aliases { self.aliases[alias] = name }
        if let patch = patches[name] ?? aliases.lazy.compactMap({ self.patches[$0] }).first {
            let replaced = try patch(self, v)
            guard shape(replaced) == shape(v) else {
                throw BackendError("patch", "layer \(name)'s replacement is \(shape(replaced)), its output \(shape(v))")
            }
            v = replaced
        }
        if tapIndex[name] == nil { tapOrder.append((name, v.id)) }
        else if let i = tapOrder.firstIndex(where: { $0.name == name }) { tapOrder[i].id = v.id }
        tapIndex[name] = v.id
        tapKinds[name] = kind
        return v
    }

    /// Tapped layer names in the order the forward pass produced them.
    public var tapNames: [String] { tapOrder.map(\.name) }
    /// Every name a layer can be given: the taps, then their aliases (sorted).
    public var layerNames: [String] { tapNames + aliases.keys.filter { tapIndex[$0] == nil }.sorted() }

    /// The activation of layer `name` (a tap or an alias), or nil if no such layer.
    public func tapped(_ name: String) -> Value? { tapID(name).map(Value.init(id:)) }

    // MARK: Backward

    /// Runs the backward pass from `output`, seeded with `seed` (dL/doutput; ones if nil), with
    /// `rule` applied to every ReLU and ReLU6 of this pass whose kind `ruleActivations` holds
    /// (the others take the true gradient: Captum's guided backprop and deconvolution hook
    /// `nn.ReLU` modules only, so ReLU6 keeps its gradient there). Returns the gradient of every value
    /// that requires one; with `stoppingAt` given, of those values (and every value recorded
    /// after the earliest of them) only: ops recorded before it are not differentiated, so
    /// Grad-CAM's pass ends at its layer instead of the input.
    public func backward(from output: Value, seed: Tensor? = nil, rule: GradientRule = .standard,
                         ruleActivations: Set<Activation> = Set(Activation.allCases), stoppingAt: [Value] = []) throws -> Gradients {
        // Each op's rule: the pass's on the activations it names, the true gradient elsewhere.
        let everyKind = rule == .standard || ruleActivations.isSuperset(of: Activation.allCases)
        func ruleOf(_ node: Node) -> GradientRule {
            everyKind ? rule : node.activation.map { ruleActivations.contains($0) ? rule : .standard } ?? rule
        }
        guard !forwardOnly else { throw BackendError("backward", "this pass was run forward only (Graph.forwardOnly)") }
        if !differentiatedFrom.isEmpty {
            let first = differentiatedFrom.compactMap { tapID($0) }.min()
            guard let first, let stop = stoppingAt.map(\.id).min(), stop >= first else {
                throw BackendError("backward", "this pass is differentiated from layers \(differentiatedFrom.sorted()) on "
                                   + "(Graph.differentiatedFrom): its backward must stop there")
            }
        }
        let start = try seed ?? backend.tensor([Float](repeating: 1, count: shape(output).count), shape(output))
        guard start.shape == shape(output) else {
            throw BackendError("backward", "seed \(start.shape) does not match the output \(shape(output))")
        }
        var grads: [Int: Tensor] = [output.id: start]
        // A value's gradient is whole once every later op is done: ops only read earlier values.
        let lowest = stoppingAt.map(\.id).min() ?? 0
        // Values whose gradient already went through their op's fused activation: the one op
        // that reads such a value applied it as it stored the gradient, where its backend could
        // (`Backend.conv2dBackwardInput(_:weight:inputShape:_:fused:)`). Never a value
        // whose gradient the caller reads: the output, a stopping point, a tap of a kept layer
        // (every tap when the pass keeps every layer).
        var readers = [Int](repeating: 0, count: nodes.count)
        for case let node? in nodes { for input in node.inputs { readers[input] += 1 } }
        let readTaps = keptLayers.map { $0.union(stopWhenTapped).compactMap { tapID($0) } } ?? Array(tapIndex.values)
        // Only these gradients are kept once their op is done (an imported graph taps every node:
        // keeping every tap's would hold a gradient of every activation at once).
        let kept = Set(readTaps).union(stoppingAt.map(\.id)).union([output.id])
        var masked = Set<Int>()
        // A stopping point's own op is not differentiated: it would give only earlier values' gradients.
        for id in stride(from: output.id, through: stoppingAt.isEmpty ? 0 : lowest + 1, by: -1) {
            guard let gy = grads[id], let node = nodes[id] else { continue }
            let needs = node.inputs.map { requiresGrad[$0] }
            let passes = node.passThrough.map { needs[$0] } ?? false
            if let inputBackward = node.inputBackward, needs.first == true,
               !needs.indices.dropFirst().contains(where: { needs[$0] && $0 != node.passThrough }) {
                var (gy, gyMasked) = (gy, masked.contains(id))
                if passes, let pass = node.passThrough {
                    // The shortcut's gradient: gy through the fused activation, which the
                    // convolution's backward then takes as already applied.
                    if let activation = node.activation, !gyMasked {
                        gy = try backend.activationBackward(gy, input: tensors[id], activation, rule: ruleOf(node))
                        gyMasked = true
                    }
                    let r = node.inputs[pass]
                    grads[r] = try grads[r].map { try backend.add($0, gy) } ?? gy
                }
                let x = node.inputs[0]
                // The op that made x must take this path too, so that it skips its own mask.
                let producer = nodes[x]
                let producerNeeds = producer?.inputs.map { requiresGrad[$0] } ?? []
                // (With the rule on some kinds only, each activation takes its own backward.)
                let maskable = everyKind && readers[x] == 1 && !kept.contains(x) && producer?.inputBackward != nil
                    && producerNeeds.first == true && !producerNeeds.dropFirst().contains(true)
                let (g, didMask) = try inputBackward(gy, ruleOf(node), gyMasked, maskable ? producer?.activation : nil)
                if didMask { masked.insert(x) }
                grads[x] = try grads[x].map { try backend.add($0, g) } ?? g
                if !kept.contains(id) { grads[id] = nil }
                continue
            }
            let inputGrads = try node.backward(gy, ruleOf(node), needs)
            for (input, g) in zip(node.inputs, inputGrads) {
                guard let g, requiresGrad[input] else { continue }
                grads[input] = try grads[input].map { try backend.add($0, g) } ?? g
            }
            if !kept.contains(id) { grads[id] = nil }
        }
        return Gradients(graph: self, grads: grads)
    }
}

/// The gradients of one backward pass.
public struct Gradients {
    let graph: Graph
    let grads: [Int: Tensor]

    /// dL/dv, or nil if `v` got no gradient (it does not influence the output or needs none).
    public func of(_ v: Graph.Value) -> Tensor? { grads[v.id] }

    /// dL/d(activation of layer `name`). In a pass with `Graph.keptLayers` set, exact for the
    /// layers named there; a fused layer outside them may report dL/d(its pre-activation), its
    /// activation's backward already applied by the op that reads it.
    public func tapped(_ name: String) -> Tensor? { graph.tapped(name).flatMap { grads[$0.id] } }
}
