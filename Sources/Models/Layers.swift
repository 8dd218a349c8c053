import Backend
import Graph

/// torch.nn.Conv2d: `weight` [out, in / groups, k, k] and optionally `bias` [out].
public struct Conv2d: Module {
    public let name: String
    /// Input and output channels, and the (square) window size.
    public let inChannels, outChannels, kernel: Int
    /// Stride, padding, dilation and groups.
    public let params: Conv2DParams
    /// Whether it has a `bias` parameter.
    public let hasBias: Bool
    public var kind: String { "Conv2d" }

    /// A convolution named `name` (its parameters are `name.weight` and `name.bias`).
    public init(_ name: String, _ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                dilation: Int = 1, groups: Int = 1, bias: Bool = true) {
        self.name = name
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        params = Conv2DParams(stride: stride, padding: padding, dilation: dilation, groups: groups)
        hasBias = bias
    }

    public var parameters: [ParameterSpec] {
        let fanIn = inChannels / params.groups * kernel * kernel
        return [ParameterSpec(name: join(name, "weight"), shape: [outChannels, inChannels / params.groups, kernel, kernel], role: .weight(fanIn: fanIn))]
            + (hasBias ? [ParameterSpec(name: join(name, "bias"), shape: [outChannels], role: .bias(fanIn: fanIn))] : [])
    }

    public func callAsFunction(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore) throws -> Graph.Value {
        let bias = hasBias ? g.parameter(try p(join(name, "bias"))) : nil
        return try tapped(g, try g.conv2d(x, weight: g.parameter(try p(join(name, "weight"))), bias: bias, params))
    }
}

/// torch.nn.BatchNorm2d in inference mode: running mean and variance, affine weight and bias.
public struct BatchNorm2d: Module {
    public let name: String
    /// Channels normalized.
    public let channels: Int
    /// Added to the running variance before the square root.
    public let eps: Float
    public var kind: String { "BatchNorm2d" }

    /// A batch norm named `name` reading `weight`, `bias`, `running_mean` and `running_var` under it.
    public init(_ name: String, _ channels: Int, eps: Float = 1e-5) {
        self.name = name
        self.channels = channels
        self.eps = eps
    }

    public var parameters: [ParameterSpec] {
        [ParameterSpec(name: join(name, "weight"), shape: [channels], role: .bnWeight),
         ParameterSpec(name: join(name, "bias"), shape: [channels], role: .bnShift),
         ParameterSpec(name: join(name, "running_mean"), shape: [channels], role: .bnShift),
         ParameterSpec(name: join(name, "running_var"), shape: [channels], role: .bnVariance)]
    }

    public func callAsFunction(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore) throws -> Graph.Value {
        let bn = BatchNormParams(gamma: try p(join(name, "weight")), beta: try p(join(name, "bias")),
                                 mean: try p(join(name, "running_mean")), variance: try p(join(name, "running_var")), eps: eps)
        return try tapped(g, try g.batchNorm2d(x, bn))
    }
}

/// ReLU or ReLU6.
public struct ActivationLayer: Module {
    public let name: String
    /// ReLU or ReLU6.
    public let activation: Activation
    public var kind: String { activation == .relu ? "ReLU" : "ReLU6" }
    public var parameters: [ParameterSpec] { [] }
    /// An activation layer named `name`.
    public init(_ name: String, _ activation: Activation) { self.name = name; self.activation = activation }
    public func callAsFunction(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore) throws -> Graph.Value {
        try tapped(g, try g.activation(x, activation))
    }
}

/// torch.nn.MaxPool2d (square window; stride defaults to the window).
public struct MaxPool2d: Module {
    public let name: String
    /// Window, stride, padding and ceil mode.
    public let params: Pool2DParams
    public var kind: String { "MaxPool2d" }
    public var parameters: [ParameterSpec] { [] }
    /// A max pool named `name`; `stride` nil means the window size.
    public init(_ name: String, kernel: Int, stride: Int? = nil, padding: Int = 0, ceilMode: Bool = false) {
        self.name = name
        params = Pool2DParams(kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode)
    }
    public func callAsFunction(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore) throws -> Graph.Value {
        try tapped(g, try g.maxPool2d(x, params))
    }
}

/// torch.nn.AdaptiveAvgPool2d to an h x w output.
public struct AdaptiveAvgPool2d: Module {
    public let name: String
    /// The output's height and width.
    public let size: (h: Int, w: Int)
    public var kind: String { "AdaptiveAvgPool2d" }
    public var parameters: [ParameterSpec] { [] }
    /// An adaptive average pool named `name` to an h x w output.
    public init(_ name: String, _ h: Int, _ w: Int) { self.name = name; size = (h, w) }
    public func callAsFunction(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore) throws -> Graph.Value {
        try tapped(g, try g.adaptiveAvgPool2d(x, outputSize: size))
    }
}

/// torch.nn.Linear: `weight` [out, in], `bias` [out]; the input is flattened first.
public struct Linear: Module {
    public let name: String
    /// Input and output features.
    public let inFeatures, outFeatures: Int
    public var kind: String { "Linear" }
    /// A linear layer named `name` (parameters `name.weight` and `name.bias`).
    public init(_ name: String, _ inFeatures: Int, _ outFeatures: Int) {
        self.name = name; self.inFeatures = inFeatures; self.outFeatures = outFeatures
    }
    public var parameters: [ParameterSpec] {
        [ParameterSpec(name: join(name, "weight"), shape: [outFeatures, inFeatures], role: .weight(fanIn: inFeatures)),
         ParameterSpec(name: join(name, "bias"), shape: [outFeatures], role: .bias(fanIn: inFeatures))]
    }
    public func callAsFunction(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore) throws -> Graph.Value {
        guard g.shape(x).rank == 2, g.shape(x)[1] == inFeatures else {
            throw ModelError("\(name): Linear expects [N, \(inFeatures)] but got \(g.shape(x)); is the input size right for this model?")
        }
        return try tapped(g, try g.linear(x, weight: g.parameter(try p(join(name, "weight"))), bias: g.parameter(try p(join(name, "bias")))))
    }
}

/// Dropout in inference mode: the identity (tapped, so its name can be used).
public struct Dropout: Module {
    public let name: String
    public var kind: String { "Dropout" }
    public var parameters: [ParameterSpec] { [] }
    /// A dropout layer named `name` (the identity at inference).
    public init(_ name: String) { self.name = name }
    public func callAsFunction(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore) throws -> Graph.Value { try tapped(g, x) }
}

/// Children named `name.0`, `name.1`, ... run in order.
public struct Sequential: Module {
    public let name: String
    /// The child modules, run in order.
    public let children: [any Module]
    /// The class name it reports as `kind` ("Sequential", "Conv2dNormActivation", ...).
    public let kindName: String
    public var kind: String { kindName }
    /// A sequence named `name` of `children` (named `name.0`, `name.1`, ... by their builders).
    public init(_ name: String, kind: String = "Sequential", _ children: [any Module]) {
        self.name = name; self.children = children; kindName = kind
    }
    public var parameters: [ParameterSpec] { children.flatMap(\.parameters) }
    public func callAsFunction(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore) throws -> Graph.Value {
        try tapped(g, try runInOrder(children, g, x, p))
    }
}

/// Runs `modules` in order (until the pass stops, when `stopping`), fusing each run of Conv2d, BatchNorm2d and
/// ReLU/ReLU6 (or Conv2d and ReLU/ReLU6) into one convolution when the pass allows it.
func runInOrder(_ modules: [any Module], _ g: Graph, _ x: Graph.Value, _ p: ParameterStore, stopping: Bool = true) throws -> Graph.Value {
    var (h, i) = g.resuming ? try resumePoint(modules, g, x) : (x, 0)
    // Only a pass that stops during this run skips the rest of it. A container entered after
    // the stop (a residual block's shortcut after a stop inside the block, an inception branch
    // after the stop layer's branch) runs whole: its output meets values of the same block.
    let stoppedBefore = g.stopped
    while i < modules.count, !(stopping && g.stopped && !stoppedBefore) {
        if let conv = modules[i] as? Conv2d {
            let norm = i + 1 < modules.count ? modules[i + 1] as? BatchNorm2d : nil
            let next = i + (norm == nil ? 1 : 2)
            let act = next < modules.count ? modules[next] as? ActivationLayer : nil
            if norm != nil || act != nil, g.mayFuse([conv.name] + (norm.map { [$0.name] } ?? [])) {
                h = try fusedConvolution(g, h, p, conv, norm, activation: act?.activation, activationName: act?.name ?? "")
                i = next + (act == nil ? 0 : 1)
                continue
            }
        }
        h = try modules[i](g, h, p)
        i += 1
    }
    return h
}

/// Where a resumed pass (`Graph.resumption`) goes on in `modules`: past the module named its
/// layer, whose output the resumption gives (tapped, so a patch applies); else at the module
/// that holds the layer, from the output of the last module before it that the resumption
/// gives (this run's input `x` when none does). Runs that do not hold the layer start at their
/// first module.
func resumePoint(_ modules: [any Module], _ g: Graph, _ x: Graph.Value) throws -> (Graph.Value, Int) {
    guard let resumption = g.resumption else { return (x, 0) }
    let layer = resumption.layer
    guard let k = modules.firstIndex(where: { !$0.name.isEmpty && (layer == $0.name || layer.hasPrefix($0.name + ".")) }) else {
        return (x, 0)
    }
    if modules[k].name == layer, let output = try resumption.value(layer) {
        return (try g.tap(layer, g.constant(output), kind: modules[k].kind), k + 1)
    }
    for j in stride(from: k, to: 0, by: -1) where !modules[j - 1].name.isEmpty {
        if let output = try resumption.value(modules[j - 1].name) { return (g.constant(output), j) }
    }
    return (x, 0)
}

/// conv, batchnorm (optional) and activation (optional) as one convolution: the batchnorm
/// folded into the weights, the activation applied as the result is stored (a separate op
/// where the pass does not fuse activations, `Graph.fusesActivations`). Taps the result
/// under the activation's name (when it has one) or the batchnorm's. Callers check
/// `Graph.mayFuse` first.
func fusedConvolution(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore, _ conv: Conv2d, _ norm: BatchNorm2d?,
                      activation: Activation?, activationName: String) throws -> Graph.Value {
    let weight: Tensor, bias: Tensor?
    if let norm {
        (weight, bias) = try p.folded(conv, norm, on: g.backend)
    } else {
        weight = try p(join(conv.name, "weight"))
        bias = conv.hasBias ? try p(join(conv.name, "bias")) : nil
    }
    let (w, b) = (g.parameter(weight), bias.map { g.parameter($0) })
    guard let activation else {
        let y = try g.conv2d(x, weight: w, bias: b, conv.params)
        return try norm.map { try g.tap($0.name, y, kind: $0.kind) } ?? y
    }
    let y = g.fusesActivations ? try g.conv2d(x, weight: w, bias: b, conv.params, activation: activation)
        : try g.activation(try g.conv2d(x, weight: w, bias: b, conv.params), activation)
    return activationName.isEmpty ? y : try g.tap(activationName, y, kind: ActivationLayer(activationName, activation).kind)
}

/// activation(batchnorm(conv(x)) + residual) as one op, the batchnorm folded into the
/// convolution. Callers check `Graph.mayFuseResidual` first.
func residualConvolution(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore, _ conv: Conv2d, _ norm: BatchNorm2d,
                         activation: Activation?, residual: Graph.Value) throws -> Graph.Value {
    let (weight, bias) = try p.folded(conv, norm, on: g.backend)
    return try g.conv2d(x, weight: g.parameter(weight), bias: g.parameter(bias), conv.params, activation: activation,
                        residual: residual)
}

/// conv, batchnorm and (optionally) an untapped activation: fused when the pass allows.
func convNorm(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore, _ conv: Conv2d, _ norm: BatchNorm2d,
              activation: Activation?) throws -> Graph.Value {
    if g.mayFuse([conv.name, norm.name]) {
        return try fusedConvolution(g, x, p, conv, norm, activation: activation, activationName: "")
    }
    let y = try norm(g, try conv(g, x, p), p)
    return try activation.map { try g.activation(y, $0) } ?? y
}

/// torchvision's Conv2dNormActivation / ConvBNReLU: conv (no bias), batchnorm, activation, as
/// children 0, 1, 2.
func convNormActivation(_ name: String, _ cin: Int, _ cout: Int, kernel: Int, stride: Int = 1, groups: Int = 1,
                        activation: Activation = .relu6, kind: String = "Conv2dNormActivation") -> Sequential {
    Sequential(name, kind: kind, [
        Conv2d(join(name, "0"), cin, cout, kernel: kernel, stride: stride, padding: (kernel - 1) / 2, groups: groups, bias: false),
        BatchNorm2d(join(name, "1"), cout),
        ActivationLayer(join(name, "2"), activation),
    ])
}
