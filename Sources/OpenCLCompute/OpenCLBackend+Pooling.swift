import BackendCore
import Device

// Max, average and adaptive average pooling on the device (pool.cl).
extension OpenCLBackend {
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
}
