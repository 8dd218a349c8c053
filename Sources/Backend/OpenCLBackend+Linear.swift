import Device

// linear on the device: tiled products over gemm.cl (linear.cl), at batch <= 4 on GPUs
// linear_gemv.cl, on CPU devices linear_rows.cl or packed panels (OpenCLBackend+ConvPacked.swift;
// the weight gradient always: the tiled product's local memory and barriers serialize there).
// Bias gradients are channel sums (reduce.cl).
extension OpenCLBackend {
    /// The tiled family's batch limit of linear_gemv.cl (GEMV_ROWS there): up to it, the forward
    /// pass reads W with one work-group of 256 per output instead of a tiled product (on devices
    /// whose work-groups may be that large).
    static let gemvRows = 4

    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) throws -> Tensor {
        let (n, inF, outF) = try ShapeRules.linear("linear", x: x.shape, weight: weight.shape)
        try ShapeRules.channelVector("linear", bias, channels: outF, what: "bias")
        let xb = try buffer(x, "linear"), wb = try buffer(weight, "linear")
        let bb = try bias.map { try buffer($0, "linear") } ?? wb
        let (y, yb) = try empty([n, outF], "linear")
        if family == .registerBlocked, n >= OpenCLBackend.packedLinearRows {
            try linearPacked(xb, weight: weight, bias: try bias.map { try buffer($0, "linear") }, y: yb, n: n, inF: inF, outF: outF)
            return y
        }
        if family == .registerBlocked {
            try kernel(["linear_rows"], "linear_rows_forward").launch(global: [outF, n], local: [1, 1],
                [.buffer(xb), .buffer(wb), .buffer(bb), .buffer(yb), .int(bias == nil ? 0 : 1), .int(outF), .int(n), .int(inF)])
            return y
        }
        if n <= OpenCLBackend.gemvRows, context.device.maxWorkGroupSize >= 256 {
            try kernel(["linear_gemv"], "linear_gemv_forward").launch(global: [256, outF], local: [256, 1],
                [.buffer(xb), .buffer(wb), .buffer(bb), .buffer(yb), .int(bias == nil ? 0 : 1), .int(outF), .int(n), .int(inF)])
            return y
        }
        try gemm(["linear"], "LINEAR_FORWARD", m: outF, n: n, k: inF, z: 1, tiling: n < 32 ? .narrow : .large,
                 [.buffer(xb), .buffer(wb), .buffer(bb), .buffer(yb), .int(bias == nil ? 0 : 1), .int(outF), .int(n), .int(inF)])
        return y
    }

    public func linearBackwardInput(_ gy: Tensor, weight: Tensor) throws -> Tensor {
        let (n, outF, inF) = try ShapeRules.linearBackwardInput("linear backward input", gradient: gy.shape, weight: weight.shape)
        let gb = try buffer(gy, "linear backward input"), wb = try buffer(weight, "linear backward input")
        let (gx, gxb) = try empty([n, inF], "linear backward input")
        if family == .registerBlocked, n >= OpenCLBackend.packedLinearRows {
            try linearBackwardInputPacked(gb, weight: wb, gx: gxb, n: n, inF: inF, outF: outF)
            return gx
        }
        if family == .registerBlocked {
            try kernel(["linear_rows"], "linear_rows_backward_input").launch(global: [(inF + 63) / 64, n], local: [1, 1],
                [.buffer(gb), .buffer(wb), .buffer(gxb), .int(outF), .int(n), .int(inF)])
            return gx
        }
        try gemm(["linear"], "LINEAR_BACKWARD_INPUT", m: inF, n: n, k: outF, z: 1, tiling: n < 32 ? .narrow : .large,
                 [.buffer(gb), .buffer(wb), .buffer(gxb), .int(inF), .int(n), .int(outF)])
        return gx
    }

    public func linearBackwardWeight(_ gy: Tensor, input: Tensor) throws -> Tensor {
        let (n, outF, inF) = try ShapeRules.linearBackwardWeight("linear backward weight", gradient: gy.shape, input: input.shape)
        let gb = try buffer(gy, "linear backward weight"), xb = try buffer(input, "linear backward weight")
        let (gw, gwb) = try empty([outF, inF], "linear backward weight")
        if family == .registerBlocked {
            try linearBackwardWeightPacked(gb, input: xb, gw: gwb, n: n, inF: inF, outF: outF)
            return gw
        }
        try gemm(["linear"], "LINEAR_BACKWARD_WEIGHT", m: outF, n: inF, k: n, z: 1, tiling: .large,
                 [.buffer(gb), .buffer(xb), .buffer(gwb), .int(outF), .int(inF), .int(n)])
        return gw
    }

    public func linearBackwardBias(_ gy: Tensor) throws -> Tensor {
        let (n, outF) = try ShapeRules.linearBackwardBias("linear backward bias", gradient: gy.shape)
        return try channelSum(gy, n: n, c: outF, hw: 1, "linear backward bias")
    }
}
