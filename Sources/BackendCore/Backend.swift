/// Every op Loupe's algorithms need, forward and backward, float32 NCHW. Two implementations:
/// `CPUBackend` (plain Swift, the reference) and `OpenCLBackend` (any OpenCL device). Code
/// written against this protocol runs unchanged on both, which is what makes "compare CPU and
/// GPU" free. Every op validates shapes the same way on both (`ShapeRules`) and throws a
/// `BackendError` naming the op and the shapes; nothing traps on bad input. The ops only
/// attribution and feature visualization use are a protocol of their own (`AttributionOps`)
/// with host implementations by default, so a new backend starts with the ops below.
public protocol Backend: AttributionOps, AnyObject, Sendable {
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
    /// activation(conv2d(x) + residual) (`residual` of y's shape, nil: none): a residual block's
    /// last convolution, its shortcut and the activation after their sum, in one pass where the
    /// backend can. In a pass that no backward follows (`forwardOnly`) the backend may take a
    /// faster form with more rounding error, within float32 logits' tolerance (the
    /// register-blocked family: Winograd F(4x4, 3x3) for 3x3 windows, where a differentiable pass
    /// keeps F(2x2, 3x3), whose activations choose the same ReLU and max-pool branches as the
    /// direct sum's).
    func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParams, activation: Activation?, residual: Tensor?,
                forwardOnly: Bool) throws -> Tensor
    /// dL/dx from dL/dy.
    func conv2dBackwardInput(_ gy: Tensor, weight: Tensor, inputShape: Shape, _ p: Conv2DParams) throws -> Tensor
    /// dL/dx with the fused activations around the convolution (`ConvolutionFusion`): the one
    /// after it, whose mask gy goes through first, and the one that made its input, whose mask
    /// dL/dx goes through as it is stored where the backend has a kernel for that (the result
    /// says whether it did; when it did not, the caller leaves that mask to the op that made x).
    func conv2dBackwardInput(_ gy: Tensor, weight: Tensor, inputShape: Shape, _ p: Conv2DParams,
                             fused: ConvolutionFusion) throws -> (gradient: Tensor, inputMasked: Bool)
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


    // MARK: Resizing and post-processing of maps
    /// Resize of each plane, no antialiasing, with PyTorch's interpolate modes.
    func resize(_ x: Tensor, height: Int, width: Int, mode: ResizeMode) throws -> Tensor
    /// dL/dx of resize (its adjoint: each input pixel gets the gradient of every output that
    /// reads it, times that output's weight on it), from dL/dy [N, C, OH, OW].
    func resizeBackward(_ gy: Tensor, inputShape: Shape, mode: ResizeMode) throws -> Tensor
    /// [1 or M, C, H, W] x [M, 1, H, W] -> [M, C, H, W]: an image (or one per mask) times each mask.
    func broadcastMul(_ x: Tensor, masks: Tensor) throws -> Tensor
    /// The maximum over channels: [N, C, H, W] -> [N, 1, H, W].
    func channelMax(_ x: Tensor) throws -> Tensor

    // MARK: Optimization engine (feature visualization and inversion)
    /// y = f(x) elementwise.
    func pointwise(_ x: Tensor, _ op: Pointwise) throws -> Tensor
    /// dL/dx = gy * f'(x), from dL/dy and the forward input.
    func pointwiseBackward(_ gy: Tensor, input: Tensor, _ op: Pointwise) throws -> Tensor

    // MARK: Fused blocks (forward only)
    /// An inverted residual's expand and depthwise layers in one pass, forward only:
    /// activation(depthwise(activation(expand(x)))), `expandWeight` [E, K, 1, 1] and
    /// `depthwiseWeight` [E, 1, kh, kw] with groups E in `p`; nil where the backend has no fused
    /// kernel for these shapes (the caller then runs the layers one by one).
    func expandDepthwise(_ x: Tensor, expandWeight: Tensor, expandBias: Tensor, depthwiseWeight: Tensor, depthwiseBias: Tensor,
                         _ p: Conv2DParams, activation: Activation) throws -> Tensor?
    /// A whole inverted residual, forward only: project(activation(depthwise(activation(
    /// expand(x))))) + (x where `residual`), `projectWeight` [Cout, E, 1, 1] with `projectBias`
    /// and no activation after it; nil where the backend has no fused form for these shapes.
    func invertedResidual(_ x: Tensor, expandWeight: Tensor, expandBias: Tensor, depthwiseWeight: Tensor, depthwiseBias: Tensor,
                          _ p: Conv2DParams, activation: Activation, projectWeight: Tensor, projectBias: Tensor,
                          residual: Bool) throws -> Tensor?
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

extension Backend {
    /// The composition, for backends without a fused kernel (the CPU reference).
    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParams, activation: Activation?) throws -> Tensor {
        let y = try conv2d(x, weight: weight, bias: bias, p)
        return try activation.map { try self.activation(y, $0) } ?? y
    }

    /// No fused kernel (the CPU reference): nil.
    public func expandDepthwise(_ x: Tensor, expandWeight: Tensor, expandBias: Tensor, depthwiseWeight: Tensor,
                                depthwiseBias: Tensor, _ p: Conv2DParams, activation: Activation) throws -> Tensor? { nil }

    /// No fused kernel (the CPU reference): nil.
    public func invertedResidual(_ x: Tensor, expandWeight: Tensor, expandBias: Tensor, depthwiseWeight: Tensor,
                                 depthwiseBias: Tensor, _ p: Conv2DParams, activation: Activation, projectWeight: Tensor,
                                 projectBias: Tensor, residual: Bool) throws -> Tensor? { nil }

    /// The composition in the one form this backend has (the CPU reference): the convolution,
    /// the residual added, the activation.
    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParams, activation: Activation?, residual: Tensor?,
                       forwardOnly: Bool) throws -> Tensor {
        guard let residual else { return try conv2d(x, weight: weight, bias: bias, p, activation: activation) }
        let sum = try add(try conv2d(x, weight: weight, bias: bias, p), residual)
        return try activation.map { try self.activation(sum, $0) } ?? sum
    }

    /// The composition, for backends without a fused kernel (the CPU reference): gy through the
    /// output's activation, then the plain backward; the input's mask is left to its op.
    public func conv2dBackwardInput(_ gy: Tensor, weight: Tensor, inputShape: Shape, _ p: Conv2DParams,
                                    fused: ConvolutionFusion) throws -> (gradient: Tensor, inputMasked: Bool) {
        let g = try fused.output.map { try activationBackward(gy, input: $0.value, $0.activation, rule: fused.rule) } ?? gy
        return (try conv2dBackwardInput(g, weight: weight, inputShape: inputShape, p), false)
    }
}
