import BackendCore
import Device

// Resizing, masks, channel maxima and affine sampling on the device (resample.cl).
extension OpenCLBackend {
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
}
