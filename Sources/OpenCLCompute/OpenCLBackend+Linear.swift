import BackendCore
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
        let xb = try buffer(x, "linear")
        let (y, yb) = try empty([n, outF], "linear")
        try kernels.linear(self, x: xb, weight: weight, bias: try bias.map { try buffer($0, "linear") }, y: yb, n: n, inF: inF, outF: outF)
        return y
    }

    /// The tiled family's linear layer: at batch <= gemvRows a work-group per output
    /// (linear_gemv.cl), else the tiled product.
    func tiledLinear(x xb: Buffer<Float>, weight wb: Buffer<Float>, bias: Buffer<Float>?, y yb: Buffer<Float>, n: Int, inF: Int, outF: Int) throws {
        let bb = bias ?? wb
        if n <= OpenCLBackend.gemvRows, context.device.maxWorkGroupSize >= 256 {
            try launch(.linear_gemv_forward(x: xb, w: wb, bias: bb, y: yb, hasBias: bias == nil ? 0 : 1, Out: outF, N: n, In: inF),
                       global: [256, outF], local: [256, 1])
            return
        }
        try gemm(.LINEAR_FORWARD(x: xb, w: wb, bias: bb, y: yb, hasBias: bias == nil ? 0 : 1, M: outF, N: n, K: inF),
                 m: outF, n: n, k: inF, z: 1, tiling: n < 32 ? .narrow : .large)
    }

    /// The register-blocked family's linear layer: packed panels from packedLinearRows rows on,
    /// a matrix-vector product per row below (linear_rows.cl).
    func rowsLinear(x xb: Buffer<Float>, weight: Tensor, bias: Buffer<Float>?, y yb: Buffer<Float>, n: Int, inF: Int, outF: Int) throws {
        if n >= OpenCLBackend.packedLinearRows {
            try linearPacked(xb, weight: weight, bias: bias, y: yb, n: n, inF: inF, outF: outF)
            return
        }
        let wb = try buffer(weight, "linear")
        try launch(.linear_rows_forward(x: xb, w: wb, bias: bias ?? wb, y: yb, hasBias: bias == nil ? 0 : 1, Out: outF, N: n, In: inF),
                   global: [outF, n], local: [1, 1])
    }

    public func linearBackwardInput(_ gy: Tensor, weight: Tensor) throws -> Tensor {
        let (n, outF, inF) = try ShapeRules.linearBackwardInput("linear backward input", gradient: gy.shape, weight: weight.shape)
        let gb = try buffer(gy, "linear backward input"), wb = try buffer(weight, "linear backward input")
        let (gx, gxb) = try empty([n, inF], "linear backward input")
        try kernels.linearBackwardInput(self, gy: gb, weight: wb, gx: gxb, n: n, inF: inF, outF: outF)
        return gx
    }

    /// The tiled family's dL/dx of a linear layer: the tiled product.
    func tiledLinearBackwardInput(gy gb: Buffer<Float>, weight wb: Buffer<Float>, gx gxb: Buffer<Float>, n: Int, inF: Int, outF: Int) throws {
        try gemm(.LINEAR_BACKWARD_INPUT(gy: gb, w: wb, gx: gxb, M: inF, N: n, K: outF),
                 m: inF, n: n, k: outF, z: 1, tiling: n < 32 ? .narrow : .large)
    }

    /// The register-blocked family's dL/dx of a linear layer: packed panels from
    /// packedLinearRows rows on, W's rows walked 64 columns at a time below (linear_rows.cl).
    func rowsLinearBackwardInput(gy gb: Buffer<Float>, weight wb: Buffer<Float>, gx gxb: Buffer<Float>, n: Int, inF: Int, outF: Int) throws {
        if n >= OpenCLBackend.packedLinearRows {
            try linearBackwardInputPacked(gb, weight: wb, gx: gxb, n: n, inF: inF, outF: outF)
            return
        }
        try launch(.linear_rows_backward_input(gy: gb, w: wb, gx: gxb, Out: outF, N: n, In: inF),
                   global: [(inF + 63) / 64, n], local: [1, 1])
    }

    public func linearBackwardWeight(_ gy: Tensor, input: Tensor) throws -> Tensor {
        let (n, outF, inF) = try ShapeRules.linearBackwardWeight("linear backward weight", gradient: gy.shape, input: input.shape)
        let gb = try buffer(gy, "linear backward weight"), xb = try buffer(input, "linear backward weight")
        let (gw, gwb) = try empty([outF, inF], "linear backward weight")
        try kernels.linearBackwardWeight(self, gy: gb, input: xb, gw: gwb, n: n, inF: inF, outF: outF)
        return gw
    }

    public func linearBackwardBias(_ gy: Tensor) throws -> Tensor {
        let (n, outF) = try ShapeRules.linearBackwardBias("linear backward bias", gradient: gy.shape)
        return try channelSum(gy, n: n, c: outF, hw: 1, "linear backward bias")
    }

    /// Rows of a batch from which a linear layer runs as a matrix product (x packed in MR-row
    /// panels, W's columns in NR-wide panels) instead of a matrix-vector product per row:
    /// reading W once per MR rows instead of once per row.
    static let packedLinearRows = 4

    /// y [N, Out] = x W^T + b for N >= packedLinearRows: A = x's rows packed per call, B = W^T
    /// as NR-wide panels [ceil(Out/NR)][In][NR] (packed once per weight tensor: W's rows are
    /// B's columns), the bias added per column.
    func linearPacked(_ xb: Buffer<Float>, weight: Tensor, bias bb: Buffer<Float>?, y yb: Buffer<Float>, n: Int, inF: Int, outF: Int) throws {
        let op = "linear"
        guard let storage = weight.storage as? OpenCLStorage else { throw BackendError(op, "weight \(weight.shape) is not on \(name)") }
        let wt = try storage.derived("linear columns \(packing.nr)") {
            let panels = try Buffer<Float>(context: context, count: (outF + packing.nr - 1) / packing.nr * packing.nr * inF)
            try packRows(storage.buffer, into: panels, rows: outF, cols: inF, mr: packing.nr)
            return panels
        }
        try withScratch(op) { scratch in
            let a = try scratch("rows", (n + packing.mr - 1) / packing.mr * packing.mr * inF)
            try packRows(xb, into: a, rows: n, cols: inF, mr: packing.mr)
            try packedGemm(a, .panels(wt),
                           into: PackedResult(yb, strideImage: 0, strideGroup: 0, ldc: outF),
                           ProductShape(m: n, n: outF, k: inF, z: 1, groups: 1), bias: bb, biasColumns: true)
        }
    }

    /// gx [N, In] = gy W for N >= packedLinearRows: A = gy's rows packed per call, B = W read in
    /// place as a row-major [Out][In] matrix.
    func linearBackwardInputPacked(_ gb: Buffer<Float>, weight wb: Buffer<Float>, gx gxb: Buffer<Float>, n: Int, inF: Int, outF: Int) throws {
        try withScratch("linear backward input") { scratch in
            let a = try scratch("rows", (n + packing.mr - 1) / packing.mr * packing.mr * outF)
            try packRows(gb, into: a, rows: n, cols: outF, mr: packing.mr)
            try packedGemm(a, .planes(wb, firstImage: 0, strideImage: 0, strideGroup: 0),
                           into: PackedResult(gxb, strideImage: 0, strideGroup: 0, ldc: inF),
                           ProductShape(m: n, n: inF, k: outF, z: 1, groups: 1))
        }
    }

    /// gw [Out, In] = gy^T x: A = gy's columns packed per call (gy^T's rows), B = x read in place
    /// as a row-major [N][In] matrix. (Also the batch sum of attribution maps: gy a column of
    /// ones, so one A row, the rest of its panel zeros.)
    func linearBackwardWeightPacked(_ gb: Buffer<Float>, input xb: Buffer<Float>, gw gwb: Buffer<Float>, n: Int, inF: Int, outF: Int) throws {
        try withScratch("linear backward weight") { scratch in
            let a = try scratch("columns", (outF + packing.mr - 1) / packing.mr * packing.mr * n)
            try packRows(gb, into: a, rows: outF, cols: n, mr: packing.mr, transposed: true)
            try packedGemm(a, .planes(xb, firstImage: 0, strideImage: 0, strideGroup: 0),
                           into: PackedResult(gwb, strideImage: 0, strideGroup: 0, ldc: inF),
                           ProductShape(m: outF, n: inF, k: n, z: 1, groups: 1))
        }
    }
}
