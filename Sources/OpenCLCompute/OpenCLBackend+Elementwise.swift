import BackendCore
import Device

// Activations, batchnorm, elementwise arithmetic, noise and pointwise maps on the device
// (activation.cl, batchnorm.cl, elementwise.cl, random.cl, pointwise.cl).
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
}
