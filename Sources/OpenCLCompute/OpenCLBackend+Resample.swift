import BackendCore
import Device

// Resizing, masks, channel maxima and affine sampling on the device (resample.cl).
extension OpenCLBackend {
    public func resize(_ x: Tensor, height oh: Int, width ow: Int, mode: ResizeMode) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.rank4("resize", x.shape)
        guard oh >= 1, ow >= 1 else { throw BackendError("resize", "size \(oh)x\(ow) must be positive") }
        let xb = try buffer(x, "resize")
        let (y, yb) = try empty([n, c, oh, ow], "resize")
        try launch(.resize(x: xb, y: yb, H: h, W: w, OH: oh, OW: ow, mode: Int(mode.rawValue)),
                   global: [ow, oh, n * c], local: planeLocal(width: ow, height: oh))
        return y
    }

    public func resizeBackward(_ gy: Tensor, inputShape: Shape, mode: ResizeMode) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.rank4("resize backward", inputShape)
        let (gn, gc, oh, ow) = try ShapeRules.rank4("resize backward", gy.shape)
        guard gn == n, gc == c, h >= 1, w >= 1 else { throw BackendError("resize backward", "gradient \(gy.shape) does not fit input \(inputShape)") }
        let gb = try buffer(gy, "resize backward")
        let (gx, gxb) = try empty(inputShape, "resize backward")
        try launch(.resize_backward(gy: gb, gx: gxb, H: h, W: w, OH: oh, OW: ow, mode: Int(mode.rawValue)),
                   global: [w, h, n * c], local: planeLocal(width: w, height: h))
        return gx
    }

    public func broadcastMul(_ x: Tensor, masks: Tensor) throws -> Tensor {
        let (m, c, hw, perMask) = try ShapeRules.broadcastMul("broadcast mul", x.shape, masks.shape)
        let xb = try buffer(x, "broadcast mul"), mb = try buffer(masks, "broadcast mul")
        let (y, yb) = try empty([m, c, x.shape[2], x.shape[3]], "broadcast mul")
        try launch(.broadcast_mul(x: xb, masks: mb, y: yb, C: c, HW: hw, perMask: perMask ? 1 : 0), global: [quads(hw), c, m])
        return y
    }

    public func channelMax(_ x: Tensor) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.rank4("channel max", x.shape)
        let xb = try buffer(x, "channel max")
        let (y, yb) = try empty([n, 1, h, w], "channel max")
        try launch(.channel_max(x: xb, y: yb, C: c, HW: h * w), global: [h * w, n])
        return y
    }

    func transformBuffer(_ transforms: [AffineMap], _ op: String) throws -> Buffer<Float> {
        let packed = try transforms.flatMap { try $0.packed() }
        do { return try Buffer<Float>(context: context, values: packed) } catch { throw BackendError(op, "cannot upload transforms: \(error)") }
    }

    public func affineSample(_ x: Tensor, _ transforms: [AffineMap], height oh: Int, width ow: Int, fill: Float) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.affineSample("affine sample", x.shape, transforms, height: oh, width: ow)
        let xb = try buffer(x, "affine sample"), tb = try transformBuffer(transforms, "affine sample")
        let (y, yb) = try empty([n, c, oh, ow], "affine sample")
        try launch(.affine_sample(x: xb, t: tb, y: yb, C: c, H: h, W: w, OH: oh, OW: ow, fill: fill),
                   global: [ow, oh, n], local: planeLocal(width: ow, height: oh))
        return y
    }

    public func affineSampleBackward(_ gy: Tensor, _ transforms: [AffineMap], inputShape: Shape) throws -> Tensor {
        let (n, c, oh, ow) = try ShapeRules.rank4("affine sample backward", gy.shape)
        let (_, _, h, w) = try ShapeRules.affineSample("affine sample backward", inputShape, transforms, height: oh, width: ow)
        guard inputShape[0] == n, inputShape[1] == c else { throw BackendError("affine sample backward", "gradient \(gy.shape) does not fit input \(inputShape)") }
        let gb = try buffer(gy, "affine sample backward"), tb = try transformBuffer(transforms, "affine sample backward")
        let (gx, gxb) = try empty(inputShape, "affine sample backward")
        try launch(.affine_sample_backward(gy: gb, t: tb, gx: gxb, C: c, H: h, W: w, OH: oh, OW: ow),
                   global: [w, h, n], local: planeLocal(width: w, height: h))
        return gx
    }
}
