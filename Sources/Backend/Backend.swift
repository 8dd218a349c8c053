/// Every op Loupe's algorithms need, forward and backward, float32 NCHW. Two implementations:
/// `CPUBackend` (plain Swift, the reference) and `OpenCLBackend` (any OpenCL device). Code
/// written against this protocol runs unchanged on both, which is what makes "compare CPU and
/// GPU" free. Every op validates shapes the same way on both (`ShapeRules`) and throws a
/// `BackendError` naming the op and the shapes; nothing traps on bad input.
public protocol Backend: AnyObject, Sendable {
    /// "cpu" or the OpenCL device's name.
    var name: String { get }

    // MARK: Transfer
    /// A tensor holding `values` (row-major, `shape.count` of them).
    func tensor(_ values: [Float], _ shape: Shape) throws -> Tensor
    /// The values of `tensor`, row-major. Waits for pending work on the device.
    func values(_ tensor: Tensor) throws -> [Float]

    // MARK: conv2d: x [N, Cin, H, W], weight [Cout, Cin/groups, KH, KW], bias [Cout]
    /// y [N, Cout, OH, OW] = the cross-correlation of x with the weights (PyTorch's conv2d:
    /// stride, zero padding, dilation and groups from `p`), plus the bias per output channel.
    func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParams) throws -> Tensor
    /// conv2d followed by `activation` (nil: none), computed in one pass where the backend can
    /// (the activation applied as the convolution stores its result).
    func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParams, activation: Activation?) throws -> Tensor
    /// dL/dx from dL/dy.
    func conv2dBackwardInput(_ gy: Tensor, weight: Tensor, inputShape: Shape, _ p: Conv2DParams) throws -> Tensor
    /// dL/dx of conv2d followed by `activation` (the fused op above) from dL/d(its output):
    /// activationBackward under `rule`, its mask read from the fused op's `output` (y > 0 iff
    /// x > 0; 0 < y < 6 iff 0 < x < 6), then conv2dBackwardInput, in one pass over gy where the
    /// backend can (the mask applied as gy is read).
    func conv2dBackwardInput(_ gy: Tensor, weight: Tensor, inputShape: Shape, _ p: Conv2DParams, activation: Activation, output: Tensor,
                             rule: GradientRule) throws -> Tensor
    /// dL/dz for a convolution whose input x is `inputActivation`(z) (the output of a fused
    /// conv + activation that only this convolution reads): conv2dBackwardInput, then
    /// activationBackward under `rule` with its mask read from `input` (x), in one pass where the
    /// backend has a kernel that applies the mask as it stores dL/dx; nil where it has not (the
    /// caller then leaves the mask to the op that made x, which may apply it as it reads gy).
    func conv2dBackwardInput(_ gy: Tensor, weight: Tensor, input: Tensor, _ p: Conv2DParams, inputActivation: Activation,
                             rule: GradientRule) throws -> Tensor?
    /// dL/dweight from dL/dy and the forward input.
    func conv2dBackwardWeight(_ gy: Tensor, input: Tensor, weightShape: Shape, _ p: Conv2DParams) throws -> Tensor
    /// dL/dbias: gy summed over N, H and W, shape [Cout].
    func conv2dBackwardBias(_ gy: Tensor) throws -> Tensor

    // MARK: relu, relu6
    /// y = ReLU(x) = max(x, 0) or ReLU6(x) = min(max(x, 0), 6), elementwise.
    func activation(_ x: Tensor, _ kind: Activation) throws -> Tensor
    /// dL/dx from dL/dy and the forward input under a gradient rule (`GradientRule`): `standard`
    /// passes gy where the activation's slope is 1 (0 < x, and x < 6 for ReLU6); `guided` keeps
    /// only the positive part of that (guided backprop); `deconvnet` passes ReLU(gy) whatever x was.
    func activationBackward(_ gy: Tensor, input: Tensor, _ kind: Activation, rule: GradientRule) throws -> Tensor

    // MARK: Pooling
    /// The maximum of each window (kernel, stride, padding with -infinity, ceil mode from `p`).
    func maxPool2d(_ x: Tensor, _ p: Pool2DParams) throws -> Tensor
    /// Routes each output gradient to its window's argmax (first maximum, as PyTorch).
    func maxPool2dBackward(_ gy: Tensor, input: Tensor, _ p: Pool2DParams) throws -> Tensor
    /// The mean of each window; padded cells count when `p.countIncludePad` (PyTorch's default).
    func avgPool2d(_ x: Tensor, _ p: Pool2DParams) throws -> Tensor
    /// dL/dx: each output gradient spread evenly over its window's cells.
    func avgPool2dBackward(_ gy: Tensor, inputShape: Shape, _ p: Pool2DParams) throws -> Tensor
    /// PyTorch's adaptive average pool: output cell o covers [floor(o*I/O), ceil((o+1)*I/O)).
    func adaptiveAvgPool2d(_ x: Tensor, outputSize: (h: Int, w: Int)) throws -> Tensor
    /// dL/dx: each output cell's gradient spread evenly over the input cells it covers.
    func adaptiveAvgPool2dBackward(_ gy: Tensor, inputShape: Shape) throws -> Tensor

    // MARK: linear: x [N, In], weight [Out, In], bias [Out]; y = x W^T + b
    /// y [N, Out] = x W^T + b.
    func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) throws -> Tensor
    /// dL/dx [N, In] = gy W.
    func linearBackwardInput(_ gy: Tensor, weight: Tensor) throws -> Tensor
    /// dL/dW [Out, In] = gy^T x, from dL/dy and the forward input.
    func linearBackwardWeight(_ gy: Tensor, input: Tensor) throws -> Tensor
    /// gy summed over the batch, shape [Out].
    func linearBackwardBias(_ gy: Tensor) throws -> Tensor

    // MARK: Batched matrix product
    /// c[z] = op(a[z]) op(b[z]) for z < Z: a [Z, M, K] ([Z, K, M] when transposeA), b [Z, K, N]
    /// ([Z, N, K] when transposeB), c [Z, M, N]. Attention's products; the backward of
    /// c = a b is ga = gc b^T and gb = a^T gc, two more of them.
    func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) throws -> Tensor

    // MARK: batchnorm2d, inference mode
    /// y = (x - mean) / sqrt(var + eps) * gamma + beta per channel, with the running statistics.
    func batchNorm2d(_ x: Tensor, _ bn: BatchNormParams) throws -> Tensor
    /// dL/dx = gy * gamma / sqrt(var + eps) per channel (the statistics are constants).
    func batchNorm2dBackward(_ gy: Tensor, _ bn: BatchNormParams) throws -> Tensor

    // MARK: Elementwise (same shapes)
    /// a + b, elementwise.
    func add(_ a: Tensor, _ b: Tensor) throws -> Tensor
    /// a * b, elementwise.
    func mul(_ a: Tensor, _ b: Tensor) throws -> Tensor
    /// s * a, elementwise.
    func scale(_ a: Tensor, _ s: Float) throws -> Tensor
    /// alpha * x + y
    func axpy(_ alpha: Float, _ x: Tensor, _ y: Tensor) throws -> Tensor
    /// `copies` noisy copies of x, [copies * N, ...]: element j of copy k is
    /// x[j] + sigma * g(offset + k * x.count + j), g the counter-based Gaussian stream of `seed`
    /// (random.cl; the same numbers on every backend, drawn where the copies are made).
    func noisyCopies(_ x: Tensor, copies: Int, sigma: Float, seed: UInt64, offset: UInt64) throws -> Tensor

    // MARK: Channels (dimension 1 of NCHW)
    /// The parts joined along the channel dimension (same N, H, W): torch.cat(parts, dim=1).
    func concat(_ parts: [Tensor]) throws -> Tensor
    /// x cut along the channel dimension into parts of `sizes` channels (they sum to C): concat's
    /// backward.
    func split(_ x: Tensor, sizes: [Int]) throws -> [Tensor]

    // MARK: Layout (rank 1 to 6)
    /// x with its dimensions reordered: output dimension i is input dimension perm[i] (numpy's
    /// transpose, ONNX Transpose); its backward is the permute by the inverse permutation.
    func permute(_ x: Tensor, _ perm: [Int]) throws -> Tensor

    // MARK: Layer normalization over the last dimension
    /// (x - mean) / sqrt(var + eps) * gamma + beta along each row of the last dimension (biased
    /// variance, as torch.nn.LayerNorm); gamma and beta have shape [C], or are nil (no affine).
    func layerNorm(_ x: Tensor, gamma: Tensor?, beta: Tensor?, eps: Float) throws -> Tensor
    /// dL/dx of layerNorm, from dL/dy and the forward input.
    func layerNormBackward(_ gy: Tensor, input: Tensor, gamma: Tensor?, eps: Float) throws -> Tensor

    // MARK: Softmax over the last dimension
    /// exp(x - max) / sum(exp(x - max)) along each row of the last dimension.
    func softmax(_ x: Tensor) throws -> Tensor
    /// From dL/dy and the forward output y.
    func softmaxBackward(_ gy: Tensor, output: Tensor) throws -> Tensor
    /// x - max - log(sum(exp(x - max))) along each row of the last dimension.
    func logSoftmax(_ x: Tensor) throws -> Tensor
    /// From dL/dy and the forward output y: gy - exp(y) * sum(gy) per row.
    func logSoftmaxBackward(_ gy: Tensor, output: Tensor) throws -> Tensor

    // MARK: Reductions over all dimensions from `axis` on; the result has shape dims[..<axis]
    // (or [1] for axis 0).
    /// The sum, mean or sum of squares of each row (all dimensions from `axis` on).
    func reduce(_ x: Tensor, _ op: Reduction, axis: Int) throws -> Tensor
    /// dL/dx of reduce, from dL/dy and the forward input: gy broadcast over each row (divided by
    /// the row length for the mean, times 2x for the sum of squares).
    func reduceBackward(_ gy: Tensor, input: Tensor, _ op: Reduction, axis: Int) throws -> Tensor
    /// Maximum and the flat index of its first occurrence (as a float) within each row.
    func max(_ x: Tensor, axis: Int) throws -> (values: Tensor, indices: Tensor)
    /// dL/dx of max: each row's gradient to the position `indices` names, zeros elsewhere.
    func maxBackward(_ gy: Tensor, indices: Tensor, inputShape: Shape, axis: Int) throws -> Tensor

    // MARK: Class activation maps (no backward: they read a finished pass)
    /// Grad-CAM++'s channel weights (Chattopadhay et al.) [N, C] from a layer's activations A
    /// and the target's gradient G there, both [N, C, H, W]: the sum over each plane, where
    /// G != 0, of ReLU(G) G^2 / (2 G^2 + sum(A) G^3 + 1e-6), sum(A) over the same plane.
    func gradCAMPlusPlusWeights(_ activations: Tensor, gradients: Tensor) throws -> Tensor
    /// Each row of x (rows of `x.shape`'s last two dimensions: a map's planes) made
    /// non-negative and scaled to [0, 1] as pytorch-grad-cam does: y = ReLU(x), then
    /// (y - min y) / (max(y - min y) + 1e-7).
    func normalizePlanes(_ x: Tensor) throws -> Tensor

    // MARK: Post-processing of maps (forward only: nothing differentiates through them yet)
    /// Resize of each plane, no antialiasing, with PyTorch's interpolate modes.
    func resize(_ x: Tensor, height: Int, width: Int, mode: ResizeMode) throws -> Tensor
    /// [1 or M, C, H, W] x [M, 1, H, W] -> [M, C, H, W]: an image (or one per mask) times each mask.
    func broadcastMul(_ x: Tensor, masks: Tensor) throws -> Tensor
    /// The maximum over channels: [N, C, H, W] -> [N, 1, H, W].
    func channelMax(_ x: Tensor) throws -> Tensor

    // MARK: Optimization engine (feature visualization and inversion)
    /// y = f(x) elementwise.
    func pointwise(_ x: Tensor, _ op: Pointwise) throws -> Tensor
    /// dL/dx = gy * f'(x), from dL/dy and the forward input.
    func pointwiseBackward(_ gy: Tensor, input: Tensor, _ op: Pointwise) throws -> Tensor
    /// [N, C, H, W] -> [N, C, height, width]: image n bilinearly sampled through transforms[n]
    /// (`AffineMap`), `fill` outside the input.
    func affineSample(_ x: Tensor, _ transforms: [AffineMap], height: Int, width: Int, fill: Float) throws -> Tensor
    /// dL/dx of affineSample: each output gradient scattered to its four bilinear neighbours with
    /// their weights (sampled positions outside the input contribute nothing).
    func affineSampleBackward(_ gy: Tensor, _ transforms: [AffineMap], inputShape: Shape) throws -> Tensor
    /// One Adam step at step t (from 1): the new parameters, first and second moments.
    func adamStep(_ p: Tensor, gradient g: Tensor, m: Tensor, v: Tensor, _ settings: AdamSettings, step t: Int) throws -> (p: Tensor, m: Tensor, v: Tensor)
}

/// How `Backend.resize` interpolates.
public enum ResizeMode: Int32, Sendable {
    /// Bilinear, half-pixel centres (align_corners=False; OpenCV's INTER_LINEAR when upsampling).
    case bilinear = 0
    /// Bilinear, corners aligned (align_corners=True; torch.nn.UpsamplingBilinear2d).
    case bilinearAlignCorners = 1
    /// Nearest: input floor(o * in / out).
    case nearest = 2
}

extension Backend {
    /// Bilinear resize with half-pixel centres.
    public func resizeBilinear(_ x: Tensor, height: Int, width: Int) throws -> Tensor {
        try resize(x, height: height, width: width, mode: .bilinear)
    }
}

/// Shape checks and output shapes shared by both backends, so both refuse the same inputs
/// with the same message.
public enum ShapeRules {
    /// Input [N, C, H, W] with one transform per image and a positive output size.
    public static func affineSample(_ op: String, _ s: Shape, _ transforms: [AffineMap], height: Int, width: Int) throws -> (n: Int, c: Int, h: Int, w: Int) {
        let (n, c, h, w) = try rank4(op, s)
        guard transforms.count == n else { throw BackendError(op, "\(transforms.count) transforms for a batch of \(n)") }
        guard height >= 1, width >= 1 else { throw BackendError(op, "output size \(height)x\(width) must be positive") }
        for t in transforms { _ = try t.packed() }
        return (n, c, h, w)
    }
    /// [N, ...] -> [copies * N, ...] for at least one copy of a non-empty tensor.
    public static func noisyCopies(_ op: String, _ s: Shape, copies: Int) throws -> Shape {
        guard s.rank >= 1, s.count > 0, copies >= 1, copies <= Int(Int32.max) / s.count else {
            throw BackendError(op, "needs a non-empty tensor and 1 to \(Int(Int32.max) / Swift.max(s.count, 1)) copies, got \(s) and \(copies)")
        }
        return Shape([copies * s[0]] + Array(s.dims.dropFirst()))
    }

    /// Throws unless `a` and `b` are the same shape (elementwise ops, backward passes).
    public static func same(_ op: String, _ a: Shape, _ b: Shape) throws {
        guard a == b else { throw BackendError(op, "shapes differ: \(a) vs \(b)") }
    }

    /// The dimensions of an NCHW shape; throws for any other rank.
    public static func rank4(_ op: String, _ s: Shape) throws -> (n: Int, c: Int, h: Int, w: Int) {
        guard let v = s.nchw else { throw BackendError(op, "expected an NCHW tensor, got \(s)") }
        return v
    }

    /// Throws unless `t` (when given) has shape [channels]: a bias, gamma or beta.
    public static func channelVector(_ op: String, _ t: Tensor?, channels: Int, what: String) throws {
        guard let t else { return }
        guard t.shape == [channels] else {
            throw BackendError(op, "\(what) has shape \(t.shape), expected [\(channels)]")
        }
    }

    /// (rows, cols) of the planes of a map [..., H, W]: rows = the product of the leading dimensions.
    public static func planes(_ op: String, _ s: Shape) throws -> (rows: Int, cols: Int) {
        guard s.rank >= 2, s.count > 0 else { throw BackendError(op, "expected a non-empty [..., H, W] map, got \(s)") }
        let cols = s[s.rank - 2] * s[s.rank - 1]
        return (s.count / cols, cols)
    }

    /// A CAM's activations and gradients: both [N, C, H, W] and of one shape; the weights'
    /// shape [N, C] and the planes' size H * W.
    public static func camWeights(_ op: String, _ a: Shape, _ g: Shape) throws -> (out: Shape, cols: Int) {
        let (n, c, h, w) = try rank4(op, a)
        try same(op, a, g)
        return ([n, c], h * w)
    }

    /// (rows, cols) of a reduction from `axis` on.
    public static func rows(_ op: String, _ s: Shape, axis: Int) throws -> (rows: Int, cols: Int, out: Shape) {
        guard axis >= 0, axis < s.rank else { throw BackendError(op, "axis \(axis) out of range for \(s)") }
        let rows = s.dims[..<axis].reduce(1, *)
        let cols = s.dims[axis...].reduce(1, *)
        guard cols > 0 else { throw BackendError(op, "cannot reduce an empty tensor \(s)") }
        return (rows, cols, axis == 0 ? [1] : Shape(Array(s.dims[..<axis])))
    }

    /// Rows (the product of the leading dimensions) and columns (the last dimension) of a
    /// non-empty tensor: softmax's and layer norm's rows.
    public static func lastDim(_ op: String, _ s: Shape) throws -> (rows: Int, cols: Int) {
        guard s.rank >= 1, let cols = s.dims.last, cols > 0 else { throw BackendError(op, "expected a non-empty tensor, got \(s)") }
        return (s.count / cols, cols)
    }

    /// (N, In, Out) for x [N, In] and weight [Out, In].
    public static func linear(_ op: String, x: Shape, weight: Shape) throws -> (n: Int, inF: Int, outF: Int) {
        guard x.rank == 2, weight.rank == 2, x[1] == weight[1] else {
            throw BackendError(op, "input \(x) and weight \(weight) must be [N, In] and [Out, In]")
        }
        return (x[0], x[1], weight[0])
    }

    /// (N, Out, In) of linear's backward to the input: gy [N, Out], W [Out, In].
    public static func linearBackwardInput(_ op: String, gradient gy: Shape, weight: Shape) throws -> (n: Int, outF: Int, inF: Int) {
        guard gy.rank == 2, weight.rank == 2, gy[1] == weight[0] else {
            throw BackendError(op, "gradient \(gy) and weight \(weight) must be [N, Out] and [Out, In]")
        }
        return (gy[0], weight[0], weight[1])
    }

    /// (N, Out, In) of linear's backward to the weight: gy [N, Out], x [N, In].
    public static func linearBackwardWeight(_ op: String, gradient gy: Shape, input: Shape) throws -> (n: Int, outF: Int, inF: Int) {
        guard gy.rank == 2, input.rank == 2, gy[0] == input[0] else {
            throw BackendError(op, "gradient \(gy) and input \(input) must be [N, Out] and [N, In]")
        }
        return (gy[0], gy[1], input[1])
    }

    /// (N, Out) of a bias gradient's input gy [N, Out].
    public static func linearBackwardBias(_ op: String, gradient gy: Shape) throws -> (n: Int, outF: Int) {
        guard gy.rank == 2 else { throw BackendError(op, "expected [N, Out], got \(gy)") }
        return (gy[0], gy[1])
    }

    /// The batch Z and the sizes M, K, N of a batched matrix product (see `Backend.matmul`).
    public static func matmul(_ op: String, _ a: Shape, _ b: Shape, transposeA: Bool, transposeB: Bool) throws -> (z: Int, m: Int, k: Int, n: Int) {
        guard a.rank == 3, b.rank == 3, a[0] == b[0] else {
            throw BackendError(op, "operands \(a) and \(b) must be [Z, rows, columns] with the same Z")
        }
        let (m, k) = transposeA ? (a[2], a[1]) : (a[1], a[2])
        let (kb, n) = transposeB ? (b[2], b[1]) : (b[1], b[2])
        guard k == kb else {
            throw BackendError(op, "cannot multiply \(a)\(transposeA ? " transposed" : "") by \(b)\(transposeB ? " transposed" : ""): inner sizes \(k) and \(kb)")
        }
        return (a[0], m, k, n)
    }

    /// The output shape of joining NCHW parts along channels: same N, H and W, channels summed.
    public static func concat(_ op: String, _ parts: [Shape]) throws -> Shape {
        guard let first = parts.first else { throw BackendError(op, "nothing to concatenate") }
        let f = try rank4(op, first)
        var channels = 0
        for p in parts {
            let v = try rank4(op, p)
            guard v.n == f.n, v.h == f.h, v.w == f.w else {
                throw BackendError(op, "shapes \(parts.map(\.description).joined(separator: ", ")) differ outside the channel dimension")
            }
            channels += v.c
        }
        return [f.n, channels, f.h, f.w]
    }

    /// (M, C, H * W, whether x has one image per mask) for x [1 or M, C, H, W] and masks
    /// [M, 1, H, W].
    public static func broadcastMul(_ op: String, _ x: Shape, _ masks: Shape) throws -> (m: Int, c: Int, hw: Int, perMask: Bool) {
        let (n, c, h, w) = try rank4(op, x)
        let (m, mc, mh, mw) = try rank4(op, masks)
        guard mc == 1, mh == h, mw == w, n == 1 || n == m else {
            throw BackendError(op, "image \(x) and masks \(masks) must be [1 or M, C, H, W] and [M, 1, H, W]")
        }
        return (m, c, h * w, n == m && m > 1)
    }

    /// The output shape of a permute and, per output dimension, its stride in the input.
    public static func permute(_ op: String, _ s: Shape, _ perm: [Int]) throws -> (out: Shape, strides: [Int]) {
        guard s.rank >= 1, s.rank <= 6, perm.count == s.rank, Set(perm) == Set(0..<s.rank) else {
            throw BackendError(op, "\(perm) is not a permutation of the \(s.rank) dimensions of \(s) (rank 1 to 6)")
        }
        var strides = [Int](repeating: 1, count: s.rank)
        for i in stride(from: s.rank - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * s[i + 1] }
        return (Shape(perm.map { s[$0] }), perm.map { strides[$0] })
    }

    /// (rows, cols) of a layer normalization over the last dimension, gamma and beta checked.
    public static func layerNorm(_ op: String, _ s: Shape, gamma: Tensor?, beta: Tensor?, eps: Float) throws -> (rows: Int, cols: Int) {
        let (rows, cols) = try lastDim(op, s)
        try channelVector(op, gamma, channels: cols, what: "gamma")
        try channelVector(op, beta, channels: cols, what: "beta")
        guard eps.isFinite, eps >= 0 else { throw BackendError(op, "epsilon \(eps) must be finite and non-negative") }
        return (rows, cols)
    }

    /// Throws unless `sizes` are positive and sum to the channels of NCHW shape `s`.
    public static func split(_ op: String, _ s: Shape, sizes: [Int]) throws {
        let v = try rank4(op, s)
        guard sizes.allSatisfy({ $0 > 0 }), sizes.reduce(0, +) == v.c else {
            throw BackendError(op, "sizes \(sizes) do not add up to the \(v.c) channels of \(s)")
        }
    }
}

extension Backend {
    /// The composition, for backends without a fused kernel (the CPU reference).
    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParams, activation: Activation?) throws -> Tensor {
        let y = try conv2d(x, weight: weight, bias: bias, p)
        return try activation.map { try self.activation(y, $0) } ?? y
    }

    /// The composition, for backends without a fused kernel (the CPU reference).
    public func conv2dBackwardInput(_ gy: Tensor, weight: Tensor, inputShape: Shape, _ p: Conv2DParams, activation: Activation,
                                    output: Tensor, rule: GradientRule) throws -> Tensor {
        try conv2dBackwardInput(try activationBackward(gy, input: output, activation, rule: rule), weight: weight, inputShape: inputShape, p)
    }

    /// No single-pass kernel: nil (the CPU reference and any backend without one).
    public func conv2dBackwardInput(_ gy: Tensor, weight: Tensor, input: Tensor, _ p: Conv2DParams, inputActivation: Activation,
                                    rule: GradientRule) throws -> Tensor? {
        nil
    }
}
