import BackendCore
import Device

// conv2d and linear on the device: implicit-im2col matrix multiplies (conv2d.cl, linear.cl
// over gemm.cl; at batch <= 4 on GPUs linear_gemv.cl). Bias gradients are channel sums (reduce.cl).
extension OpenCLBackend {
    /// The window geometry as build-time constants: one program per geometry (3x3 stride 1,
    /// 1x1, ...), shared by every layer size with that geometry.
    func geometry(_ w: Shape, _ p: Conv2DParams) -> [String: Int] {
        ["CONV_KH": w[2], "CONV_KW": w[3], "CONV_SH": p.stride.h, "CONV_SW": p.stride.w, "CONV_PH": p.padding.h,
         "CONV_PW": p.padding.w, "CONV_DH": p.dilation.h, "CONV_DW": p.dilation.w]
    }

    /// One filter per channel (groups == Cin == Cout): the direct kernels of conv2d_depthwise.cl.
    /// The backward-weight kernel reduces KH*KW values per work-item in local memory, so very
    /// large windows take the general path.
    func isDepthwise(_ w: Shape, _ p: Conv2DParams) -> Bool {
        w[1] == 1 && w[0] == p.groups && p.groups > 1 && w[2] * w[3] <= 64
    }

    /// About how many work-items depthwise_rows runs (rows per work-item grow to keep it so).
    /// MobileNetV2's depthwise_rows layers on PoCL here, device ms at batch 1 / 8: a row each
    /// 1.9 / 10.5; 128 items 1.1 / 8.0; 256 1.3 / 7.9; 512 1.2 at batch 1; 2048 1.6 / 8.3.
    static let depthwiseWorkItems = 256

    /// About how many work-items depthwise_rows runs where each takes whole planes (maps of at
    /// most depthwiseWorkItems / planes rows): planes per work-item grow to keep it so.
    /// MobileNetV2's layers on PoCL here, device ms at batch 1, a plane each -> about 48 and 128
    /// work-items (best of six alternated runs of `loupe bench --shapes mobilenet_v2`):
    /// 384x14x14 0.064 -> 0.044 / 0.042; 960x7x7 0.073 -> 0.055 / 0.055; 576x14x14 0.065 ->
    /// 0.072 / 0.067.
    static let depthwisePlaneItems = 64

    /// The most floats depthwise_rows' private ring of padded input rows may take (a work-item
    /// holds it on its stack): 32 KiB. Wider rows, taller windows and strides above 2 take the
    /// general kernels.
    static let depthwiseRingFloats = 8192

    /// The largest stride whose depthwise backward to the input goes as a stride-1 convolution of
    /// the upsampled gy (depthwise_rows' DW_UP): at stride S, (S^2 - 1) / S^2 of its taps read
    /// inserted zeros, and still vector loads beat depthwise_rows_backward_input's lane-by-lane
    /// taps. MobileNetV2's stride-2 layers on PoCL here, device ms at batch 1 / 8, lane by lane
    /// -> upsampled (best of three): 96x112x112 0.42 / 3.5 -> 0.21 / 1.8; 144x56x56 0.20 / 1.5
    /// -> 0.09 / 0.65; 192x28x28 0.11 / 0.88 -> 0.07 / 0.42; 576x14x14 0.14 / 1.1 -> 0.08 / 0.58.
    static let depthwiseUpsampleLimit = 2

    /// depthwise_rows' DW_ROW for an input row of `width` and an output row of `outWidth`: the
    /// padded row and the last vector's reach (conv2d_depthwise.cl), rounded up to a power of two
    /// of at least 256, so that one program serves the usual widths (a ring row's zeroing and
    /// copies go by the real width); nil where the kernel does not apply.
    func depthwiseRowFloats(_ w: Shape, _ p: Conv2DParams, width: Int, outWidth: Int) -> Int? {
        let limit = OpenCLBackend.depthwiseRingFloats
        guard p.stride.w <= 2, outWidth <= limit, width <= limit, p.padding.w <= limit, w[3] <= limit, p.dilation.w <= limit,
              p.stride.h <= limit, w[2] <= limit, p.dilation.h <= limit else { return nil }
        // DW_RING rows of DWR = 2 output rows.
        let ringRows = p.stride.h + (w[2] - 1) * p.dilation.h + 1
        let need = Swift.max((outWidth + 7) / 8 * 8 * p.stride.w + (w[3] - 1) * p.dilation.w, p.padding.w + width)
        var floats = 256
        while floats < need { floats *= 2 }
        return ringRows * floats <= limit ? floats : nil
    }

    /// depthwise_rows (conv2d_depthwise.cl): a work-item per few output rows, eight outputs a
    /// vector, its input rows copied zero-padded into a private ring. Against reading in place
    /// with lane-by-lane border taps (best of three x 300 runs on PoCL here, device ms):
    /// MobileNetV2's 144x56x56 0.160 -> 0.091, 32x112x112 0.119 -> 0.076, 192x28x28 0.109 ->
    /// 0.060; stride 2: 144x56x56 0.107 -> 0.073, 192x28x28 0.058 -> 0.038, 96x112x112 0.126 ->
    /// 0.140 (memory-bound either way). On 14x14 and 7x7 maps, its part vectors stored whole, it
    /// also beats the flattened-plane kernel those maps had (576x14x14 0.089 -> 0.060, 960x7x7
    /// 0.041-0.066 -> 0.045-0.054). With `storeMask`, the output is the gradient of that
    /// activation's output and goes through its backward as it is stored (STORE_MASK). With
    /// `upsample` S, x is gy of a stride-S convolution read with S - 1 zeros between its rows and
    /// columns, and `h` x `width` are that upsampled map's sizes (DW_UP). False, with nothing
    /// launched, where the ring does not apply (`depthwiseRowFloats`).
    private func depthwiseRows(_ xb: Buffer<Float>, _ wb: Buffer<Float>, bias: Buffer<Float>?, _ yb: Buffer<Float>, flip: Bool,
                               _ w: Shape, _ p: Conv2DParams, c: Int, h: Int, w width: Int, planes: Int, out: Shape,
                               activation: Activation? = nil, storeMask: GradientMask? = nil, upsample: Int = 1) throws -> Bool {
        let (files, defines, flags) = storeMaskProgram(["conv_geometry", "conv2d_depthwise"], geometry(w, p),
                                                           activation.map { [$0.fusedFlag] } ?? [], storeMask)
        let mask = try storeMask.map { try buffer($0.output, "depthwise") } ?? yb
        guard let rowFloats = depthwiseRowFloats(w, p, width: width, outWidth: out[3]) else { return false }
        // Rows per work-item: enough that there are about depthwiseWorkItems of them (a work-group
        // per row of a 112-wide map cost PoCL more than the row's 126 vector FMAs).
        let rows = Swift.max(1, Swift.min(out[2], out[2] * planes / OpenCLBackend.depthwiseWorkItems))
        // Whole planes per work-item on small maps, several of them (a work-group per 7x7 plane
        // cost PoCL more than the plane's 63 vector FMAs).
        let perItem = rows < out[2] ? 1 : Swift.max(1, planes / OpenCLBackend.depthwisePlaneItems)
        try launch(.depthwise_rows(x: xb, w: wb, bias: bias ?? wb, y: yb, hasBias: bias == nil ? 0 : 1, flip: flip ? 1 : 0, C: c,
                                   H: h, W: width, OH: out[2], OW: out[3], storeMask: mask, rowsPerItem: rows,
                                   planesPerItem: perItem, planes: planes),
                   files: files, defines: defines.merging(["DW_ROW": rowFloats, "DW_UP": upsample]) { a, _ in a }, flags: flags,
                   global: [(out[2] + rows - 1) / rows, (planes + perItem - 1) / perItem], local: [1, 1])
        return true
    }

    /// dL/dx of a depthwise convolution on the register-blocked family: the depthwise convolution
    /// of gy (at stride S > 1 upsampled, S - 1 zeros between its rows and columns) with the
    /// reversed filter and padding D*(K-1) - P (depthwiseRows), else
    /// depthwise_rows_backward_input; through `storeMask` as it is stored.
    func depthwiseRowsBackwardInput(_ gb: Buffer<Float>, _ wb: Buffer<Float>, _ gxb: Buffer<Float>, weight: Shape,
                                            _ p: Conv2DParams, inputShape: Shape, out: Shape, storeMask: GradientMask? = nil) throws {
        let (n, c, h, w) = inputShape.nchw!
        let tp = Conv2DParams(stride: (1, 1), padding: (p.dilation.h * (weight[2] - 1) - p.padding.h, p.dilation.w * (weight[3] - 1) - p.padding.w),
                              dilation: p.dilation, groups: p.groups)
        let s = p.stride.h
        if p.stride.w == s, s <= OpenCLBackend.depthwiseUpsampleLimit, tp.padding.h >= 0, tp.padding.w >= 0,
           try depthwiseRows(gb, wb, bias: nil, gxb, flip: true, weight, tp, c: c, h: (out[2] - 1) * s + 1, w: (out[3] - 1) * s + 1,
                             planes: n * c, out: inputShape, storeMask: storeMask, upsample: s) {
            return
        }
        let (files, defines, flags) = storeMaskProgram(["conv_geometry", "conv2d_depthwise"], geometry(weight, p), [], storeMask)
        try launch(.depthwise_rows_backward_input(gy: gb, w: wb, gx: gxb, C: c, H: h, W: w, OH: out[2], OW: out[3],
                                                  storeMask: try storeMask.map { try buffer($0.output, "depthwise backward input") } ?? gxb),
                   files: files, defines: defines, flags: flags, global: [h, n * c], local: [1, 1])
    }

    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParams) throws -> Tensor {
        try conv2d(x, weight: weight, bias: bias, p, activation: nil)
    }

    /// Both families apply the activation as they store the convolution's result (one pass over
    /// the output, one launch fewer).
    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParams, activation: Activation?) throws -> Tensor {
        try conv2d(x, weight: weight, bias: bias, p, activation: activation, residual: nil, forwardOnly: false)
    }

    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParams, activation: Activation?, residual: Tensor?,
                       forwardOnly: Bool) throws -> Tensor {
        let out = try p.outputShape(input: x.shape, weight: weight.shape)
        try ShapeRules.channelVector("conv2d", bias, channels: out[1], what: "bias")
        if let residual { try ShapeRules.same("conv2d residual", residual.shape, out) }
        return try kernels.conv2d(self, x, weight: weight, bias: bias, p, out: out, activation: activation, residual: residual,
                                  forwardOnly: forwardOnly)
    }

    /// activation(conv(x) + residual) as three ops, for kernels without a residual store: `conv`
    /// runs the plain convolution.
    func convolutionThenResidual(activation: Activation?, residual: Tensor, _ conv: () throws -> Tensor) throws -> Tensor {
        let sum = try add(try conv(), residual)
        return try activation.map { try self.activation(sum, $0) } ?? sum
    }

    /// A depthwise convolution by rows (the register-blocked family's `depthwise_rows`;
    /// `depthwise_forward` where it does not apply).
    func depthwiseRowsConv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParams, out: Shape,
                             activation: Activation?) throws -> Tensor {
        let (n, c, h, w) = x.shape.nchw!
        let (y, yb) = try empty(out, "conv2d")
        let xb = try buffer(x, "conv2d"), wb = try buffer(weight, "conv2d"), bb = try bias.map { try buffer($0, "conv2d") }
        if try depthwiseRows(xb, wb, bias: bb, yb, flip: false, weight.shape, p, c: c, h: h, w: w, planes: n * c, out: out,
                             activation: activation) {
            return y
        }
        // Rows too wide for the ring, or a stride above 2: the general kernel.
        try depthwiseForward(xb, wb, bias: bb, yb, weight: weight.shape, p, inputShape: x.shape, out: out, activation: activation)
        return y
    }

    /// Expanded channels per work-item of `expand_depthwise`.
    static let expandDepthwiseChannels = 6

    /// The narrowest input map `expand_depthwise` takes. MobileNetV2 on PoCL here, batch 1,
    /// device ms of expand + depthwise -> fused (`loupe bench --launches`): 112-wide 0.563 ->
    /// 0.527, 56-wide 0.287 -> 0.268 and 0.256 -> 0.216, 28-wide 0.154 -> 0.123-0.151 (within
    /// noise), 14-wide 0.12 -> 0.15 and 0.2 -> 0.29, 7-wide 0.19 -> 0.225: on narrow rows its
    /// expand, eight pixels of one row a vector, loses to the product over whole planes.
    public static let expandDepthwiseMinimumWidth = 56

    /// activation(depthwise(activation(expand(x)))) in one launch on the register-blocked family
    /// (`expand_depthwise`, conv2d_depthwise.cl): the expanded map is made a few rows at a time
    /// into each work-item's private ring and never stored. Nil where it does not apply: the
    /// tiled family, a depthwise stride above 2 across, windows over 64 taps, or a ring over
    /// `depthwiseRingFloats`.
    public func expandDepthwise(_ x: Tensor, expandWeight: Tensor, expandBias: Tensor, depthwiseWeight: Tensor,
                                depthwiseBias: Tensor, _ p: Conv2DParams, activation: Activation) throws -> Tensor? {
        let ew = expandWeight.shape, dw = depthwiseWeight.shape
        guard family != .tiled, let (n, k, h, w) = x.shape.nchw, ew.rank == 4, dw.rank == 4, ew[1] == k, ew[2] == 1, ew[3] == 1,
              dw[0] == ew[0], isDepthwise(dw, p), p.stride.w <= 2, expandBias.shape == [ew[0]], depthwiseBias.shape == [ew[0]]
        else { return nil }
        guard w >= OpenCLBackend.expandDepthwiseMinimumWidth else { return nil }
        let e = ew[0], edc = OpenCLBackend.expandDepthwiseChannels
        let out = try p.outputShape(input: [n, e, h, w], weight: dw, op: "expand depthwise")
        // The ring's rows: the left padding, the row stored by vectors of 8, every window's reach.
        let limit = OpenCLBackend.depthwiseRingFloats
        guard p.padding.w <= limit, w <= limit, out[3] <= limit, dw[3] <= limit, p.dilation.w <= limit, dw[2] <= limit,
              p.dilation.h <= limit, p.stride.h <= limit else { return nil }
        let reach = Swift.max(p.padding.w + (w + 7) / 8 * 8,
                              ((out[3] + 7) / 8 * 8 - 8) * p.stride.w + (dw[3] - 1) * p.dilation.w + 8 * p.stride.w)
        let rowFloats = (reach + 7) / 8 * 8, ringRows = p.stride.h + (dw[2] - 1) * p.dilation.h + 1
        guard edc * ringRows * rowFloats <= limit else { return nil }
        let (y, yb) = try empty(out, "expand depthwise")
        try launch(.expand_depthwise(x: try buffer(x, "expand depthwise"), we: try buffer(expandWeight, "expand depthwise"),
                                     be: try buffer(expandBias, "expand depthwise"), wd: try buffer(depthwiseWeight, "expand depthwise"),
                                     bd: try buffer(depthwiseBias, "expand depthwise"), y: yb, Nb: n, K: k, E: e, H: h, W: w,
                                     OH: out[2], OW: out[3]),
                   files: ["conv_geometry", "conv2d_depthwise"],
                   defines: geometry(dw, p).merging(["DW_ROW": rowFloats, "EDC": edc]) { a, _ in a }, flags: [activation.fusedFlag],
                   global: [(e + edc - 1) / edc, n], local: [1, 1])
        return y
    }

    /// A whole inverted residual on narrow maps (below `expandDepthwiseMinimumWidth`) of the
    /// register-blocked family, in two launches whose two expanded maps stay channel-blocked
    /// (NCHWc, blocks of VW channels): the expand product stores each pixel's channels as one
    /// vector (gemm_packed's C_BLOCKED), and each of its work-items (a block of channels over
    /// every pixel of an image) then runs the depthwise layer over them while they are in cache
    /// (DEPTHWISE_AFTER, depthwise_blocked.cl: a vector load and an FMA per tap); the projection
    /// reads its output as B (B_BLOCKED), adding x where `residual` as it stores y in NCHW.
    /// MobileNetV2 on PoCL here, device ms: with the depthwise layer a launch of its own, the
    /// batch-8 pass 37.0 -> 31.1 (expand products 0.50 -> 0.37 at 28x28, 0.79 -> 0.57 at 7x7;
    /// depthwise 0.43 -> 0.25 and 0.35 -> 0.09); run by the expand product, the 13 blocks'
    /// expand and depthwise time with the idle time between launches 1.81 -> 1.66 at batch 1.
    /// On 56- and 112-wide maps it lost to `expand_depthwise` and the plain projection (batch 8,
    /// 3.4 -> 5.5 and 4.5 -> 6.7 ms: a 24-channel projection stored lane by lane), hence the
    /// width limit. Nil where it does not apply: the tiled family, wider maps, E not a multiple
    /// of VW, pixel counts with no transposed column block (`columnBlock`).
    public func invertedResidual(_ x: Tensor, expandWeight: Tensor, expandBias: Tensor, depthwiseWeight: Tensor,
                                 depthwiseBias: Tensor, _ p: Conv2DParams, activation: Activation, projectWeight: Tensor,
                                 projectBias: Tensor, residual: Bool) throws -> Tensor? {
        let ew = expandWeight.shape, dw = depthwiseWeight.shape, pw = projectWeight.shape, vw = packing.vw
        guard family != .tiled, let (n, k, h, w) = x.shape.nchw, w < OpenCLBackend.expandDepthwiseMinimumWidth,
              ew.rank == 4, dw.rank == 4, pw.rank == 4, ew[1] == k, ew[2] == 1, ew[3] == 1, ew[0] % vw == 0, dw[0] == ew[0],
              isDepthwise(dw, p), pw[1] == ew[0], pw[2] == 1, pw[3] == 1, expandBias.shape == [ew[0]],
              depthwiseBias.shape == [ew[0]], projectBias.shape == [pw[0]]
        else { return nil }
        let op = "inverted residual", e = ew[0], cout = pw[0]
        let mid = try p.outputShape(input: [n, e, h, w], weight: dw, op: op)
        if residual {
            guard mid[2] == h, mid[3] == w, cout == k else {
                throw BackendError(op, "a residual needs the output's shape \([n, cout, mid[2], mid[3]]) to be the input's \(x.shape)")
            }
        }
        let (hw, ohw) = (h * w, mid[2] * mid[3])
        guard let tpIn = columnBlock(hw), let tpOut = columnBlock(ohw) else { return nil }
        let xb = try buffer(x, op)
        let expandPanels = try packedPanels(expandWeight, layout: "forward", m: e, k: k, groups: 1, sg: e * k, sm: k, sk: 1,
                                            mr: packing.nr, op)
        let projectPanels = try packedPanels(projectWeight, layout: "forward", m: cout, k: e, groups: 1, sg: cout * e, sm: e, sk: 1,
                                             mr: packing.nr, op)
        let (y, yb) = try empty([n, cout, mid[2], mid[3]], op)
        try withScratch(op) { scratch in
            let expanded = try scratch("blocked expanded", n * e * hw), filtered = try scratch("blocked depthwise", n * e * ohw)
            let depthwise = BlockedDepthwise(weight: try buffer(depthwiseWeight, op), bias: try buffer(depthwiseBias, op),
                                             output: filtered, h: h, w: w, oh: mid[2], ow: mid[3], geometry: geometry(dw, p))
            try packedGemm(expandPanels, .planes(xb, firstImage: 0, strideImage: k * hw, strideGroup: k * hw),
                           into: PackedResult(expanded, strideImage: e * hw, strideGroup: e * hw, ldc: hw),
                           ProductShape(m: e, n: hw, k: k, z: n, groups: 1), bias: try buffer(expandBias, op), activation: activation,
                           transposedColumns: tpIn, blockedOutput: true, depthwise: depthwise)
            try packedGemm(projectPanels, .planes(filtered, firstImage: 0, strideImage: e * ohw, strideGroup: e * ohw),
                           into: PackedResult(yb, strideImage: cout * ohw, strideGroup: cout * ohw, ldc: ohw),
                           ProductShape(m: cout, n: ohw, k: e, z: n, groups: 1), bias: try buffer(projectBias, op),
                           residual: residual ? xb : nil, transposedColumns: tpOut, blockedInput: true)
        }
        return y
    }

    /// The general depthwise kernel (`depthwise_forward`), one output a work-item: the tiled
    /// family's, and the register-blocked family's where its rows do not apply.
    func depthwiseForward(_ xb: Buffer<Float>, _ wb: Buffer<Float>, bias bb: Buffer<Float>?, _ yb: Buffer<Float>, weight: Shape,
                          _ p: Conv2DParams, inputShape: Shape, out: Shape, activation: Activation?) throws {
        let (n, c, h, w) = inputShape.nchw!
        try launch(.depthwise_forward(x: xb, w: wb, bias: bb ?? wb, y: yb, hasBias: bb == nil ? 0 : 1, C: c, H: h, W: w,
                                      OH: out[2], OW: out[3]),
                   files: ["conv_geometry", "conv2d_depthwise"], defines: geometry(weight, p),
                   flags: activation.map { [$0.fusedFlag] } ?? [], global: [out[3], out[2], n * c],
                   local: planeLocal(width: out[3], height: out[2]))
    }

    /// The tiled family's convolution: a direct depthwise kernel, else the implicit-im2col GEMM.
    func tiledConv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParams, out: Shape,
                             activation: Activation?) throws -> Tensor {
        let flags = activation.map { [$0.fusedFlag] } ?? []
        let xb = try buffer(x, "conv2d"), wb = try buffer(weight, "conv2d"), biasBuffer = try bias.map { try buffer($0, "conv2d") }
        let bb = biasBuffer ?? wb
        let (y, yb) = try empty(out, "conv2d")
        if isDepthwise(weight.shape, p) {
            try depthwiseForward(xb, wb, bias: biasBuffer, yb, weight: weight.shape, p, inputShape: x.shape, out: out, activation: activation)
            return y
        }
        let (cout, cig, kh, kw) = weight.shape.nchw!
        let m = cout / p.groups, n = out[2] * out[3], k = cig * kh * kw
        try gemm(.CONV_FORWARD(x: xb, w: wb, bias: bb, y: yb, hasBias: bias == nil ? 0 : 1, Cin: x.shape[1], H: x.shape[2],
                               W: x.shape[3], Cout: weight.shape[0], OH: out[2], OW: out[3], kh: weight.shape[2],
                               kw: weight.shape[3], sh: p.stride.h, sw: p.stride.w, ph: p.padding.h, pw: p.padding.w,
                               dh: p.dilation.h, dw: p.dilation.w, G: p.groups, M: m, N: n, K: k),
                 includes: ["conv_geometry"], m: m, n: n, k: k, z: x.shape[0] * p.groups, tiling: tiling(rows: m),
                 defines: geometry(weight.shape, p), flags: flags)
        return y
    }

    public func conv2dBackwardInput(_ gy: Tensor, weight: Tensor, inputShape: Shape, _ p: Conv2DParams) throws -> Tensor {
        let out = try p.outputShape(input: inputShape, weight: weight.shape, op: "conv2d backward input")
        try ShapeRules.same("conv2d backward input", gy.shape, out)
        return try kernels.conv2dBackwardInput(self, gy, weight: weight, inputShape: inputShape, p, out: out)
    }

    /// The tiled family's dL/dx: direct kernels for depthwise and few-channel convolutions, else
    /// the implicit-im2col GEMM of the transposed convolution.
    func tiledConv2dBackwardInput(_ gy: Tensor, weight: Tensor, inputShape: Shape, _ p: Conv2DParams, out: Shape) throws -> Tensor {
        let gb = try buffer(gy, "conv2d backward input"), wb = try buffer(weight, "conv2d backward input")
        let (gx, gxb) = try empty(inputShape, "conv2d backward input")
        if isDepthwise(weight.shape, p) {
            let (n, c, h, w) = inputShape.nchw!
            try launch(.depthwise_backward_input(gy: gb, w: wb, gx: gxb, C: c, H: h, W: w, OH: out[2], OW: out[3]),
                       files: ["conv_geometry", "conv2d_depthwise"], defines: geometry(weight.shape, p), global: [w, h, n * c],
                       local: planeLocal(width: w, height: h))
            return gx
        }
        if p.groups == 1, weight.shape[1] <= 4 {
            let (n, c, h, w) = inputShape.nchw!
            try launch(.backward_input_few_channels(gy: gb, w: wb, gx: gxb, Cout: weight.shape[0], H: h, W: w, OH: out[2],
                                                    OW: out[3]),
                       files: ["conv_geometry", "conv2d_direct"],
                       defines: geometry(weight.shape, p).merging(["CONV_CIN": c]) { a, _ in a }, global: [w, h, n])
            return gx
        }
        let (cout, cig, kh, kw) = weight.shape.nchw!
        let m = cig, n = inputShape[2] * inputShape[3], k = cout / p.groups * kh * kw
        try gemm(.CONV_BACKWARD_INPUT(gy: gb, w: wb, gx: gxb, Cin: inputShape[1], H: inputShape[2], W: inputShape[3],
                                      Cout: weight.shape[0], OH: out[2], OW: out[3], kh: weight.shape[2], kw: weight.shape[3],
                                      sh: p.stride.h, sw: p.stride.w, ph: p.padding.h, pw: p.padding.w, dh: p.dilation.h,
                                      dw: p.dilation.w, G: p.groups, M: m, N: n, K: k),
                 includes: ["conv_geometry"], m: m, n: n, k: k, z: inputShape[0] * p.groups, tiling: tiling(rows: m),
                 defines: geometry(weight.shape, p))
        return gx
    }

    public func conv2dBackwardInput(_ gy: Tensor, weight: Tensor, inputShape: Shape, _ p: Conv2DParams,
                                    fused: ConvolutionFusion) throws -> (gradient: Tensor, inputMasked: Bool) {
        let op = "conv2d backward input"
        let out = try p.outputShape(input: inputShape, weight: weight.shape, op: op)
        try ShapeRules.same(op, gy.shape, out)
        if let output = fused.output { try ShapeRules.same(op, output.value.shape, out) }
        if let input = fused.input { try ShapeRules.same(op, input.value.shape, inputShape) }
        return try kernels.conv2dBackwardInput(self, gy, weight: weight, inputShape: inputShape, p, out: out, fused: fused)
    }

    public func conv2dBackwardWeight(_ gy: Tensor, input: Tensor, weightShape: Shape, _ p: Conv2DParams) throws -> Tensor {
        let out = try p.outputShape(input: input.shape, weight: weightShape, op: "conv2d backward weight")
        try ShapeRules.same("conv2d backward weight", gy.shape, out)
        let gb = try buffer(gy, "conv2d backward weight"), xb = try buffer(input, "conv2d backward weight")
        let (gw, gwb) = try empty(weightShape, "conv2d backward weight")
        if isDepthwise(weightShape, p) {
            let (n, c, h, w) = input.shape.nchw!
            try launch(.depthwise_backward_weight(gy: gb, x: xb, gw: gwb, Nb: n, C: c, H: h, W: w, OH: out[2], OW: out[3]),
                       files: ["conv_geometry", "conv2d_depthwise"], defines: geometry(weightShape, p), global: [64, c],
                       local: [64, 1])
            return gw
        }
        let (cout, cig, kh, kw) = weightShape.nchw!
        let m = cout / p.groups, n = cig * kh * kw, k = input.shape[0] * out[2] * out[3]
        try gemm(.CONV_BACKWARD_WEIGHT(gy: gb, x: xb, gw: gwb, Cin: input.shape[1], H: input.shape[2], W: input.shape[3],
                                       Cout: weightShape[0], OH: out[2], OW: out[3], kh: weightShape[2], kw: weightShape[3],
                                       sh: p.stride.h, sw: p.stride.w, ph: p.padding.h, pw: p.padding.w, dh: p.dilation.h,
                                       dw: p.dilation.w, G: p.groups, M: m, N: n, K: k),
                 includes: ["conv_geometry"], m: m, n: n, k: k, z: p.groups, tiling: tiling(rows: m),
                 defines: geometry(weightShape, p))
        return gw
    }

    func channelSum(_ gy: Tensor, n: Int, c: Int, hw: Int, _ op: String) throws -> Tensor {
        let gb = try buffer(gy, op)
        let (s, sb) = try empty([c], op)
        try launch(.channel_sum(x: gb, y: sb, Nb: n, C: c, HW: hw), global: [64, c], local: [64, 1])
        return s
    }

    public func conv2dBackwardBias(_ gy: Tensor) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.rank4("conv2d backward bias", gy.shape)
        return try channelSum(gy, n: n, c: c, hw: h * w, "conv2d backward bias")
    }
}
