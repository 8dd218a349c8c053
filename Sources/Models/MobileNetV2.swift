import Backend
import Graph

extension Architectures {
    /// torchvision's mobilenet_v2 (width 1.0): features.0 conv 3x3/2, features.1-17 inverted
    /// residual blocks, features.18 1x1 conv to 1280, then global average pool and
    /// classifier.1 (classifier.0 is dropout).
    static func mobilenetV2(classes: Int) -> Architecture {
        var features: [any Module] = [convNormActivation("features.0", 3, 32, kernel: 3, stride: 2)]
        var cin = 32
        for (t, c, n, s) in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)] {
            for i in 0..<n {
                features.append(InvertedResidual(name: "features.\(features.count)", inChannels: cin, outChannels: c,
                                                 stride: i == 0 ? s : 1, expandRatio: t))
                cin = c
            }
        }
        features.append(convNormActivation("features.18", 320, 1280, kernel: 1))
        let body: [any Module] = [Sequential("features", features), AdaptiveAvgPool2d("", 1, 1), Flatten(),
                                  Sequential("classifier", [Dropout("classifier.0"), Linear("classifier.1", 1280, classes)])]
        return Architecture(name: "mobilenet_v2", body: body, inputTransform: nil, lastConvLayer: "features.18")
    }
}

/// Expand (1x1, unless the ratio is 1), depthwise 3x3, project (1x1, linear); the input is added
/// when the stride is 1 and the channel count is unchanged. Children are named as torchvision's
/// `conv` Sequential: conv.0 (expand), conv.1 (depthwise), conv.2 (project), conv.3 (batchnorm).
struct InvertedResidual: Module {
    let name: String
    let layers: [any Module]
    let residual: Bool
    var kind: String { "InvertedResidual" }

    init(name: String, inChannels: Int, outChannels: Int, stride: Int, expandRatio: Int) {
        self.name = name
        let hidden = inChannels * expandRatio
        var layers: [any Module] = []
        let conv = join(name, "conv")
        if expandRatio != 1 { layers.append(convNormActivation(join(conv, "0"), inChannels, hidden, kernel: 1)) }
        layers.append(convNormActivation(join(conv, "\(layers.count)"), hidden, hidden, kernel: 3, stride: stride, groups: hidden))
        layers.append(Conv2d(join(conv, "\(layers.count)"), hidden, outChannels, kernel: 1, bias: false))
        layers.append(BatchNorm2d(join(conv, "\(layers.count)"), outChannels))
        self.layers = layers
        residual = stride == 1 && inChannels == outChannels
    }

    var parameters: [ParameterSpec] { layers.flatMap(\.parameters) }

    func callAsFunction(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore) throws -> Graph.Value {
        if let y = try fusedBlock(g, x, p) { return try tapped(g, y) }
        // The projection, its batchnorm and the sum as one op, where the pass reads none of the
        // branch's own outputs.
        if residual, let conv = layers[layers.count - 2] as? Conv2d, let norm = layers.last as? BatchNorm2d,
           g.mayFuseResidual([conv.name, norm.name, join(name, "conv")]) {
            let h = try fusedExpandDepthwise(g, x, p) ?? runInOrder(Array(layers.dropLast(2)), g, x, p, stopping: false)
            return try tapped(g, try residualConvolution(g, h, p, conv, norm, activation: nil, residual: x))
        }
        let y = try fusedExpandDepthwise(g, x, p).map { try runInOrder(Array(layers.suffix(2)), g, $0, p, stopping: false) }
            ?? runInOrder(layers, g, x, p, stopping: false)
        let h = try g.tap(join(name, "conv"), y, kind: "Sequential")
        return try tapped(g, residual ? try g.add(x, h) : h)
    }

    /// The expand and depthwise layers' parts (convolution, batchnorm, activation) where the block
    /// has them and the pass may fuse them (reads none of their outputs, takes their forward-only
    /// form); nil otherwise.
    private func expandAndDepthwise(_ g: Graph) -> (Conv2d, BatchNorm2d, Conv2d, BatchNorm2d, Activation)? {
        guard layers.count == 4, g.takesForwardOnlyFusion, !g.resuming, let expand = layers[0] as? Sequential, let depthwise = layers[1] as? Sequential,
              expand.children.count == 3, depthwise.children.count == 3,
              let ec = expand.children[0] as? Conv2d, let en = expand.children[1] as? BatchNorm2d,
              let ea = expand.children[2] as? ActivationLayer, let dc = depthwise.children[0] as? Conv2d,
              let dn = depthwise.children[1] as? BatchNorm2d, let da = depthwise.children[2] as? ActivationLayer,
              ea.activation == da.activation,
              g.mayFuse([expand.name, depthwise.name, join(name, "conv")] + (expand.children + depthwise.children).map(\.name))
        else { return nil }
        return (ec, en, dc, dn, ea.activation)
    }

    /// The whole block, its residual sum included, as one op (`Graph.invertedResidual`) where the
    /// pass reads none of its layers' outputs and takes their forward-only form; nil otherwise,
    /// with nothing run.
    private func fusedBlock(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore) throws -> Graph.Value? {
        guard let (ec, en, dc, dn, activation) = expandAndDepthwise(g), let conv = layers[2] as? Conv2d,
              let norm = layers[3] as? BatchNorm2d, g.mayFuse([conv.name, norm.name]) else { return nil }
        let (we, be) = try p.folded(ec, en, on: g.backend), (wd, bd) = try p.folded(dc, dn, on: g.backend)
        let (wp, bp) = try p.folded(conv, norm, on: g.backend)
        return try g.invertedResidual(x, expandWeight: we, expandBias: be, depthwiseWeight: wd, depthwiseBias: bd, dc.params,
                                      activation: activation, projectWeight: wp, projectBias: bp, residual: residual)
    }

    /// The expand and depthwise layers (with their batchnorms and activations) as one op
    /// (`Graph.expandDepthwise`) where the pass reads none of their outputs and takes their
    /// forward-only form; nil otherwise, with nothing run.
    private func fusedExpandDepthwise(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore) throws -> Graph.Value? {
        guard let (ec, en, dc, dn, activation) = expandAndDepthwise(g) else { return nil }
        let (we, be) = try p.folded(ec, en, on: g.backend), (wd, bd) = try p.folded(dc, dn, on: g.backend)
        return try g.expandDepthwise(x, expandWeight: we, expandBias: be, depthwiseWeight: wd, depthwiseBias: bd, dc.params,
                                     activation: activation)
    }
}
