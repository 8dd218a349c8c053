import Device

// Activations, pooling, batchnorm, elementwise, channel, softmax and reduction ops on the device.
extension OpenCLBackend {
    public func activation(_ x: Tensor, _ kind: Activation) throws -> Tensor {
        let xb = try buffer(x, "activation")
        let (y, yb) = try empty(x.shape, "activation")
        try kernel(["activation"], "activation_forward").launch(global: [quads(x.shape.count)],
            [.buffer(xb), .buffer(yb), .int(x.shape.count), .int(kind.rawValue)])
        return y
    }

    public func activationBackward(_ gy: Tensor, input: Tensor, _ kind: Activation, rule: GradientRule) throws -> Tensor {
        try ShapeRules.same("activation backward", gy.shape, input.shape)
        let gb = try buffer(gy, "activation backward"), xb = try buffer(input, "activation backward")
        let (gx, gxb) = try empty(gy.shape, "activation backward")
        try kernel(["activation"], "activation_backward").launch(global: [quads(gy.shape.count)],
            [.buffer(gb), .buffer(xb), .buffer(gxb), .int(gy.shape.count), .int(kind.rawValue), .int(rule.rawValue)])
        return gx
    }

    private func poolArgs(_ input: Shape, _ out: Shape, _ p: Pool2DParams) -> [KernelArgument] {
        [input[2], input[3], out[2], out[3], p.kernel.h, p.kernel.w, p.stride.h, p.stride.w, p.padding.h, p.padding.w]
            .map { .int($0) }
    }

    public func maxPool2d(_ x: Tensor, _ p: Pool2DParams) throws -> Tensor {
        let out = try p.outputShape(input: x.shape, op: "maxpool2d")
        let xb = try buffer(x, "maxpool2d")
        let (y, yb) = try empty(out, "maxpool2d")
        if poolsByRows(p) {
            try kernel(["pool"], "maxpool2d_rows").launch(global: [(out[3] + 31) / 32, out[2], out[0] * out[1]], local: [1, 1, 1],
                [.buffer(xb), .buffer(yb)] + poolArgs(x.shape, out, p))
            return y
        }
        try kernel(["pool"], "maxpool2d_forward").launch(global: [out[3], out[2], out[0] * out[1]], local: planeLocal(width: out[3], height: out[2]),
            [.buffer(xb), .buffer(yb)] + poolArgs(x.shape, out, p))
        return y
    }

    /// The register-blocked family pools by rows (pool.cl's maxpool2d_rows) when 32 outputs'
    /// window span fits its 160-column buffer: every pool of the networks here.
    private func poolsByRows(_ p: Pool2DParams) -> Bool {
        family == .registerBlocked && 31 * p.stride.w + p.kernel.w <= 160
    }

    public func maxPool2dBackward(_ gy: Tensor, input: Tensor, _ p: Pool2DParams) throws -> Tensor {
        let out = try p.outputShape(input: input.shape, op: "maxpool2d backward")
        try ShapeRules.same("maxpool2d backward", gy.shape, out)
        let gb = try buffer(gy, "maxpool2d backward"), xb = try buffer(input, "maxpool2d backward")
        let (gx, gxb) = try empty(input.shape, "maxpool2d backward")
        try withScratch("maxpool2d backward") { scratch in
            let argmax = try scratch("argmax", out.count)
            if poolsByRows(p) {
                try kernel(["pool"], "maxpool2d_rows", flags: ["POOL_INDEX"]).launch(
                    global: [(out[3] + 31) / 32, out[2], out[0] * out[1]], local: [1, 1, 1],
                    [.buffer(xb), .buffer(argmax)] + poolArgs(input.shape, out, p))
                try kernel(["pool"], "maxpool2d_backward_rows").launch(
                    global: [(input.shape[3] + 63) / 64, input.shape[2], input.shape[0] * input.shape[1]], local: [1, 1, 1],
                    [.buffer(gb), .buffer(argmax), .buffer(gxb)] + poolArgs(input.shape, out, p))
                return
            }
            try kernel(["pool"], "maxpool2d_argmax").launch(global: [out[3], out[2], out[0] * out[1]], local: planeLocal(width: out[3], height: out[2]),
                [.buffer(xb), .buffer(argmax)] + poolArgs(input.shape, out, p))
            try kernel(["pool"], "maxpool2d_backward").launch(global: [input.shape[3], input.shape[2], input.shape[0] * input.shape[1]],
                local: planeLocal(width: input.shape[3], height: input.shape[2]), [.buffer(gb), .buffer(argmax), .buffer(gxb)] + poolArgs(input.shape, out, p))
        }
        return gx
    }

    public func avgPool2d(_ x: Tensor, _ p: Pool2DParams) throws -> Tensor {
        let out = try p.outputShape(input: x.shape, op: "avgpool2d")
        let xb = try buffer(x, "avgpool2d")
        let (y, yb) = try empty(out, "avgpool2d")
        try kernel(["pool"], "avgpool2d_forward").launch(global: [out[3], out[2], out[0] * out[1]], local: planeLocal(width: out[3], height: out[2]),
            [.buffer(xb), .buffer(yb)] + poolArgs(x.shape, out, p) + [.int(p.countIncludePad ? 1 : 0)])
        return y
    }

    public func avgPool2dBackward(_ gy: Tensor, inputShape: Shape, _ p: Pool2DParams) throws -> Tensor {
        let out = try p.outputShape(input: inputShape, op: "avgpool2d backward")
        try ShapeRules.same("avgpool2d backward", gy.shape, out)
        let gb = try buffer(gy, "avgpool2d backward")
        let (gx, gxb) = try empty(inputShape, "avgpool2d backward")
        try kernel(["pool"], "avgpool2d_backward").launch(global: [inputShape[3], inputShape[2], inputShape[0] * inputShape[1]],
            local: planeLocal(width: inputShape[3], height: inputShape[2]),
            [.buffer(gb), .buffer(gxb)] + poolArgs(inputShape, out, p) + [.int(p.countIncludePad ? 1 : 0)])
        return gx
    }

    public func adaptiveAvgPool2d(_ x: Tensor, outputSize: (h: Int, w: Int)) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.rank4("adaptive avgpool2d", x.shape)
        guard outputSize.h >= 1, outputSize.w >= 1 else {
            throw BackendError("adaptive avgpool2d", "output size \(outputSize.h)x\(outputSize.w) must be positive")
        }
        let xb = try buffer(x, "adaptive avgpool2d")
        let (y, yb) = try empty([n, c, outputSize.h, outputSize.w], "adaptive avgpool2d")
        try kernel(["pool"], "adaptive_avgpool2d_forward").launch(global: [outputSize.w, outputSize.h, n * c],
            local: planeLocal(width: outputSize.w, height: outputSize.h),
            [.buffer(xb), .buffer(yb), .int(h), .int(w), .int(outputSize.h), .int(outputSize.w)])
        return y
    }

    public func adaptiveAvgPool2dBackward(_ gy: Tensor, inputShape: Shape) throws -> Tensor {
        let (gn, gc, oh, ow) = try ShapeRules.rank4("adaptive avgpool2d backward", gy.shape)
        let (n, c, h, w) = try ShapeRules.rank4("adaptive avgpool2d backward", inputShape)
        guard gn == n, gc == c else {
            throw BackendError("adaptive avgpool2d backward", "gradient \(gy.shape) does not match input \(inputShape)")
        }
        let gb = try buffer(gy, "adaptive avgpool2d backward")
        let (gx, gxb) = try empty(inputShape, "adaptive avgpool2d backward")
        try kernel(["pool"], "adaptive_avgpool2d_backward").launch(global: [w, h, n * c], local: planeLocal(width: w, height: h),
            [.buffer(gb), .buffer(gxb), .int(h), .int(w), .int(oh), .int(ow)])
        return gx
    }

    private func bnBuffers(_ op: String, _ bn: BatchNormParams, channels: Int) throws -> [Buffer<Float>] {
        for (t, what) in [(bn.gamma, "gamma"), (bn.beta, "beta"), (bn.mean, "running mean"), (bn.variance, "running variance")] {
            try ShapeRules.channelVector(op, t, channels: channels, what: what)
        }
        return try [bn.gamma, bn.beta, bn.mean, bn.variance].map { try buffer($0, op) }
    }

    public func batchNorm2d(_ x: Tensor, _ bn: BatchNormParams) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.rank4("batchnorm2d", x.shape)
        let p = try bnBuffers("batchnorm2d", bn, channels: c)
        let xb = try buffer(x, "batchnorm2d")
        let (y, yb) = try empty(x.shape, "batchnorm2d")
        try kernel(["batchnorm"], "batchnorm2d_forward").launch(global: [quads(h * w), c, n],
            [.buffer(xb), .buffer(p[0]), .buffer(p[1]), .buffer(p[2]), .buffer(p[3]), .float(bn.eps), .buffer(yb), .int(c), .int(h * w)])
        return y
    }

    public func batchNorm2dBackward(_ gy: Tensor, _ bn: BatchNormParams) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.rank4("batchnorm2d backward", gy.shape)
        let p = try bnBuffers("batchnorm2d backward", bn, channels: c)
        let gb = try buffer(gy, "batchnorm2d backward")
        let (gx, gxb) = try empty(gy.shape, "batchnorm2d backward")
        try kernel(["batchnorm"], "batchnorm2d_backward").launch(global: [quads(h * w), c, n],
            [.buffer(gb), .buffer(p[0]), .buffer(p[3]), .float(bn.eps), .buffer(gxb), .int(c), .int(h * w)])
        return gx
    }

    private func binary(_ name: String, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        try ShapeRules.same(name, a.shape, b.shape)
        let ab = try buffer(a, name), bb = try buffer(b, name)
        let (y, yb) = try empty(a.shape, name)
        try kernel(["elementwise"], name).launch(global: [quads(a.shape.count)], [.buffer(ab), .buffer(bb), .buffer(yb), .int(a.shape.count)])
        return y
    }

    public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary("add", a, b) }
    public func mul(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary("mul", a, b) }

    public func scale(_ a: Tensor, _ s: Float) throws -> Tensor {
        let ab = try buffer(a, "scale")
        let (y, yb) = try empty(a.shape, "scale")
        try kernel(["elementwise"], "scale").launch(global: [quads(a.shape.count)], [.buffer(ab), .float(s), .buffer(yb), .int(a.shape.count)])
        return y
    }

    public func noisyCopies(_ x: Tensor, copies: Int, sigma: Float, seed: UInt64, offset: UInt64) throws -> Tensor {
        let shape = try ShapeRules.noisyCopies("noisy copies", x.shape, copies: copies)
        let xb = try buffer(x, "noisy copies")
        let (y, yb) = try empty(shape, "noisy copies")
        let n = x.shape.count
        try kernel(["random"], "noisy_copies").launch(global: [n, copies], local: [Swift.min(n, 64), 1],
            [.buffer(xb), .buffer(yb), .int(n), .float(sigma), .ulong(seed &+ 0x5EED), .ulong(offset)])
        return y
    }

    public func axpy(_ alpha: Float, _ x: Tensor, _ y: Tensor) throws -> Tensor {
        try ShapeRules.same("axpy", x.shape, y.shape)
        let xb = try buffer(x, "axpy"), yb = try buffer(y, "axpy")
        let (out, ob) = try empty(x.shape, "axpy")
        try kernel(["elementwise"], "axpy").launch(global: [quads(x.shape.count)],
            [.float(alpha), .buffer(xb), .buffer(yb), .buffer(ob), .int(x.shape.count)])
        return out
    }

    private func copyChannels(_ src: Buffer<Float>, srcC: Int, srcOffset: Int, _ dst: Buffer<Float>, dstC: Int,
                              dstOffset: Int, count: Int, n: Int, hw: Int) throws {
        try kernel(["channels"], "copy_channels").launch(global: [quads(count * hw), n],
            [.buffer(src), .int(srcC), .int(srcOffset), .buffer(dst), .int(dstC), .int(dstOffset), .int(count), .int(hw)])
    }

    public func concat(_ parts: [Tensor]) throws -> Tensor {
        let out = try ShapeRules.concat("concat", parts.map(\.shape))
        let (n, c, h, w) = out.nchw!
        let (y, yb) = try empty(out, "concat")
        var offset = 0
        for p in parts {
            try copyChannels(try buffer(p, "concat"), srcC: p.shape[1], srcOffset: 0, yb, dstC: c, dstOffset: offset,
                             count: p.shape[1], n: n, hw: h * w)
            offset += p.shape[1]
        }
        return y
    }

    public func split(_ x: Tensor, sizes: [Int]) throws -> [Tensor] {
        try ShapeRules.split("split", x.shape, sizes: sizes)
        let (n, c, h, w) = x.shape.nchw!
        let xb = try buffer(x, "split")
        var offset = 0
        return try sizes.map { size in
            let (part, pb) = try empty([n, size, h, w], "split")
            try copyChannels(xb, srcC: c, srcOffset: offset, pb, dstC: size, dstOffset: 0, count: size, n: n, hw: h * w)
            offset += size
            return part
        }
    }

    private func softmaxForward(_ x: Tensor, log: Bool, _ op: String) throws -> Tensor {
        let (rows, cols) = try ShapeRules.lastDim(op, x.shape)
        let xb = try buffer(x, op)
        let (y, yb) = try empty(x.shape, op)
        if family == .registerBlocked {
            try kernel(["softmax"], "softmax_rows_forward").launch(global: [rows], local: [1],
                [.buffer(xb), .buffer(yb), .int(cols), .int(log ? 1 : 0), .int(rows)])
            return y
        }
        try kernel(["softmax"], "softmax_forward").launch(global: [64, rows], local: [64, 1],
            [.buffer(xb), .buffer(yb), .int(cols), .int(log ? 1 : 0)])
        return y
    }

    private func softmaxBackward(_ gy: Tensor, _ y: Tensor, log: Bool, _ op: String) throws -> Tensor {
        try ShapeRules.same(op, gy.shape, y.shape)
        let (rows, cols) = try ShapeRules.lastDim(op, gy.shape)
        let gb = try buffer(gy, op), yb = try buffer(y, op)
        let (gx, gxb) = try empty(gy.shape, op)
        if family == .registerBlocked {
            try kernel(["softmax"], "softmax_rows_backward").launch(global: [rows], local: [1],
                [.buffer(gb), .buffer(yb), .buffer(gxb), .int(cols), .int(log ? 1 : 0), .int(rows)])
            return gx
        }
        try kernel(["softmax"], "softmax_backward").launch(global: [64, rows], local: [64, 1],
            [.buffer(gb), .buffer(yb), .buffer(gxb), .int(cols), .int(log ? 1 : 0)])
        return gx
    }

    public func softmax(_ x: Tensor) throws -> Tensor { try softmaxForward(x, log: false, "softmax") }
    public func logSoftmax(_ x: Tensor) throws -> Tensor { try softmaxForward(x, log: true, "log-softmax") }
    public func softmaxBackward(_ gy: Tensor, output: Tensor) throws -> Tensor {
        try softmaxBackward(gy, output, log: false, "softmax backward")
    }
    public func logSoftmaxBackward(_ gy: Tensor, output: Tensor) throws -> Tensor {
        try softmaxBackward(gy, output, log: true, "log-softmax backward")
    }

    public func permute(_ x: Tensor, _ perm: [Int]) throws -> Tensor {
        let (out, strides) = try ShapeRules.permute("permute", x.shape, perm)
        let xb = try buffer(x, "permute")
        let (y, yb) = try empty(out, "permute")
        guard out.count > 0 else { return y }
        let pad = 6 - out.rank
        let dims = [Int](repeating: 1, count: pad) + out.dims, inStrides = [Int](repeating: 0, count: pad) + strides
        try kernel(["layout"], "permute").launch(global: [(dims[5] + 15) / 16, out.count / dims[5]],
            [.buffer(xb), .buffer(yb)] + dims[1...].map { .int($0) } + inStrides.map { .int($0) })
        return y
    }

    public func layerNorm(_ x: Tensor, gamma: Tensor?, beta: Tensor?, eps: Float) throws -> Tensor {
        let (rows, cols) = try ShapeRules.layerNorm("layer norm", x.shape, gamma: gamma, beta: beta, eps: eps)
        let xb = try buffer(x, "layer norm")
        let gb = try gamma.map { try buffer($0, "layer norm") } ?? xb, bb = try beta.map { try buffer($0, "layer norm") } ?? xb
        let (y, yb) = try empty(x.shape, "layer norm")
        let args: [KernelArgument] = [.buffer(xb), .buffer(gb), .buffer(bb), .buffer(yb), .int(cols), .float(eps), .int(gamma == nil ? 0 : 1), .int(beta == nil ? 0 : 1)]
        if family == .registerBlocked {
            try kernel(["softmax", "layernorm"], "layernorm_rows_forward").launch(global: [rows], local: [1], args + [.int(rows)])
        } else {
            try kernel(["softmax", "layernorm"], "layernorm_forward").launch(global: [64, rows], local: [64, 1], args)
        }
        return y
    }

    public func layerNormBackward(_ gy: Tensor, input: Tensor, gamma: Tensor?, eps: Float) throws -> Tensor {
        try ShapeRules.same("layer norm backward", gy.shape, input.shape)
        let (rows, cols) = try ShapeRules.layerNorm("layer norm backward", input.shape, gamma: gamma, beta: nil, eps: eps)
        let gyb = try buffer(gy, "layer norm backward"), xb = try buffer(input, "layer norm backward")
        let gb = try gamma.map { try buffer($0, "layer norm backward") } ?? xb
        let (gx, gxb) = try empty(input.shape, "layer norm backward")
        let args: [KernelArgument] = [.buffer(gyb), .buffer(xb), .buffer(gb), .buffer(gxb), .int(cols), .float(eps), .int(gamma == nil ? 0 : 1)]
        if family == .registerBlocked {
            try kernel(["softmax", "layernorm"], "layernorm_rows_backward").launch(global: [rows], local: [1], args + [.int(rows)])
        } else {
            try kernel(["softmax", "layernorm"], "layernorm_backward").launch(global: [64, rows], local: [64, 1], args)
        }
        return gx
    }

    public func reduce(_ x: Tensor, _ op: Reduction, axis: Int) throws -> Tensor {
        let (rows, cols, out) = try ShapeRules.rows("reduce", x.shape, axis: axis)
        let xb = try buffer(x, "reduce")
        let (y, yb) = try empty(out, "reduce")
        try kernel(["reduce"], "reduce_rows").launch(global: [64, rows], local: [64, 1],
            [.buffer(xb), .buffer(yb), .int(cols), .int(op.rawValue)])
        return y
    }

    public func reduceBackward(_ gy: Tensor, input: Tensor, _ op: Reduction, axis: Int) throws -> Tensor {
        let (_, cols, out) = try ShapeRules.rows("reduce backward", input.shape, axis: axis)
        try ShapeRules.same("reduce backward", gy.shape, out)
        let gb = try buffer(gy, "reduce backward"), xb = try buffer(input, "reduce backward")
        let (gx, gxb) = try empty(input.shape, "reduce backward")
        try kernel(["reduce"], "reduce_rows_backward").launch(global: [input.shape.count],
            [.buffer(gb), .buffer(xb), .buffer(gxb), .int(cols), .int(input.shape.count), .int(op.rawValue)])
        return gx
    }

    public func max(_ x: Tensor, axis: Int) throws -> (values: Tensor, indices: Tensor) {
        let (rows, cols, out) = try ShapeRules.rows("max", x.shape, axis: axis)
        let xb = try buffer(x, "max")
        let (v, vb) = try empty(out, "max"), (i, ib) = try empty(out, "max")
        try kernel(["reduce"], "max_rows").launch(global: [64, rows], local: [64, 1],
            [.buffer(xb), .buffer(vb), .buffer(ib), .int(cols)])
        return (v, i)
    }

    public func maxBackward(_ gy: Tensor, indices: Tensor, inputShape: Shape, axis: Int) throws -> Tensor {
        let (_, cols, out) = try ShapeRules.rows("max backward", inputShape, axis: axis)
        try ShapeRules.same("max backward", gy.shape, out)
        try ShapeRules.same("max backward", indices.shape, out)
        let gb = try buffer(gy, "max backward"), ib = try buffer(indices, "max backward")
        let (gx, gxb) = try empty(inputShape, "max backward")
        try kernel(["reduce"], "max_rows_backward").launch(global: [inputShape.count],
            [.buffer(gb), .buffer(ib), .buffer(gxb), .int(cols), .int(inputShape.count)])
        return gx
    }

    public func resize(_ x: Tensor, height oh: Int, width ow: Int, mode: ResizeMode) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.rank4("resize", x.shape)
        guard oh >= 1, ow >= 1 else { throw BackendError("resize", "size \(oh)x\(ow) must be positive") }
        let xb = try buffer(x, "resize")
        let (y, yb) = try empty([n, c, oh, ow], "resize")
        try kernel(["resample"], "resize").launch(global: [ow, oh, n * c], local: planeLocal(width: ow, height: oh),
            [.buffer(xb), .buffer(yb), .int(h), .int(w), .int(oh), .int(ow), .int(mode.rawValue)])
        return y
    }

    public func broadcastMul(_ x: Tensor, masks: Tensor) throws -> Tensor {
        let (m, c, hw, perMask) = try ShapeRules.broadcastMul("broadcast mul", x.shape, masks.shape)
        let xb = try buffer(x, "broadcast mul"), mb = try buffer(masks, "broadcast mul")
        let (y, yb) = try empty([m, c, x.shape[2], x.shape[3]], "broadcast mul")
        try kernel(["resample"], "broadcast_mul").launch(global: [quads(hw), c, m],
            [.buffer(xb), .buffer(mb), .buffer(yb), .int(c), .int(hw), .int(perMask ? 1 : 0)])
        return y
    }

    public func channelMax(_ x: Tensor) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.rank4("channel max", x.shape)
        let xb = try buffer(x, "channel max")
        let (y, yb) = try empty([n, 1, h, w], "channel max")
        try kernel(["resample"], "channel_max").launch(global: [h * w, n], [.buffer(xb), .buffer(yb), .int(c), .int(h * w)])
        return y
    }
}

// MARK: Optimization engine
extension OpenCLBackend {
    public func pointwise(_ x: Tensor, _ op: Pointwise) throws -> Tensor {
        let xb = try buffer(x, "pointwise")
        let (y, yb) = try empty(x.shape, "pointwise")
        try kernel(["elementwise", "pointwise"], "pointwise").launch(global: [quads(x.shape.count)],
            [.buffer(xb), .buffer(yb), .int(x.shape.count), .int(op.code), .float(op.parameter)])
        return y
    }

    public func pointwiseBackward(_ gy: Tensor, input: Tensor, _ op: Pointwise) throws -> Tensor {
        try ShapeRules.same("pointwise backward", gy.shape, input.shape)
        let gb = try buffer(gy, "pointwise backward"), xb = try buffer(input, "pointwise backward")
        let (gx, gxb) = try empty(input.shape, "pointwise backward")
        try kernel(["elementwise", "pointwise"], "pointwise_backward").launch(global: [quads(input.shape.count)],
            [.buffer(gb), .buffer(xb), .buffer(gxb), .int(input.shape.count), .int(op.code), .float(op.parameter)])
        return gx
    }

    func transformBuffer(_ transforms: [AffineMap], _ op: String) throws -> Buffer<Float> {
        let packed = try transforms.flatMap { try $0.packed() }
        do { return try Buffer<Float>(context: context, values: packed) } catch { throw BackendError(op, "cannot upload transforms: \(error)") }
    }

    public func affineSample(_ x: Tensor, _ transforms: [AffineMap], height oh: Int, width ow: Int, fill: Float) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.affineSample("affine sample", x.shape, transforms, height: oh, width: ow)
        let xb = try buffer(x, "affine sample"), tb = try transformBuffer(transforms, "affine sample")
        let (y, yb) = try empty([n, c, oh, ow], "affine sample")
        try kernel(["resample"], "affine_sample").launch(global: [ow, oh, n], local: planeLocal(width: ow, height: oh),
            [.buffer(xb), .buffer(tb), .buffer(yb), .int(c), .int(h), .int(w), .int(oh), .int(ow), .float(fill)])
        return y
    }

    public func affineSampleBackward(_ gy: Tensor, _ transforms: [AffineMap], inputShape: Shape) throws -> Tensor {
        let (n, c, oh, ow) = try ShapeRules.rank4("affine sample backward", gy.shape)
        let (_, _, h, w) = try ShapeRules.affineSample("affine sample backward", inputShape, transforms, height: oh, width: ow)
        guard inputShape[0] == n, inputShape[1] == c else { throw BackendError("affine sample backward", "gradient \(gy.shape) does not fit input \(inputShape)") }
        let gb = try buffer(gy, "affine sample backward"), tb = try transformBuffer(transforms, "affine sample backward")
        let (gx, gxb) = try empty(inputShape, "affine sample backward")
        try kernel(["resample"], "affine_sample_backward").launch(global: [w, h, n], local: planeLocal(width: w, height: h),
            [.buffer(gb), .buffer(tb), .buffer(gxb), .int(c), .int(h), .int(w), .int(oh), .int(ow)])
        return gx
    }

    public func adamStep(_ p: Tensor, gradient g: Tensor, m: Tensor, v: Tensor, _ s: AdamSettings, step t: Int) throws -> (p: Tensor, m: Tensor, v: Tensor) {
        for other in [g, m, v] { try ShapeRules.same("adam", p.shape, other.shape) }
        let bufs = try [p, g, m, v].map { try buffer($0, "adam") }
        let (np, npb) = try empty(p.shape, "adam"), (nm, nmb) = try empty(p.shape, "adam"), (nv, nvb) = try empty(p.shape, "adam")
        let (c1, c2) = s.corrections(step: t)
        try kernel(["optim"], "adam").launch(global: [quads(p.shape.count)],
            bufs.map { .buffer($0) } + [.buffer(npb), .buffer(nmb), .buffer(nvb), .int(p.shape.count),
             .float(s.learningRate), .float(s.beta1), .float(s.beta2), .float(s.epsilon), .float(c1), .float(c2)])
        return (np, nm, nv)
    }
}
