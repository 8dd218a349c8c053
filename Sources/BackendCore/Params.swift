import Foundation

/// conv2d settings, PyTorch's meaning: output size per axis is
/// (in + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1.
public struct Conv2DParams: Hashable, Sendable, CustomStringConvertible {
    /// Steps between window positions, per axis.
    public var stride: (h: Int, w: Int)
    /// Zeros added on each side, per axis.
    public var padding: (h: Int, w: Int)
    /// Spacing between window taps, per axis (1: adjacent).
    public var dilation: (h: Int, w: Int)
    /// Channel groups: input and output channels split into `groups` independent convolutions
    /// (channels: depthwise).
    public var groups: Int

    /// The same stride, padding and dilation on both axes.
    public init(stride: Int = 1, padding: Int = 0, dilation: Int = 1, groups: Int = 1) {
        self.init(stride: (stride, stride), padding: (padding, padding), dilation: (dilation, dilation), groups: groups)
    }

    /// Stride, padding and dilation per axis (height, width).
    public init(stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int) = (1, 1), groups: Int = 1) {
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
    }

    /// Equal settings on both axes.
    public static func == (a: Self, b: Self) -> Bool {
        a.stride == b.stride && a.padding == b.padding && a.dilation == b.dilation && a.groups == b.groups
    }
    /// Hashes every setting.
    public func hash(into h: inout Hasher) {
        for v in [stride.h, stride.w, padding.h, padding.w, dilation.h, dilation.w, groups] { h.combine(v) }
    }
    /// "stride HxW pad HxW dil HxW groups G".
    public var description: String {
        "stride \(stride.h)x\(stride.w) pad \(padding.h)x\(padding.w) dil \(dilation.h)x\(dilation.w) groups \(groups)"
    }

    /// Checks `input` [N, Cin, H, W] against `weight` [Cout, Cin/groups, KH, KW] and returns the
    /// output shape [N, Cout, OH, OW].
    public func outputShape(input: Shape, weight: Shape, op: String = "conv2d") throws -> Shape {
        guard let (n, cin, h, w) = input.nchw, let (cout, cig, kh, kw) = weight.nchw else {
            throw BackendError(op, "input \(input) and weight \(weight) must both be rank 4")
        }
        let limit = 1 << 24  // far past any real window; keeps the arithmetic below in range
        guard groups >= 1, stride.h >= 1, stride.w >= 1, dilation.h >= 1, dilation.w >= 1,
              padding.h >= 0, padding.w >= 0,
              [stride.h, stride.w, dilation.h, dilation.w, padding.h, padding.w, groups].allSatisfy({ $0 <= limit }) else {
            throw BackendError(op, "invalid settings: \(self)")
        }
        guard [h, w, kh, kw].allSatisfy({ $0 <= limit }) else { throw BackendError(op, "input \(input) or weight \(weight) is too large") }
        guard cin % groups == 0, cout % groups == 0, cig == cin / groups else {
            throw BackendError(op, "input \(input) and weight \(weight) do not agree with \(groups) group(s): weight must be [Cout, Cin/groups, KH, KW] with Cout divisible by groups")
        }
        let oh = (h + 2 * padding.h - dilation.h * (kh - 1) - 1) / stride.h + 1
        let ow = (w + 2 * padding.w - dilation.w * (kw - 1) - 1) / stride.w + 1
        guard oh >= 1, ow >= 1, h + 2 * padding.h - dilation.h * (kh - 1) - 1 >= 0,
              w + 2 * padding.w - dilation.w * (kw - 1) - 1 >= 0 else {
            throw BackendError(op, "kernel \(kh)x\(kw) with \(self) does not fit input \(input)")
        }
        let out: Shape = [n, cout, oh, ow]
        guard out.checkedCount != nil else { throw BackendError(op, "output \(out) has more elements than can be counted") }
        return out
    }
}

/// max / average pool settings, PyTorch's meaning (`ceil_mode`, `count_include_pad`).
public struct Pool2DParams: Hashable, Sendable, CustomStringConvertible {
    /// Window size, per axis.
    public var kernel: (h: Int, w: Int)
    /// Step between windows, per axis.
    public var stride: (h: Int, w: Int)
    /// Cells added on each side, per axis (-infinity for max pooling, zeros for average pooling).
    public var padding: (h: Int, w: Int)
    /// Rounds the output size up (a last, partial window), as PyTorch's `ceil_mode`.
    public var ceilMode: Bool
    /// Average pool only: divide by the padded window size (PyTorch's default) or by the
    /// number of real input pixels.
    public var countIncludePad: Bool

    /// Square windows; `stride` nil means the window size, as in PyTorch.
    public init(kernel: Int, stride: Int? = nil, padding: Int = 0, ceilMode: Bool = false, countIncludePad: Bool = true) {
        self.kernel = (kernel, kernel)
        self.stride = (stride ?? kernel, stride ?? kernel)
        self.padding = (padding, padding)
        self.ceilMode = ceilMode
        self.countIncludePad = countIncludePad
    }

    /// Equal settings.
    public static func == (a: Self, b: Self) -> Bool {
        a.kernel == b.kernel && a.stride == b.stride && a.padding == b.padding && a.ceilMode == b.ceilMode
            && a.countIncludePad == b.countIncludePad
    }
    /// Hashes every setting.
    public func hash(into h: inout Hasher) {
        for v in [kernel.h, kernel.w, stride.h, stride.w, padding.h, padding.w] { h.combine(v) }
        h.combine(ceilMode); h.combine(countIncludePad)
    }
    /// "kernel HxW stride HxW pad HxW" (and " ceil" in ceil mode).
    public var description: String {
        "kernel \(kernel.h)x\(kernel.w) stride \(stride.h)x\(stride.w) pad \(padding.h)x\(padding.w)\(ceilMode ? " ceil" : "")"
    }

    static func outputSize(_ size: Int, _ k: Int, _ s: Int, _ p: Int, ceil: Bool) -> Int {
        let span = size + 2 * p - k
        var out = (ceil ? (span + s - 1) / s : span / s) + 1
        // PyTorch: the last window must start inside the input or its left padding.
        if ceil && (out - 1) * s >= size + p { out -= 1 }
        return out
    }

    /// [N, C, OH, OW] for an input [N, C, H, W] under PyTorch's rules; throws for another rank, a
    /// padding over half the window, or a padded input smaller than the window.
    public func outputShape(input: Shape, op: String) throws -> Shape {
        guard let (n, c, h, w) = input.nchw else { throw BackendError(op, "input \(input) must be rank 4") }
        guard kernel.h >= 1, kernel.w >= 1, stride.h >= 1, stride.w >= 1, padding.h >= 0, padding.w >= 0,
              [kernel.h, kernel.w, stride.h, stride.w, h, w].allSatisfy({ $0 <= 1 << 24 }),
              2 * padding.h <= kernel.h, 2 * padding.w <= kernel.w else {
            throw BackendError(op, "invalid settings: \(self) (padding must be at most half the kernel)")
        }
        guard h + 2 * padding.h >= kernel.h, w + 2 * padding.w >= kernel.w else {
            throw BackendError(op, "kernel \(kernel.h)x\(kernel.w) does not fit input \(input)")
        }
        return [n, c, Pool2DParams.outputSize(h, kernel.h, stride.h, padding.h, ceil: ceilMode),
                Pool2DParams.outputSize(w, kernel.w, stride.w, padding.w, ceil: ceilMode)]
    }
}

/// Inference-mode batch normalization parameters, per channel:
/// y = (x - mean) / sqrt(variance + eps) * gamma + beta.
public struct BatchNormParams: Sendable {
    /// Per-channel scale [C] (PyTorch's `weight`).
    public let gamma: Tensor
    /// Per-channel shift [C] (PyTorch's `bias`).
    public let beta: Tensor
    /// Running mean [C].
    public let mean: Tensor
    /// Running variance [C].
    public let variance: Tensor
    /// Added to the variance before the square root.
    public let eps: Float
    /// Parameters from the four [C] tensors; eps 1e-5 as PyTorch's default.
    public init(gamma: Tensor, beta: Tensor, mean: Tensor, variance: Tensor, eps: Float = 1e-5) {
        self.gamma = gamma; self.beta = beta; self.mean = mean; self.variance = variance; self.eps = eps
    }
}

/// The piecewise-linear activations the gradient rules apply to.
public enum Activation: Int32, Sendable, CaseIterable {
    /// max(x, 0)
    case relu = 0
    /// min(max(x, 0), 6)
    case relu6 = 1
}

/// The activations fused around a convolution in its backward pass to the input, and the rule
/// their backward follows.
public struct ConvolutionFusion: Sendable {
    /// A fused activation and the tensor its mask is read from (y > 0 iff x > 0; 0 < y < 6 iff
    /// 0 < x < 6, so an activation's output gives the same mask as its input).
    public struct Mask: Sendable {
        /// The activation.
        public var activation: Activation
        /// The tensor whose values decide the mask.
        public var value: Tensor
        /// `activation` with its mask read from `value`.
        public init(_ activation: Activation, _ value: Tensor) { self.activation = activation; self.value = value }
    }

    /// The rule both masks follow.
    public var rule: GradientRule
    /// The activation fused after the convolution, its mask read from the fused op's output: gy
    /// is the gradient of that output.
    public var output: Mask?
    /// The activation whose output is the convolution's input x (a fused op that only this
    /// convolution reads), its mask read from x: applied to dL/dx as it is stored, where the
    /// backend has a kernel for it.
    public var input: Mask?

    /// A fusion under `rule`; nil masks are not fused.
    public init(rule: GradientRule, output: Mask? = nil, input: Mask? = nil) {
        self.rule = rule; self.output = output; self.input = input
    }
}

/// How an activation's backward pass treats the incoming gradient g.
public enum GradientRule: Int32, Sendable, CaseIterable {
    /// g * f'(x): the true gradient.
    case standard = 0
    /// max(g * f'(x), 0): guided backprop (input positive and gradient positive).
    case guided = 1
    /// max(g, 0): deconvnet (the forward mask is ignored).
    case deconvnet = 2
}

/// What `Backend.reduce` computes over each row.
public enum Reduction: Int32, Sendable, CaseIterable {
    case sum = 0
    case mean = 1
    /// sum of x^2
    case sumOfSquares = 2
}

/// Elementwise functions of the optimization engine (image parameterizations, regularizers),
/// each with its derivative.
public enum Pointwise: Hashable, Sendable {
    /// 1 / (1 + e^-x); derivative s (1 - s).
    case sigmoid
    /// |x|^p (p != 0; for p < 0 only x != 0 is finite); derivative p |x|^(p-1) sign(x), taken
    /// as 0 at x = 0.
    case absPower(Float)
    /// relu6(x + 3) / 6 (torch.nn.Hardsigmoid, ONNX HardSigmoid with alpha 1/6, beta 1/2);
    /// derivative 1/6 on (-3, 3), else 0, as PyTorch takes it.
    case hardSigmoid
    /// x relu6(x + 3) / 6 (torch.nn.Hardswish); derivative 0 below -3, x/3 + 1/2 on [-3, 3]
    /// and 1 above, as PyTorch takes it.
    case hardSwish
    /// The error function (ONNX Erf); derivative 2 / sqrt(pi) e^(-x^2).
    case erf
    /// x + c (a scalar added to a tensor of any rank); derivative 1.
    case offset(Float)
    /// x Phi(x) = x (1 + erf(x / sqrt 2)) / 2 (torch.nn.GELU, exact); derivative
    /// Phi(x) + x phi(x).
    case gelu
    /// tanh(x); derivative 1 - tanh(x)^2.
    case tanh
    /// 1 / (x + e s(x)), s(x) = 1 for x >= 0 (zero included), -1 below: the stabilized
    /// denominator of layer-wise relevance propagation (zennit's `stabilize`); derivative
    /// -1 / (x + e s(x))^2.
    case stabilizedReciprocal(Float)
}

/// An affine map from output pixel (x, y) to the input point it samples,
/// (u, v) = (a x + b y + c, d x + e y + f), pixel centres at integer coordinates. Sampling is
/// bilinear; input pixels outside the image read as a fill value.
public struct AffineMap: Sendable, Equatable, CustomStringConvertible {
    /// The map's coefficients: u = a x + b y + c, v = d x + e y + f.
    public var a: Float, b: Float, c: Float, d: Float, e: Float, f: Float
    /// The map (u, v) = (a x + b y + c, d x + e y + f).
    public init(a: Float, b: Float, c: Float, d: Float, e: Float, f: Float) {
        self.a = a; self.b = b; self.c = c; self.d = d; self.e = e; self.f = f
    }
    /// Samples each output pixel at the same input pixel.
    public static let identity = AffineMap(a: 1, b: 0, c: 0, d: 0, e: 1, f: 0)

    /// `next` applied to the sample points of `self`: for image operations A then B (A runs
    /// first on the image), the sample map of the result is `B.then(A)`.
    public func then(_ next: AffineMap) -> AffineMap {
        AffineMap(a: next.a * a + next.b * d, b: next.a * b + next.b * e, c: next.a * c + next.b * f + next.c,
                        d: next.d * a + next.e * d, e: next.d * b + next.e * e, f: next.d * c + next.e * f + next.f)
    }

    /// a e - b d: the map's area scale; 0 for a map that cannot be inverted.
    public var determinant: Float { a * e - b * d }

    /// The twelve numbers the kernels read: a b c d e f, the inverse's linear part (ia ib id ie)
    /// and the half-extents (ex, ey) of the output region whose sample points lie within one
    /// pixel of an input pixel (for the gather form of the backward pass).
    package func packed() throws -> [Float] {
        let det = determinant
        guard det.isFinite, abs(det) > 1e-6 else { throw BackendError("affine sample", "transform \(self) is not invertible") }
        let (ia, ib, id, ie) = (e / det, -b / det, -d / det, a / det)
        return [a, b, c, d, e, f, ia, ib, id, ie, abs(ia) + abs(ib), abs(id) + abs(ie)]
    }

    /// "[a b c; d e f]".
    public var description: String { "[\(a) \(b) \(c); \(d) \(e) \(f)]" }
}

/// One Adam step (Kingma & Ba): m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
/// p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps), t counting from 1.
public struct AdamSettings: Sendable, Equatable {
    /// lr, b1, b2 and eps of the update above.
    public var learningRate: Float, beta1: Float, beta2: Float, epsilon: Float
    /// Settings; the defaults are Lucid's (learning rate 0.05) and Adam's paper.
    public init(learningRate: Float = 0.05, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8) {
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon
    }
    /// The bias corrections 1 - b1^t and 1 - b2^t.
    public func corrections(step t: Int) -> (Float, Float) {
        (1 - Float(pow(Double(beta1), Double(t))), 1 - Float(pow(Double(beta2), Double(t))))
    }
}
