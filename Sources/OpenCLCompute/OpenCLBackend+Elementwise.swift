import BackendCore
import Device

// Activations, batchnorm, elementwise arithmetic, noise and pointwise maps on the device
// (activation.cl, batchnorm.cl, elementwise.cl, random.cl, pointwise.cl).
extension OpenCLBackend {
    public func activation(_ x: Tensor, _ kind: Activation) throws -> Tensor {
        let xb = try buffer(x, "activation")
        let (y, yb) = try empty(x.shape, "activation")
        try launch(.activation_forward(x: xb, y: yb, n: x.shape.count, kind: Int(kind.rawValue)), global: [quads(x.shape.count)])
        return y
    }

    public func activationBackward(_ gy: Tensor, input: Tensor, _ kind: Activation, rule: GradientRule) throws -> Tensor {
        try ShapeRules.same("activation backward", gy.shape, input.shape)
        let gb = try buffer(gy, "activation backward"), xb = try buffer(input, "activation backward")
        let (gx, gxb) = try empty(gy.shape, "activation backward")
        try launch(.activation_backward(gy: gb, x: xb, gx: gxb, n: gy.shape.count, kind: Int(kind.rawValue),
                                        rule: Int(rule.rawValue)),
                   global: [quads(gy.shape.count)])
        return gx
    }

    public func deepLiftRescale(_ gy: Tensor, input x: Tensor, output y: Tensor, kind: Activation) throws -> Tensor {
        let op = "deeplift rescale"
        let (half, both) = try ShapeRules.deepLiftPairs(op, gy: gy.shape, x: x.shape, y: y.shape)
        let (gx, gxb) = try empty(gy.shape, op)
        try launch(.deeplift_rescale(gy: try buffer(gy, op), x: try buffer(x, op), y: try buffer(y, op), gx: gxb, pairs: half,
                                     both: both ? 1 : 0, kind: Int(kind.rawValue)),
                   global: [quads(half)])
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
        try launch(.batchnorm2d_forward(x: xb, gamma: p[0], beta: p[1], mean: p[2], var: p[3], eps: bn.eps, y: yb, C: c, HW: h * w),
                   global: [quads(h * w), c, n])
        return y
    }

    public func batchNorm2dBackward(_ gy: Tensor, _ bn: BatchNormParams) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.rank4("batchnorm2d backward", gy.shape)
        let p = try bnBuffers("batchnorm2d backward", bn, channels: c)
        let gb = try buffer(gy, "batchnorm2d backward")
        let (gx, gxb) = try empty(gy.shape, "batchnorm2d backward")
        try launch(.batchnorm2d_backward(gy: gb, gamma: p[0], var: p[3], eps: bn.eps, gx: gxb, C: c, HW: h * w),
                   global: [quads(h * w), c, n])
        return gx
    }

    private func binary(_ name: String, _ a: Tensor, _ b: Tensor,
                        _ call: (Buffer<Float>, Buffer<Float>, Buffer<Float>, Int) throws -> KernelCall) throws -> Tensor {
        try ShapeRules.same(name, a.shape, b.shape)
        let ab = try buffer(a, name), bb = try buffer(b, name)
        let (y, yb) = try empty(a.shape, name)
        try launch(try call(ab, bb, yb, a.shape.count), global: [quads(a.shape.count)])
        return y
    }

    public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary("add", a, b) { try .add(a: $0, b: $1, y: $2, n: $3) } }
    public func mul(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary("mul", a, b) { try .mul(a: $0, b: $1, y: $2, n: $3) } }

    public func scale(_ a: Tensor, _ s: Float) throws -> Tensor {
        let ab = try buffer(a, "scale")
        let (y, yb) = try empty(a.shape, "scale")
        try launch(.scale(a: ab, s: s, y: yb, n: a.shape.count), global: [quads(a.shape.count)])
        return y
    }

    public func noisyCopies(_ x: Tensor, copies: Int, sigma: Float, seed: UInt64, offset: UInt64) throws -> Tensor {
        let shape = try ShapeRules.noisyCopies("noisy copies", x.shape, copies: copies)
        let xb = try buffer(x, "noisy copies")
        let (y, yb) = try empty(shape, "noisy copies")
        let n = x.shape.count
        try launch(.noisy_copies(x: xb, y: yb, n: n, sigma: sigma, key: seed &+ 0x5EED, offset: offset),
                   global: [n, copies], local: [Swift.min(n, 64), 1])
        return y
    }

    public func axpy(_ alpha: Float, _ x: Tensor, _ y: Tensor) throws -> Tensor {
        try ShapeRules.same("axpy", x.shape, y.shape)
        let xb = try buffer(x, "axpy"), yb = try buffer(y, "axpy")
        let (out, ob) = try empty(x.shape, "axpy")
        try launch(.axpy(alpha: alpha, x: xb, y: yb, out: ob, n: x.shape.count), global: [quads(x.shape.count)])
        return out
    }

    public func pointwise(_ x: Tensor, _ op: Pointwise) throws -> Tensor {
        let xb = try buffer(x, "pointwise")
        let (y, yb) = try empty(x.shape, "pointwise")
        try launch(.pointwise(x: xb, y: yb, n: x.shape.count, op: op.code, p: op.parameter),
                   files: ["elementwise", "pointwise"], global: [quads(x.shape.count)])
        return y
    }

    public func pointwiseBackward(_ gy: Tensor, input: Tensor, _ op: Pointwise) throws -> Tensor {
        try ShapeRules.same("pointwise backward", gy.shape, input.shape)
        let gb = try buffer(gy, "pointwise backward"), xb = try buffer(input, "pointwise backward")
        let (gx, gxb) = try empty(input.shape, "pointwise backward")
        try launch(.pointwise_backward(gy: gb, x: xb, gx: gxb, n: input.shape.count, op: op.code, p: op.parameter),
                   files: ["elementwise", "pointwise"], global: [quads(input.shape.count)])
        return gx
    }
}
