import BackendCore
import Device

// Max, average and adaptive average pooling on the device (pool.cl).
extension OpenCLBackend {
    public func maxPool2d(_ x: Tensor, _ p: Pool2DParams) throws -> Tensor {
        let out = try p.outputShape(input: x.shape, op: "maxpool2d")
        let xb = try buffer(x, "maxpool2d")
        let (y, yb) = try empty(out, "maxpool2d")
        if kernels.poolsByRows(p) {
            try launch(.maxpool2d_rows(x: xb, out: yb, H: x.shape[2], W: x.shape[3], OH: out[2], OW: out[3], KH: p.kernel.h,
                                       KW: p.kernel.w, SH: p.stride.h, SW: p.stride.w, PH: p.padding.h, PW: p.padding.w),
                       global: [(out[3] + 31) / 32, out[2], out[0] * out[1]], local: [1, 1, 1])
            return y
        }
        try launch(.maxpool2d_forward(x: xb, y: yb, H: x.shape[2], W: x.shape[3], OH: out[2], OW: out[3], KH: p.kernel.h,
                                      KW: p.kernel.w, SH: p.stride.h, SW: p.stride.w, PH: p.padding.h, PW: p.padding.w),
                   global: [out[3], out[2], out[0] * out[1]], local: planeLocal(width: out[3], height: out[2]))
        return y
    }


    public func maxPool2dBackward(_ gy: Tensor, input: Tensor, _ p: Pool2DParams) throws -> Tensor {
        let out = try p.outputShape(input: input.shape, op: "maxpool2d backward")
        try ShapeRules.same("maxpool2d backward", gy.shape, out)
        let gb = try buffer(gy, "maxpool2d backward"), xb = try buffer(input, "maxpool2d backward")
        let (gx, gxb) = try empty(input.shape, "maxpool2d backward")
        try withScratch("maxpool2d backward") { scratch in
            let argmax = try scratch("argmax", out.count)
            if kernels.poolsByRows(p) {
                try launch(.maxpool2d_rows(x: xb, out: argmax, H: input.shape[2], W: input.shape[3], OH: out[2], OW: out[3],
                                           KH: p.kernel.h, KW: p.kernel.w, SH: p.stride.h, SW: p.stride.w, PH: p.padding.h,
                                           PW: p.padding.w),
                           flags: ["POOL_INDEX"], global: [(out[3] + 31) / 32, out[2], out[0] * out[1]], local: [1, 1, 1])
                try launch(.maxpool2d_backward_rows(gy: gb, argmax: argmax, gx: gxb, H: input.shape[2], W: input.shape[3],
                                                    OH: out[2], OW: out[3], KH: p.kernel.h, KW: p.kernel.w, SH: p.stride.h,
                                                    SW: p.stride.w, PH: p.padding.h, PW: p.padding.w),
                           global: [(input.shape[3] + 63) / 64, input.shape[2], input.shape[0] * input.shape[1]], local: [1, 1, 1])
                return
            }
            try launch(.maxpool2d_argmax(x: xb, argmax: argmax, H: input.shape[2], W: input.shape[3], OH: out[2], OW: out[3],
                                         KH: p.kernel.h, KW: p.kernel.w, SH: p.stride.h, SW: p.stride.w, PH: p.padding.h,
                                         PW: p.padding.w),
                       global: [out[3], out[2], out[0] * out[1]], local: planeLocal(width: out[3], height: out[2]))
            try launch(.maxpool2d_backward(gy: gb, argmax: argmax, gx: gxb, H: input.shape[2], W: input.shape[3], OH: out[2],
                                           OW: out[3], KH: p.kernel.h, KW: p.kernel.w, SH: p.stride.h, SW: p.stride.w,
                                           PH: p.padding.h, PW: p.padding.w),
                       global: [input.shape[3], input.shape[2], input.shape[0] * input.shape[1]],
                       local: planeLocal(width: input.shape[3], height: input.shape[2]))
        }
        return gx
    }

    public func avgPool2d(_ x: Tensor, _ p: Pool2DParams) throws -> Tensor {
        let out = try p.outputShape(input: x.shape, op: "avgpool2d")
        let xb = try buffer(x, "avgpool2d")
        let (y, yb) = try empty(out, "avgpool2d")
        try launch(.avgpool2d_forward(x: xb, y: yb, H: x.shape[2], W: x.shape[3], OH: out[2], OW: out[3], KH: p.kernel.h,
                                      KW: p.kernel.w, SH: p.stride.h, SW: p.stride.w, PH: p.padding.h, PW: p.padding.w,
                                      countIncludePad: p.countIncludePad ? 1 : 0),
                   global: [out[3], out[2], out[0] * out[1]], local: planeLocal(width: out[3], height: out[2]))
        return y
    }

    public func avgPool2dBackward(_ gy: Tensor, inputShape: Shape, _ p: Pool2DParams) throws -> Tensor {
        let out = try p.outputShape(input: inputShape, op: "avgpool2d backward")
        try ShapeRules.same("avgpool2d backward", gy.shape, out)
        let gb = try buffer(gy, "avgpool2d backward")
        let (gx, gxb) = try empty(inputShape, "avgpool2d backward")
        try launch(.avgpool2d_backward(gy: gb, gx: gxb, H: inputShape[2], W: inputShape[3], OH: out[2], OW: out[3],
                                       KH: p.kernel.h, KW: p.kernel.w, SH: p.stride.h, SW: p.stride.w, PH: p.padding.h,
                                       PW: p.padding.w, countIncludePad: p.countIncludePad ? 1 : 0),
                   global: [inputShape[3], inputShape[2], inputShape[0] * inputShape[1]],
                   local: planeLocal(width: inputShape[3], height: inputShape[2]))
        return gx
    }

    public func adaptiveAvgPool2d(_ x: Tensor, outputSize: (h: Int, w: Int)) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.rank4("adaptive avgpool2d", x.shape)
        guard outputSize.h >= 1, outputSize.w >= 1 else {
            throw BackendError("adaptive avgpool2d", "output size \(outputSize.h)x\(outputSize.w) must be positive")
        }
        let xb = try buffer(x, "adaptive avgpool2d")
        let (y, yb) = try empty([n, c, outputSize.h, outputSize.w], "adaptive avgpool2d")
        // Global pooling (a classifier's): the mean of each plane as a row.
        if outputSize.h == 1, outputSize.w == 1 {
            try kernels.reduceRows(self, x: xb, y: yb, rows: n * c, cols: h * w, op: .mean)
            return y
        }
        try launch(.adaptive_avgpool2d_forward(x: xb, y: yb, H: h, W: w, OH: outputSize.h, OW: outputSize.w),
                   global: [outputSize.w, outputSize.h, n * c], local: planeLocal(width: outputSize.w, height: outputSize.h))
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
        if kernels.adaptivePoolBackwardByPlanes {
            try launch(.adaptive_avgpool2d_backward_planes(gy: gb, gx: gxb, H: h, W: w, OH: oh, OW: ow),
                       global: [n * c], local: [1])
            return gx
        }
        try launch(.adaptive_avgpool2d_backward(gy: gb, gx: gxb, H: h, W: w, OH: oh, OW: ow),
                   global: [w, h, n * c], local: planeLocal(width: w, height: h))
        return gx
    }
}
