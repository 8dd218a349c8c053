import BackendCore
import Device

/// The ops whose design differs between the kernel families, written once per family.
/// `OpenCLBackend` picks one in its init (`KernelFamily`, from the device kind unless given);
/// its entry points check shapes, allocate and call it, so no op branches on the family.
protocol FamilyKernels: Sendable {
    /// y = activation(conv2d(x) + residual) (residual nil: none), the activation applied as it is
    /// stored; `out` is y's shape; with `forwardOnly`, in a faster form with more rounding where
    /// the family has one.
    func conv2d(_ b: OpenCLBackend, _ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParams, out: Shape,
                activation: Activation?, residual: Tensor?, forwardOnly: Bool) throws -> Tensor
    /// dL/dx of conv2d; `out` is gy's shape.
    func conv2dBackwardInput(_ b: OpenCLBackend, _ gy: Tensor, weight: Tensor, inputShape: Shape, _ p: Conv2DParams,
                             out: Shape) throws -> Tensor
    /// dL/dx with the activations fused around the convolution (`ConvolutionFusion`).
    func conv2dBackwardInput(_ b: OpenCLBackend, _ gy: Tensor, weight: Tensor, inputShape: Shape, _ p: Conv2DParams,
                             out: Shape, fused: ConvolutionFusion) throws -> (gradient: Tensor, inputMasked: Bool)
    /// y [n, outF] = x W^T + b.
    func linear(_ b: OpenCLBackend, x: Buffer<Float>, weight: Tensor, bias: Buffer<Float>?, y: Buffer<Float>,
                n: Int, inF: Int, outF: Int) throws
    /// gx [n, inF] = gy W.
    func linearBackwardInput(_ b: OpenCLBackend, gy: Buffer<Float>, weight: Buffer<Float>, gx: Buffer<Float>,
                             n: Int, inF: Int, outF: Int) throws
    /// gw [outF, inF] = gy^T x.
    func linearBackwardWeight(_ b: OpenCLBackend, gy: Buffer<Float>, input: Buffer<Float>, gw: Buffer<Float>,
                              n: Int, inF: Int, outF: Int) throws
    /// c [z, m, n] = op(a[z]) op(b[z]).
    func matmul(_ b: OpenCLBackend, _ a: Tensor, _ bt: Tensor, c: Buffer<Float>, z: Int, m: Int, k: Int, n: Int,
                transposeA: Bool, transposeB: Bool) throws
    /// Softmax (or log-softmax) of each of `rows` rows of `cols`.
    func softmax(_ b: OpenCLBackend, x: Buffer<Float>, y: Buffer<Float>, rows: Int, cols: Int, log: Bool) throws
    /// Its backward from the forward output y.
    func softmaxBackward(_ b: OpenCLBackend, gy: Buffer<Float>, y: Buffer<Float>, gx: Buffer<Float>, rows: Int, cols: Int,
                         log: Bool) throws
    /// Layer norm of each row (gamma and beta stand in for absent ones, flagged by hasGamma / hasBeta).
    func layerNorm(_ b: OpenCLBackend, x: Buffer<Float>, gamma: Buffer<Float>, beta: Buffer<Float>, y: Buffer<Float>,
                   rows: Int, cols: Int, eps: Float, hasGamma: Bool, hasBeta: Bool) throws
    /// Its backward from the forward input.
    func layerNormBackward(_ b: OpenCLBackend, gy: Buffer<Float>, x: Buffer<Float>, gamma: Buffer<Float>, gx: Buffer<Float>,
                           rows: Int, cols: Int, eps: Float, hasGamma: Bool) throws
    /// y[r] = the sum, mean or sum of squares of row r of x [rows, cols] (`Backend.reduce`, and
    /// global average pooling: a plane a row).
    func reduceRows(_ b: OpenCLBackend, x: Buffer<Float>, y: Buffer<Float>, rows: Int, cols: Int, op: Reduction) throws
    /// Whether max pooling runs by rows (pool.cl's maxpool2d_rows) for window `p`.
    func poolsByRows(_ p: Pool2DParams) -> Bool
    /// Whether adaptive average pooling's backward goes a plane per work-item
    /// (adaptive_avgpool2d_backward_planes) rather than a work-item per input pixel.
    var adaptivePoolBackwardByPlanes: Bool { get }
    /// A local size for a (width, height, planes) grid whose kernel returns early outside
    /// width x height.
    func planeLocal(width: Int, height: Int) -> [Int]
}

/// GPUs: local-memory tiles, many work-items per group (gemm.cl), a work-group per row for
/// row-wise ops, blocks of up to 256 pixels for plane-wise ones.
struct TiledFamily: FamilyKernels {
    /// One form: the forward-only pass runs the same GEMM; a residual is added by its own launch.
    func conv2d(_ b: OpenCLBackend, _ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParams, out: Shape,
                activation: Activation?, residual: Tensor?, forwardOnly: Bool) throws -> Tensor {
        if let residual {
            return try b.convolutionThenResidual(activation: activation, residual: residual) {
                try b.tiledConv2d(x, weight: weight, bias: bias, p, out: out, activation: nil)
            }
        }
        return try b.tiledConv2d(x, weight: weight, bias: bias, p, out: out, activation: activation)
    }

    func conv2dBackwardInput(_ b: OpenCLBackend, _ gy: Tensor, weight: Tensor, inputShape: Shape, _ p: Conv2DParams,
                             out: Shape) throws -> Tensor {
        try b.tiledConv2dBackwardInput(gy, weight: weight, inputShape: inputShape, p, out: out)
    }

    /// The output's activation as a pass of its own; the input's mask is left to its op.
    func conv2dBackwardInput(_ b: OpenCLBackend, _ gy: Tensor, weight: Tensor, inputShape: Shape, _ p: Conv2DParams,
                             out: Shape, fused: ConvolutionFusion) throws -> (gradient: Tensor, inputMasked: Bool) {
        let g = try fused.output.map { try b.activationBackward(gy, input: $0.value, $0.activation, rule: fused.rule) } ?? gy
        return (try b.tiledConv2dBackwardInput(g, weight: weight, inputShape: inputShape, p, out: out), false)
    }

    func linear(_ b: OpenCLBackend, x: Buffer<Float>, weight: Tensor, bias: Buffer<Float>?, y: Buffer<Float>,
                n: Int, inF: Int, outF: Int) throws {
        try b.tiledLinear(x: x, weight: try b.buffer(weight, "linear"), bias: bias, y: y, n: n, inF: inF, outF: outF)
    }

    func linearBackwardInput(_ b: OpenCLBackend, gy: Buffer<Float>, weight: Buffer<Float>, gx: Buffer<Float>,
                             n: Int, inF: Int, outF: Int) throws {
        try b.tiledLinearBackwardInput(gy: gy, weight: weight, gx: gx, n: n, inF: inF, outF: outF)
    }

    func linearBackwardWeight(_ b: OpenCLBackend, gy: Buffer<Float>, input: Buffer<Float>, gw: Buffer<Float>,
                              n: Int, inF: Int, outF: Int) throws {
        try b.gemm(.LINEAR_BACKWARD_WEIGHT(gy: gy, x: input, gw: gw, M: outF, N: inF, K: n), m: outF, n: inF, k: n, z: 1, tiling: .large)
    }

    func matmul(_ b: OpenCLBackend, _ a: Tensor, _ bt: Tensor, c: Buffer<Float>, z: Int, m: Int, k: Int, n: Int,
                transposeA: Bool, transposeB: Bool) throws {
        try b.tiledMatmul(a, bt, c: c, z: z, m: m, k: k, n: n, transposeA: transposeA, transposeB: transposeB)
    }

    func softmax(_ b: OpenCLBackend, x: Buffer<Float>, y: Buffer<Float>, rows: Int, cols: Int, log: Bool) throws {
        try b.launch(.softmax_forward(x: x, y: y, cols: cols, LOG: log ? 1 : 0), global: [64, rows], local: [64, 1])
    }

    func softmaxBackward(_ b: OpenCLBackend, gy: Buffer<Float>, y: Buffer<Float>, gx: Buffer<Float>, rows: Int, cols: Int,
                         log: Bool) throws {
        try b.launch(.softmax_backward(gy: gy, y: y, gx: gx, cols: cols, LOG: log ? 1 : 0), global: [64, rows], local: [64, 1])
    }

    func layerNorm(_ b: OpenCLBackend, x: Buffer<Float>, gamma: Buffer<Float>, beta: Buffer<Float>, y: Buffer<Float>,
                   rows: Int, cols: Int, eps: Float, hasGamma: Bool, hasBeta: Bool) throws {
        try b.launch(.layernorm_forward(x: x, gamma: gamma, beta: beta, y: y, cols: cols, eps: eps, hasGamma: hasGamma ? 1 : 0,
                                        hasBeta: hasBeta ? 1 : 0),
                     files: ["softmax", "layernorm"], global: [64, rows], local: [64, 1])
    }

    func layerNormBackward(_ b: OpenCLBackend, gy: Buffer<Float>, x: Buffer<Float>, gamma: Buffer<Float>, gx: Buffer<Float>,
                           rows: Int, cols: Int, eps: Float, hasGamma: Bool) throws {
        try b.launch(.layernorm_backward(gy: gy, x: x, gamma: gamma, gx: gx, cols: cols, eps: eps, hasGamma: hasGamma ? 1 : 0),
                     files: ["softmax", "layernorm"], global: [64, rows], local: [64, 1])
    }

    func reduceRows(_ b: OpenCLBackend, x: Buffer<Float>, y: Buffer<Float>, rows: Int, cols: Int, op: Reduction) throws {
        try b.launch(.reduce_rows(x: x, y: y, cols: cols, OP: Int(op.rawValue)), global: [64, rows], local: [64, 1])
    }

    func poolsByRows(_ p: Pool2DParams) -> Bool { false }
    var adaptivePoolBackwardByPlanes: Bool { false }

    /// A block of up to 256 pixels, up to 32 of a row, in powers of two: groups of one short row
    /// (7 work-items for a 7x7 map) leave most of a warp idle and hit the resident-group limit
    /// long before the thread limit (the H200 ran max pooling at 5% of its bandwidth that way).
    func planeLocal(width: Int, height: Int) -> [Int] {
        func pow2(_ v: Int, _ cap: Int) -> Int { var p = 1; while p < v, p < cap { p *= 2 }; return p }
        let x = pow2(width, 32)
        return [x, pow2(height, 256 / x), 1]
    }
}

/// CPU devices (PoCL): register blocks, no local memory or barriers, one work-item per group
/// (gemm_packed.cl, winograd.cl), a work-item per row for row-wise ops.
struct RegisterBlockedFamily: FamilyKernels {
    /// The residual goes into the packed and Winograd stores; a depthwise convolution adds it by a
    /// launch of its own.
    func conv2d(_ b: OpenCLBackend, _ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParams, out: Shape,
                activation: Activation?, residual: Tensor?, forwardOnly: Bool) throws -> Tensor {
        guard b.isDepthwise(weight.shape, p) else {
            return try b.conv2dPacked(x, weight: weight, bias: bias, p, out: out, activation: activation, residual: residual,
                                      forwardOnly: forwardOnly)
        }
        if let residual {
            return try b.convolutionThenResidual(activation: activation, residual: residual) {
                try b.depthwiseRowsConv2d(x, weight: weight, bias: bias, p, out: out, activation: nil)
            }
        }
        return try b.depthwiseRowsConv2d(x, weight: weight, bias: bias, p, out: out, activation: activation)
    }

    func conv2dBackwardInput(_ b: OpenCLBackend, _ gy: Tensor, weight: Tensor, inputShape: Shape, _ p: Conv2DParams,
                             out: Shape) throws -> Tensor {
        guard b.isDepthwise(weight.shape, p) else {
            return try b.conv2dBackwardInputPacked(gy, weight: weight, inputShape: inputShape, p, out: out)
        }
        let op = "conv2d backward input"
        let (gx, gxb) = try b.empty(inputShape, op)
        try b.depthwiseRowsBackwardInput(try b.buffer(gy, op), try b.buffer(weight, op), gxb, weight: weight.shape, p,
                                         inputShape: inputShape, out: out)
        return gx
    }

    /// With an output activation, its mask applied as the backward reads or pads gy (Winograd,
    /// stride phases). With an input activation only, its mask applied as the pointwise and
    /// depthwise backwards store dL/dx (gemm_packed's and conv2d_depthwise.cl's STORE_MASK):
    /// those read gy in place, so the activation's backward after them would be a pass of its
    /// own. Elsewhere the input's mask is left to its op.
    func conv2dBackwardInput(_ b: OpenCLBackend, _ gy: Tensor, weight: Tensor, inputShape: Shape, _ p: Conv2DParams,
                             out: Shape, fused: ConvolutionFusion) throws -> (gradient: Tensor, inputMasked: Bool) {
        let op = "conv2d backward input"
        if let output = fused.output {
            if !b.isDepthwise(weight.shape, p) {
                let mask = OpenCLBackend.GradientMask(output: output.value, kind: output.activation, rule: fused.rule)
                return (try b.conv2dBackwardInputPacked(gy, weight: weight, inputShape: inputShape, p, out: out, mask: mask), false)
            }
            let g = try b.activationBackward(gy, input: output.value, output.activation, rule: fused.rule)
            return (try conv2dBackwardInput(b, g, weight: weight, inputShape: inputShape, p, out: out), false)
        }
        guard let input = fused.input else { return (try conv2dBackwardInput(b, gy, weight: weight, inputShape: inputShape, p, out: out), false) }
        let mask = OpenCLBackend.GradientMask(output: input.value, kind: input.activation, rule: fused.rule)
        if b.isDepthwise(weight.shape, p) {
            let (gx, gxb) = try b.empty(inputShape, op)
            try b.depthwiseRowsBackwardInput(try b.buffer(gy, op), try b.buffer(weight, op), gxb, weight: weight.shape, p,
                                             inputShape: inputShape, out: out, storeMask: mask)
            return (gx, true)
        }
        guard b.isPointwise(weight.shape, p) else {
            return (try b.conv2dBackwardInputPacked(gy, weight: weight, inputShape: inputShape, p, out: out), false)
        }
        return (try b.conv2dBackwardInputPacked(gy, weight: weight, inputShape: inputShape, p, out: out, storeMask: mask), true)
    }

    func linear(_ b: OpenCLBackend, x: Buffer<Float>, weight: Tensor, bias: Buffer<Float>?, y: Buffer<Float>,
                n: Int, inF: Int, outF: Int) throws {
        try b.rowsLinear(x: x, weight: weight, bias: bias, y: y, n: n, inF: inF, outF: outF)
    }

    func linearBackwardInput(_ b: OpenCLBackend, gy: Buffer<Float>, weight: Buffer<Float>, gx: Buffer<Float>,
                             n: Int, inF: Int, outF: Int) throws {
        try b.rowsLinearBackwardInput(gy: gy, weight: weight, gx: gx, n: n, inF: inF, outF: outF)
    }

    /// Always the packed product: the tiled product's local memory and barriers serialize here.
    func linearBackwardWeight(_ b: OpenCLBackend, gy: Buffer<Float>, input: Buffer<Float>, gw: Buffer<Float>,
                              n: Int, inF: Int, outF: Int) throws {
        try b.linearBackwardWeightPacked(gy, input: input, gw: gw, n: n, inF: inF, outF: outF)
    }

    func matmul(_ b: OpenCLBackend, _ a: Tensor, _ bt: Tensor, c: Buffer<Float>, z: Int, m: Int, k: Int, n: Int,
                transposeA: Bool, transposeB: Bool) throws {
        try b.packedMatmul(a, bt, c: c, z: z, m: m, k: k, n: n, transposeA: transposeA, transposeB: transposeB)
    }

    func softmax(_ b: OpenCLBackend, x: Buffer<Float>, y: Buffer<Float>, rows: Int, cols: Int, log: Bool) throws {
        try b.launch(.softmax_rows_forward(x: x, y: y, cols: cols, LOG: log ? 1 : 0, rows: rows), global: [rows], local: [1])
    }

    func softmaxBackward(_ b: OpenCLBackend, gy: Buffer<Float>, y: Buffer<Float>, gx: Buffer<Float>, rows: Int, cols: Int,
                         log: Bool) throws {
        try b.launch(.softmax_rows_backward(gy: gy, y: y, gx: gx, cols: cols, LOG: log ? 1 : 0, rows: rows), global: [rows], local: [1])
    }

    func layerNorm(_ b: OpenCLBackend, x: Buffer<Float>, gamma: Buffer<Float>, beta: Buffer<Float>, y: Buffer<Float>,
                   rows: Int, cols: Int, eps: Float, hasGamma: Bool, hasBeta: Bool) throws {
        try b.launch(.layernorm_rows_forward(x: x, gamma: gamma, beta: beta, y: y, cols: cols, eps: eps, hasGamma: hasGamma ? 1 : 0,
                                             hasBeta: hasBeta ? 1 : 0, rows: rows),
                     files: ["softmax", "layernorm"], global: [rows], local: [1])
    }

    func layerNormBackward(_ b: OpenCLBackend, gy: Buffer<Float>, x: Buffer<Float>, gamma: Buffer<Float>, gx: Buffer<Float>,
                           rows: Int, cols: Int, eps: Float, hasGamma: Bool) throws {
        try b.launch(.layernorm_rows_backward(gy: gy, x: x, gamma: gamma, gx: gx, cols: cols, eps: eps, hasGamma: hasGamma ? 1 : 0,
                                              rows: rows),
                     files: ["softmax", "layernorm"], global: [rows], local: [1])
    }

    /// A row a work-item, groups of 64 rows: a work-group of barriers per row cost PoCL more than
    /// a short row's sum (Grad-CAM's channel means, 10240 rows of 49 at batch 8: 3.6 ms).
    func reduceRows(_ b: OpenCLBackend, x: Buffer<Float>, y: Buffer<Float>, rows: Int, cols: Int, op: Reduction) throws {
        try b.launch(.reduce_rows_items(x: x, y: y, cols: cols, OP: Int(op.rawValue), rows: rows), global: [(rows + 63) / 64 * 64],
                     local: [64])
    }

    /// By rows when 32 outputs' window span fits maxpool2d_rows' 160-column buffer: every pool of
    /// the networks here.
    func poolsByRows(_ p: Pool2DParams) -> Bool { 31 * p.stride.w + p.kernel.w <= 160 }
    /// A work-item per pixel of a 7x7 map made 7-item work-groups, each costing PoCL about as
    /// much as the whole plane's sums (ResNet18's global pool backward: 0.2 ms at batch 1).
    var adaptivePoolBackwardByPlanes: Bool { true }

    /// A run of up to 16 pixels of one row (left to itself, PoCL may make the whole grid one
    /// work-group and keep one core busy).
    func planeLocal(width: Int, height: Int) -> [Int] { [Swift.min(Swift.max(width, 1), 16), 1, 1] }
}
