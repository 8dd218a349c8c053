import BackendCore

// Each op: the forward call on the backend, and right after it the backward rule.
extension Graph {
    /// `v`, marked as holding no negative number when every one of `inputs` holds none (an op
    /// that only selects, averages, adds or moves its inputs' values).
    func keepingSign(of inputs: [Value], _ v: Value) -> Value {
        if inputs.allSatisfy({ nonNegative.contains($0.id) }) { nonNegative.insert(v.id) }
        return v
    }

    /// A convolution (see `Backend.conv2d`); backward to the input, the weight and the bias.
    public func conv2d(_ x: Value, weight: Value, bias: Value?, _ p: Conv2DParams) throws -> Value {
        let (xt, wt) = (tensor(x), tensor(weight))
        let y = try backend.conv2d(xt, weight: wt, bias: bias.map(tensor), p, activation: nil, residual: nil, forwardOnly: recordsForwardOnly)
        let b = backend
        let v = record(y, [x, weight] + (bias.map { [$0] } ?? []), inputBackward: { gy, rule, _, mask in
            try b.conv2dBackwardInput(gy, weight: wt, inputShape: xt.shape, p,
                                      fused: ConvolutionFusion(rule: rule, input: mask.map { .init($0, xt) }))
        }, relevance: .convolution(xt, weight: wt, bias: bias.map(tensor), p, nonNegative: nonNegative.contains(x.id), on: b),
                       rowwise: true) { [unowned self] gy, _, needs in
            let rows = gy.shape[0]
            return [needs[0] ? try b.conv2dBackwardInput(gy, weight: wt, inputShape: Self.leading(xt.shape, rows), p) : nil,
                    needs[1] ? try b.conv2dBackwardWeight(gy, input: try leading(xt, rows), weightShape: wt.shape, p) : nil]
                + (needs.count > 2 ? [needs[2] ? try b.conv2dBackwardBias(gy) : nil] : [])
        }
        if recordsBiases, let bias { biases[v.id] = tensor(bias) }
        return v
    }

    /// conv2d and `activation` as one op (a conv with its batchnorm folded in and the ReLU after
    /// them, in a fused pass). The activation's backward reads the output instead of the input:
    /// its mask is the same (y > 0 iff x > 0; 0 < y < 6 iff 0 < x < 6), under every rule.
    public func conv2d(_ x: Value, weight: Value, bias: Value?, _ p: Conv2DParams, activation: Activation) throws -> Value {
        let (xt, wt) = (tensor(x), tensor(weight))
        let b = backend
        let y = try b.conv2d(xt, weight: wt, bias: bias.map(tensor), p, activation: activation, residual: nil, forwardOnly: recordsForwardOnly)
        let inputBackward: InputBackward = { gy, rule, gyMasked, mask in
            // gy already masked by the op that reads y: as a plain convolution, x's mask fused
            // where the backend can. Otherwise y's mask applied as the backward reads gy, and
            // x's own mask left to its op.
            try b.conv2dBackwardInput(gy, weight: wt, inputShape: xt.shape, p,
                                      fused: gyMasked ? ConvolutionFusion(rule: rule, input: mask.map { .init($0, xt) })
                                                      : ConvolutionFusion(rule: rule, output: .init(activation, y)))
        }
        // dL/dx alone (every attribution pass) goes through inputBackward (Graph.backward); this
        // rule serves passes that also ask for parameter gradients.
        // Relevance passes the activation unchanged (zennit's Pass rule) and takes the
        // convolution's rule.
        let v = record(y, [x, weight] + (bias.map { [$0] } ?? []), activation: activation, inputBackward: inputBackward,
                       relevance: .convolution(xt, weight: wt, bias: bias.map(tensor), p, nonNegative: nonNegative.contains(x.id), on: b)) { gy, rule, needs in
            let gz = try b.activationBackward(gy, input: y, activation, rule: rule)
            return [needs[0] ? try b.conv2dBackwardInput(gz, weight: wt, inputShape: xt.shape, p) : nil,
                    needs[1] ? try b.conv2dBackwardWeight(gz, input: xt, weightShape: wt.shape, p) : nil]
                + (needs.count > 2 ? [needs[2] ? try b.conv2dBackwardBias(gz) : nil] : [])
        }
        nonNegative.insert(v.id)
        return v
    }

    /// An inverted residual's expand and depthwise layers (their batchnorms folded) as one op,
    /// where this op takes a forward-only form (`forwardOnly`, or before every tap a backward
    /// starts from), activations are fused and the backend has the kernel
    /// (`Backend.expandDepthwise`); nil otherwise, with nothing recorded: the caller runs the
    /// layers one by one. Callers check `mayFuse` for the layers' names first.
    public func expandDepthwise(_ x: Value, expandWeight: Tensor, expandBias: Tensor, depthwiseWeight: Tensor, depthwiseBias: Tensor,
                                _ p: Conv2DParams, activation: Activation) throws -> Value? {
        guard takesForwardOnlyFusion,
              let y = try backend.expandDepthwise(tensor(x), expandWeight: expandWeight, expandBias: expandBias,
                                                  depthwiseWeight: depthwiseWeight, depthwiseBias: depthwiseBias, p,
                                                  activation: activation) else { return nil }
        let v = record(y, [x]) { _, _, _ in
            throw BackendError("expand depthwise", "an expand and depthwise pair fused in a forward-only pass has no backward")
        }
        nonNegative.insert(v.id)
        return v
    }

    /// A whole inverted residual (batchnorms folded) as one op, forward only, where this op takes
    /// a forward-only form and the backend has a fused form (`Backend.invertedResidual`): the
    /// projection has no activation after it, and x is added where `residual`. Nil otherwise,
    /// with nothing recorded. Callers check `mayFuse` for every layer of the block first.
    public func invertedResidual(_ x: Value, expandWeight: Tensor, expandBias: Tensor, depthwiseWeight: Tensor, depthwiseBias: Tensor,
                                 _ p: Conv2DParams, activation: Activation, projectWeight: Tensor, projectBias: Tensor,
                                 residual: Bool) throws -> Value? {
        guard takesForwardOnlyFusion,
              let y = try backend.invertedResidual(tensor(x), expandWeight: expandWeight, expandBias: expandBias,
                                                   depthwiseWeight: depthwiseWeight, depthwiseBias: depthwiseBias, p,
                                                   activation: activation, projectWeight: projectWeight, projectBias: projectBias,
                                                   residual: residual) else { return nil }
        return record(y, [x]) { _, _, _ in
            throw BackendError("inverted residual", "an inverted residual fused in a forward-only pass has no backward")
        }
    }

    /// activation(conv2d(x) + r) as one op (`mayFuseResidual`): a residual block's last
    /// convolution (its batchnorm folded in), the shortcut r added and the activation after the
    /// sum (a ResNet block's ReLU; none after MobileNetV2's projection). Its backward is the
    /// gradient's: gy through the activation (its mask read from the output, as the other fused
    /// convolutions read it) to the convolution and unchanged to r.
    public func conv2d(_ x: Value, weight: Value, bias: Value?, _ p: Conv2DParams, activation: Activation?, residual r: Value) throws -> Value {
        let (xt, wt, rt) = (tensor(x), tensor(weight), tensor(r))
        let b = backend
        let y = try b.conv2d(xt, weight: wt, bias: bias.map(tensor), p, activation: activation, residual: rt, forwardOnly: recordsForwardOnly)
        // dL/dx alone, or with dL/dr (Graph.backward applies the activation for r first):
        // as the fused convolution's.
        let inputBackward: InputBackward = { gy, rule, gyMasked, mask in
            let fused = activation.flatMap { gyMasked ? nil : ConvolutionFusion(rule: rule, output: .init($0, y)) }
                ?? ConvolutionFusion(rule: rule, input: mask.map { .init($0, xt) })
            return try b.conv2dBackwardInput(gy, weight: wt, inputShape: xt.shape, p, fused: fused)
        }
        let inputs = [x, weight] + (bias.map { [$0] } ?? []) + [r]
        let v = record(y, inputs, activation: activation, inputBackward: inputBackward, passThrough: inputs.count - 1) { gy, rule, needs in
            let gz = try activation.map { try b.activationBackward(gy, input: y, $0, rule: rule) } ?? gy
            return [needs[0] ? try b.conv2dBackwardInput(gz, weight: wt, inputShape: xt.shape, p) : nil,
                    needs[1] ? try b.conv2dBackwardWeight(gz, input: xt, weightShape: wt.shape, p) : nil]
                + (bias == nil ? [] : [needs[2] ? try b.conv2dBackwardBias(gz) : nil]) + [gz]
        }
        if activation != nil { nonNegative.insert(v.id) }
        return v
    }

    /// ReLU or ReLU6; its backward follows the pass's rule (standard, guided, deconvnet).
    public func activation(_ x: Value, _ kind: Activation) throws -> Value {
        let xt = tensor(x)
        let b = backend
        let y = try b.activation(xt, kind)
        let v = record(y, [x], activation: kind, relevance: .pass, difference: .activation(xt, y, kind), rowwise: true) { [unowned self] gy, rule, _ in
            [try b.activationBackward(gy, input: try leading(xt, gy.shape[0]), kind, rule: rule)]
        }
        nonNegative.insert(v.id)
        return v
    }

    /// Max pooling; the backward routes each gradient to its window's maximum.
    public func maxPool2d(_ x: Value, _ p: Pool2DParams) throws -> Value {
        let xt = tensor(x)
        let b = backend
        let y = try b.maxPool2d(xt, p)
        return keepingSign(of: [x], record(y, [x], difference: .maxPool(xt, y, p), rowwise: true) { [unowned self] gy, _, _ in
            [try b.maxPool2dBackward(gy, input: try leading(xt, gy.shape[0]), p)]
        })
    }

    /// Average pooling; the backward spreads each gradient over its window.
    public func avgPool2d(_ x: Value, _ p: Pool2DParams) throws -> Value {
        let shape = self.shape(x)
        let b = backend
        let xt = tensor(x), y = try b.avgPool2d(xt, p)
        return keepingSign(of: [x], record(y, [x], relevance: .proportional([xt], y) { [try b.avgPool2dBackward($0, inputShape: shape, p)] },
                                           rowwise: true) { gy, _, _ in
            [try b.avgPool2dBackward(gy, inputShape: Self.leading(shape, gy.shape[0]), p)]
        })
    }

    /// Adaptive average pooling to `outputSize`, as PyTorch bins it.
    public func adaptiveAvgPool2d(_ x: Value, outputSize: (h: Int, w: Int)) throws -> Value {
        let shape = self.shape(x)
        let b = backend
        let xt = tensor(x), y = try b.adaptiveAvgPool2d(xt, outputSize: outputSize)
        return keepingSign(of: [x], record(y, [x], relevance: .proportional([xt], y) { [try b.adaptiveAvgPool2dBackward($0, inputShape: shape)] },
                                           rowwise: true) { gy, _, _ in
            [try b.adaptiveAvgPool2dBackward(gy, inputShape: Self.leading(shape, gy.shape[0]))]
        })
    }

    /// Each plane of x [N, C, H, W] resized to `height` x `width` with one of PyTorch's
    /// interpolate modes (a segmentation head's upsampling); linear in x, so LRP passes relevance
    /// back in proportion to each input's share of every output, as through average pooling.
    public func resize(_ x: Value, height: Int, width: Int, mode: ResizeMode) throws -> Value {
        let shape = self.shape(x)
        let b = backend
        let xt = tensor(x), y = try b.resize(xt, height: height, width: width, mode: mode)
        return keepingSign(of: [x], record(y, [x], relevance: .proportional([xt], y) { [try b.resizeBackward($0, inputShape: shape, mode: mode)] },
                                           rowwise: true) { gy, _, _ in
            [try b.resizeBackward(gy, inputShape: Self.leading(shape, gy.shape[0]), mode: mode)]
        })
    }

    /// y = x W^T + b for x [N, In], W [Out, In].
    public func linear(_ x: Value, weight: Value, bias: Value?) throws -> Value {
        let (xt, wt) = (tensor(x), tensor(weight))
        let b = backend
        let y = try b.linear(xt, weight: wt, bias: bias.map(tensor))
        return record(y, [x, weight] + (bias.map { [$0] } ?? []),
                      relevance: .linear(xt, weight: wt, bias: bias.map(tensor), nonNegative: nonNegative.contains(x.id), on: b),
                      rowwise: true) { [unowned self] gy, _, needs in
            [needs[0] ? try b.linearBackwardInput(gy, weight: wt) : nil,
             needs[1] ? try b.linearBackwardWeight(gy, input: try leading(xt, gy.shape[0])) : nil]
                + (needs.count > 2 ? [needs[2] ? try b.linearBackwardBias(gy) : nil] : [])
        }
    }

    /// Inference-mode batchnorm; its statistics and affine parameters are constants. Relevance
    /// passes it unchanged (zennit's Pass rule for a batch norm no convolution absorbed).
    public func batchNorm2d(_ x: Value, _ bn: BatchNormParams) throws -> Value {
        try batchNorm2d(x, bn, relevance: .pass)
    }

    func batchNorm2d(_ x: Value, _ bn: BatchNormParams, relevance: RelevanceRole?) throws -> Value {
        let b = backend
        let y = record(try b.batchNorm2d(tensor(x), bn), [x], relevance: relevance, rowwise: true) { gy, _, _ in [try b.batchNorm2dBackward(gy, bn)] }
        if recordsBiases {
            let c = bn.beta.shape.count
            let shift = try b.batchNorm2d(try b.tensor([Float](repeating: 0, count: c), [1, c, 1, 1]), bn)
            biases[y.id] = Tensor(shape: [c], storage: shift.storage)
        }
        return y
    }

    /// Elementwise sum of two values of one shape (a residual connection). Relevance is split
    /// between them by contribution (zennit's Norm rule on its canonizers' Sum).
    public func add(_ a: Value, _ c: Value) throws -> Value {
        let (at, ct) = (tensor(a), tensor(c))
        let y = try backend.add(at, ct)
        return keepingSign(of: [a, c], record(y, [a, c], relevance: .proportional([at, ct], y) { [$0, $0] }, rowwise: true) { gy, _, _ in [gy, gy] })
    }

    /// Elementwise product of two values of one shape.
    public func mul(_ a: Value, _ c: Value) throws -> Value {
        let (at, ct) = (tensor(a), tensor(c))
        let b = backend
        return record(try b.mul(at, ct), [a, c], rowwise: true) { [unowned self] gy, _, needs in
            [needs[0] ? try b.mul(gy, try leading(ct, gy.shape[0])) : nil, needs[1] ? try b.mul(gy, try leading(at, gy.shape[0])) : nil]
        }
    }

    /// x [N, C, 1, 1] repeated over an H x W grid: [N, C, H, W] (a squeeze-excitation gate
    /// before it multiplies its feature map). On the device as the backward of a global average
    /// pool times H W; its backward is the sum over the grid (the pool times H W).
    public func expand(_ x: Value, height: Int, width: Int) throws -> Value {
        let xs = shape(x)
        guard xs.rank == 4, xs[2] == 1, xs[3] == 1, height > 0, width > 0 else {
            throw BackendError("expand", "only [N, C, 1, 1] expands to a grid, not \(xs) to \(height)x\(width)")
        }
        let b = backend, area = Float(height * width), out: Shape = [xs[0], xs[1], height, width]
        let y = try b.scale(try b.adaptiveAvgPool2dBackward(tensor(x), inputShape: out), area)
        return record(y, [x], rowwise: true) { gy, _, _ in [try b.scale(try b.adaptiveAvgPool2d(gy, outputSize: (1, 1)), area)] }
    }

    /// s * a.
    public func scale(_ a: Value, _ s: Float) throws -> Value {
        let b = backend
        return record(try b.scale(tensor(a), s), [a], rowwise: true) { gy, _, _ in [try b.scale(gy, s)] }
    }

    /// Concatenation along channels (axis 1) of [N, C_i, H, W] values.
    public func concat(_ parts: [Value]) throws -> Value {
        let sizes = parts.map { shape($0)[1] }
        let b = backend
        return keepingSign(of: parts, record(try b.concat(parts.map(tensor)), parts, rowwise: true) { gy, _, _ in try b.split(gy, sizes: sizes) })
    }

    /// The same values with another shape of the same element count (no copy).
    public func reshape(_ x: Value, _ shape: Shape) throws -> Value {
        let old = self.shape(x)
        guard old.count == shape.count else { throw BackendError("reshape", "cannot reshape \(old) to \(shape)") }
        // Rows stay rows where the batch dimension does.
        let batchKept = shape.rank >= 1 && old.rank >= 1 && shape[0] == old[0]
        return keepingSign(of: [x], record(Tensor(shape: shape, storage: tensor(x).storage), [x], rowwise: batchKept) { gy, _, _ in
            [Tensor(shape: batchKept ? Self.leading(old, gy.shape[0]) : old, storage: gy.storage)]
        })
    }

    /// [N, ...] to [N, rest].
    public func flatten(_ x: Value) throws -> Value {
        let s = shape(x)
        return try reshape(x, [s[0], s.count / Swift.max(s[0], 1)])
    }

    /// Softmax over the last dimension.
    public func softmax(_ x: Value) throws -> Value {
        let b = backend
        let y = try b.softmax(tensor(x))
        return record(y, [x], rowwise: y.shape.rank >= 2) { [unowned self] gy, _, _ in
            [try b.softmaxBackward(gy, output: try leading(y, gy.shape[0]))]
        }
    }

    /// Log-softmax over the last dimension.
    public func logSoftmax(_ x: Value) throws -> Value {
        let b = backend
        let y = try b.logSoftmax(tensor(x))
        return record(y, [x], rowwise: y.shape.rank >= 2) { [unowned self] gy, _, _ in
            [try b.logSoftmaxBackward(gy, output: try leading(y, gy.shape[0]))]
        }
    }

    /// Sum, mean or sum of squares over every dimension from `axis` on.
    public func reduce(_ x: Value, _ op: Reduction, axis: Int) throws -> Value {
        let xt = tensor(x)
        let b = backend
        // Rows stay rows where the reduction leaves the batch dimension.
        let rowwise = axis >= 1
        return record(try b.reduce(xt, op, axis: axis), [x], rowwise: rowwise) { [unowned self] gy, _, _ in
            [try b.reduceBackward(gy, input: rowwise ? try leading(xt, gy.shape[0]) : xt, op, axis: axis)]
        }
    }

    /// y[:, c] = x[:, c] * scale[c] + shift[c] (an inference batchnorm with zero mean, unit variance).
    public func channelAffine(_ x: Value, scale: [Float], shift: [Float]) throws -> Value {
        let c = scale.count
        let bn = BatchNormParams(gamma: try backend.tensor(scale, [c]), beta: try backend.tensor(shift, [c]),
                                 mean: try backend.tensor([Float](repeating: 0, count: c), [c]),
                                 variance: try backend.tensor([Float](repeating: 1, count: c), [c]), eps: 0)
        return try batchNorm2d(x, bn, relevance: nil)
    }

    /// y = f(x) elementwise (sigmoid, |x|^p).
    public func pointwise(_ x: Value, _ op: Pointwise) throws -> Value {
        let xt = tensor(x)
        let b = backend
        return record(try b.pointwise(xt, op), [x], relevance: op.isActivation ? .pass : nil, rowwise: true) { [unowned self] gy, _, _ in
            [try b.pointwiseBackward(gy, input: try leading(xt, gy.shape[0]), op)]
        }
    }

    /// Each image resampled through its affine transform (bilinear, `fill` outside).
    public func affineSample(_ x: Value, _ transforms: [AffineMap], height: Int, width: Int, fill: Float) throws -> Value {
        let shape = self.shape(x)
        let b = backend
        return record(try b.affineSample(tensor(x), transforms, height: height, width: width, fill: fill), [x], rowwise: true) { gy, _, _ in
            [try b.affineSampleBackward(gy, Array(transforms.prefix(gy.shape[0])), inputShape: Self.leading(shape, gy.shape[0]))]
        }
    }

    /// Channels from..<from+count of [N, C, H, W]; the backward pass pads the gradient with zeros.
    public func sliceChannels(_ x: Value, from: Int, count: Int) throws -> Value {
        let shape = self.shape(x)
        guard let (_, c, h, w) = shape.nchw, from >= 0, count >= 1, from + count <= c else {
            throw BackendError("slice channels", "channels \(from)..<\(from + count) of \(shape)")
        }
        let b = backend
        let sizes = [from, count, c - from - count]
        let parts = try b.split(tensor(x), sizes: sizes.filter { $0 > 0 })
        let index = from > 0 ? 1 : 0
        return record(parts[index], [x], rowwise: true) { gy, _, _ in
            let rows = gy.shape[0]
            let pieces = try sizes.enumerated().compactMap { i, size -> Tensor? in
                guard size > 0 else { return nil }
                return i == 1 ? gy : try b.tensor([Float](repeating: 0, count: rows * size * h * w), [rows, size, h, w])
            }
            return [pieces.count == 1 ? pieces[0] : try b.concat(pieces)]
        }
    }
}

// Ops of imported graphs (transformer-style layouts and normalization).
extension Graph {
    /// Dimensions reordered (output dimension i is input dimension perm[i]); the backward pass
    /// permutes the gradient back.
    public func permute(_ x: Value, _ perm: [Int]) throws -> Value {
        if perm == Array(perm.indices), perm.count == shape(x).rank { return x }
        let b = backend
        var inverse = perm
        for (i, p) in perm.enumerated() where p >= 0 && p < perm.count { inverse[p] = i }
        return record(try b.permute(tensor(x), perm), [x], rowwise: perm.first == 0) { gy, _, _ in [try b.permute(gy, inverse)] }
    }

    /// Layer normalization over the last dimension, gamma and beta [C] (parameters, or nil).
    /// Their gradients, when asked: the row sums of gy xhat and of gy.
    public func layerNorm(_ x: Value, gamma: Value?, beta: Value?, eps: Float) throws -> Value {
        let xt = tensor(x), gt = gamma.map(tensor)
        let b = backend
        let y = try b.layerNorm(xt, gamma: gt, beta: beta.map(tensor), eps: eps)
        let inputs = [x] + (gamma.map { [$0] } ?? []) + (beta.map { [$0] } ?? [])
        return record(y, inputs) { gy, _, needs in
            let cols = xt.shape.dims.last ?? 1, rows = xt.shape.count / Swift.max(cols, 1)
            /// Sums over rows of a [rows, cols] tensor: [cols].
            func columnSums(_ t: Tensor) throws -> Tensor {
                try b.reduce(try b.permute(Tensor(shape: [rows, cols], storage: t.storage), [1, 0]), .sum, axis: 1)
            }
            var grads: [Tensor?] = [needs[0] ? try b.layerNormBackward(gy, input: xt, gamma: gt, eps: eps) : nil]
            if gamma != nil {
                grads.append(needs[1] ? try columnSums(try b.mul(gy, try b.layerNorm(xt, gamma: nil, beta: nil, eps: eps))) : nil)
            }
            if beta != nil { grads.append(needs[grads.count] ? try columnSums(gy) : nil) }
            return grads
        }
    }

    /// a [..., M, K] times b [..., K, N] (the same leading dimensions): [..., M, N], one matrix
    /// product per leading index (attention's scores and its weighted values) in one batched
    /// product; both operands get gradients (gc b^T and a^T gc, batched the same way).
    public func batchedMatMul(_ a: Value, _ b: Value) throws -> Value {
        let (sa, sb) = (shape(a), shape(b))
        let r = sa.rank
        guard r >= 2, sb.rank == r, Array(sa.dims.prefix(r - 2)) == Array(sb.dims.prefix(r - 2)), sa[r - 1] == sb[r - 2] else {
            throw BackendError("matmul", "cannot multiply \(sa) by \(sb): [..., M, K] by [..., K, N] with the same leading dimensions")
        }
        let (m, k, n) = (sa[r - 2], sa[r - 1], sb[r - 1])
        let z = sa.dims.prefix(r - 2).reduce(1, *)
        let (a3, b3) = (try reshape(a, [z, m, k]), try reshape(b, [z, k, n]))
        let (at, bt, bk) = (tensor(a3), tensor(b3), backend)
        let c = record(try bk.matmul(at, bt, transposeA: false, transposeB: false), [a3, b3]) { gc, _, needs in
            [needs[0] ? try bk.matmul(gc, bt, transposeA: false, transposeB: true) : nil,
             needs[1] ? try bk.matmul(at, gc, transposeA: true, transposeB: false) : nil]
        }
        return try reshape(c, Shape(Array(sa.dims.prefix(r - 2)) + [m, n]))
    }

    /// y = x scale[c] + shift[c] along dimension `axis` of a tensor of any rank (a stored ONNX
    /// tensor broadcast against one dimension: a bias on the last axis, a layer scale on
    /// channels); scale and shift hold one value per index of that axis (any shape), or are nil
    /// (1 and 0). They are constants: no gradient reaches them.
    public func axisAffine(_ x: Value, axis: Int, scale: Tensor?, shift: Tensor?) throws -> Value {
        let s = shape(x)
        guard axis >= 0, axis < s.rank, [scale, shift].allSatisfy({ $0 == nil || $0!.shape.count == s[axis] }) else {
            throw BackendError("axis affine", "scale \(scale?.shape.description ?? "none") and shift \(shift?.shape.description ?? "none") along axis \(axis) of \(s)")
        }
        let c = s[axis], b = backend
        let (ones, zeros) = try unitVectors[c] ?? (b.tensor([Float](repeating: 1, count: c), [c]), b.tensor([Float](repeating: 0, count: c), [c]))
        unitVectors[c] = (ones, zeros)
        let bn = BatchNormParams(gamma: scale.map { Tensor(shape: [c], storage: $0.storage) } ?? ones,
                                 beta: shift.map { Tensor(shape: [c], storage: $0.storage) } ?? zeros, mean: zeros, variance: ones, eps: 0)
        let outer = s.dims[..<axis].reduce(1, *), inner = s.dims[(axis + 1)...].reduce(1, *)
        return try reshape(try batchNorm2d(try reshape(x, [outer, c, inner, 1]), bn, relevance: nil), s)
    }
}
