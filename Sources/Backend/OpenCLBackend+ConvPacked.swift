import Device

/// Register-blocked convolutions for CPU OpenCL devices (gemm_packed.cl): the weights are packed
/// into MR-row panels once per weight tensor (kept beside it), the input into NR-column im2col
/// panels per chunk of images (a scratch buffer reused across calls), and one barrier-free
/// microkernel multiplies them. Same math, same entry points and same tests as the tiled family.
extension OpenCLBackend {
    /// Images per chunk so that one chunk's packed panels stay within `scratchFloats` (at least 1).
    private func imagesPerChunk(floatsPerImage: Int, images: Int) -> Int {
        Swift.max(1, Swift.min(images, scratchFloats / Swift.max(floatsPerImage, 1)))
    }

    private func packedDefines(_ w: Shape, _ p: Conv2DParams) -> [String: Int] {
        geometry(w, p).merging(packing.defines) { a, _ in a }
    }

    /// `weight` as A panels [G][ceil(m/MR)][k][MR], where row r, column c of group g is
    /// weight[g * sg + r * sm + (c / window) * sk + window - 1 - c % window] (window 1: a plain
    /// strided matrix); packed on the device once per weight tensor and layout.
    func packedPanels(_ weight: Tensor, layout: String, m: Int, k: Int, groups: Int, sg: Int, sm: Int, sk: Int, window: Int = 1,
                      _ op: String) throws -> Buffer<Float> {
        guard let storage = weight.storage as? OpenCLStorage else { throw BackendError(op, "weight \(weight.shape) is not on \(name)") }
        let key = "\(layout) \(packing.mr)"
        return try storage.derived(key) {
            let mb = (m + packing.mr - 1) / packing.mr
            let panels = try Buffer<Float>(context: context, count: groups * mb * k * packing.mr)
            try kernel(["conv_geometry", "gemm_packed"], "pack_a", defines: packing.defines).launch(
                global: [k, mb, groups], local: [Swift.min(k, 16), 1, 1],
                [.buffer(storage.buffer), .buffer(panels), .int(m), .int(k), .int(sg), .int(sm), .int(sk), .int(window)])
            return panels
        }
    }

    /// Where gemm_packed reads B: panels (per chunk) or an NCHW tensor's planes in place.
    enum PackedOperand {
        /// Panels [z][ceil(n/NR)][k][NR] of the current chunk.
        case panels(Buffer<Float>)
        /// Image i, group g's [k][n] matrix at buffer + i * strideImage + g * strideGroup, rows n apart.
        case planes(Buffer<Float>, firstImage: Int, strideImage: Int, strideGroup: Int)
        /// The im2col matrix of a convolution over zero-padded planes split into stride phases
        /// (rows of `row` floats, `plane` floats a channel, all phases), read in place;
        /// `geometry` holds the window's defines, `outWidth` the output's columns.
        case implicit(Buffer<Float>, strideImage: Int, strideGroup: Int, row: Int, plane: Int, outWidth: Int, geometry: [String: Int],
                      offset: Int = 0)
    }

    /// C = A B for A panels `a` over `z` (image, group) pairs, stored through the layout
    /// arguments of gemm_packed (see gemm_packed.cl). With an implicit B, output pixel (oy, ox)
    /// of a row goes to cOffset + oy * cRowStride + ox * cColStride (default: a dense map).
    /// With `storeMask` (panels or planes only), C is the gradient of its activation's output and
    /// goes through that activation's backward as it is stored.
    func packedGemm(_ a: Buffer<Float>, _ b: PackedOperand, _ c: Buffer<Float>, bias: Buffer<Float>?, biasColumns: Bool = false,
                            activation: Activation? = nil, storeMask: GradientMask? = nil,
                            m: Int, n: Int, k: Int, z: Int, groups: Int, firstImage: Int,
                            strideImage: Int, strideGroup: Int, ldc: Int,
                            cOffset: Int = 0, cRowStride: Int? = nil, cColStride: Int = 1) throws {
        let mb = (m + packing.mr - 1) / packing.mr, nb = (n + packing.nr - 1) / packing.nr
        let source: Buffer<Float>, bArgs: [Int]
        var flags: [String]
        var defines = packing.defines, planeSize = 0, outWidth = 0, bOffset = 0
        switch b {
        case .panels(let buffer):
            let panel = nb * k * packing.nr
            (source, bArgs, flags) = (buffer, [0, groups * panel, panel, packing.nr, buffer.count], [])
        case let .planes(buffer, first, strideImage, strideGroup):
            (source, bArgs, flags) = (buffer, [first, strideImage, strideGroup, n, buffer.count], ["B_ROWMAJOR"])
        case let .implicit(buffer, strideImage, strideGroup, row, plane, width, geometry, offset):
            (source, bArgs, flags) = (buffer, [0, strideImage, strideGroup, row, buffer.count], ["B_IMPLICIT"])
            defines.merge(geometry) { a, _ in a }
            (planeSize, outWidth, bOffset) = (plane, width, offset)
        }
        // Column blocks per work-item: enough k steps per work-group (about 1024) to hide its cost
        // (256 left ResNet18's 7x7 stem, K = 147, at 1.4x the time: a work-group per 16 columns).
        // When A is the larger operand (few columns: late layers, backward passes), up to 2048, so
        // that its A panel is read from memory fewer times, but no more: the B columns a
        // work-item sweeps (K x NR floats a block) must stay in cache for the next row block.
        // A work-item sweeping all 14 blocks of ResNet18's 3x3 128->256 stride-2 layer (K = 1152,
        // 74 KB a block) took 1.3-1.4x the time of a block each (forward, PoCL). Either way at least
        // 64 work-groups remain for the cores.
        if biasColumns { flags.append("BIAS_COLUMNS") }
        if let activation { flags.append(activation.fusedFlag) }
        var perItem = Swift.min(nb, Swift.max(1, (m > n ? 2048 : 1024) / Swift.max(k, 1)))
        while perItem > 1, mb * ((nb + perItem - 1) / perItem) * z < 64 { perItem -= 1 }
        let (files, allDefines, allFlags) = storeMaskProgram(["conv_geometry", "gemm_packed"], defines, flags, storeMask)
        try kernel(files, "gemm_packed", defines: allDefines, flags: allFlags).launch(
            global: [mb, (nb + perItem - 1) / perItem, z], local: [1, 1, 1],
            [.buffer(a), .buffer(source), .buffer(c), .buffer(bias ?? a), .int(bias == nil ? 0 : 1),
             .int(m), .int(n), .int(k), .int(groups)]
            + (bArgs + [firstImage, strideImage, strideGroup, ldc, perItem, planeSize, outWidth,
                        bOffset, cOffset, cRowStride ?? outWidth, cColStride]).map { .int($0) }
            + [.buffer(try storeMask.map { try buffer($0.output, "gemm_packed") } ?? c)])
    }

    /// Rows of a batch from which a linear layer runs as a matrix product (x packed in MR-row
    /// panels, W's columns in NR-wide panels) instead of a matrix-vector product per row:
    /// reading W once per MR rows instead of once per row.
    static let packedLinearRows = 4

    /// `matrix` [rows, cols] (row-major; `transposed`: [cols, rows], its transpose packed) as A
    /// panels [ceil(rows/MR)][cols][MR] in `into`.
    private func packRows(_ matrix: Buffer<Float>, into panels: Buffer<Float>, rows: Int, cols: Int, mr: Int,
                          transposed: Bool = false) throws {
        let (sm, sk) = transposed ? (1, rows) : (cols, 1)
        try kernel(["conv_geometry", "gemm_packed"], "pack_a", defines: mr == packing.mr ? packing.defines : ["MR": mr]).launch(
            global: [cols, (rows + mr - 1) / mr, 1], local: [Swift.min(cols, 16), 1, 1],
            [.buffer(matrix), .buffer(panels), .int(rows), .int(cols), .int(0), .int(sm), .int(sk), .int(1)])
    }

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
            try packedGemm(a, .panels(wt), yb, bias: bb, biasColumns: true, m: n, n: outF, k: inF, z: 1, groups: 1,
                           firstImage: 0, strideImage: 0, strideGroup: 0, ldc: outF)
        }
    }

    /// gx [N, In] = gy W for N >= packedLinearRows: A = gy's rows packed per call, B = W read in
    /// place as a row-major [Out][In] matrix.
    func linearBackwardInputPacked(_ gb: Buffer<Float>, weight wb: Buffer<Float>, gx gxb: Buffer<Float>, n: Int, inF: Int, outF: Int) throws {
        try withScratch("linear backward input") { scratch in
            let a = try scratch("rows", (n + packing.mr - 1) / packing.mr * packing.mr * outF)
            try packRows(gb, into: a, rows: n, cols: outF, mr: packing.mr)
            try packedGemm(a, .planes(wb, firstImage: 0, strideImage: 0, strideGroup: 0), gxb, bias: nil, m: n, n: inF, k: outF,
                           z: 1, groups: 1, firstImage: 0, strideImage: 0, strideGroup: 0, ldc: inF)
        }
    }

    /// gw [Out, In] = gy^T x: A = gy's columns packed per call (gy^T's rows), B = x read in place
    /// as a row-major [N][In] matrix. (Also the batch sum of attribution maps: gy a column of
    /// ones, so one A row, the rest of its panel zeros.)
    func linearBackwardWeightPacked(_ gb: Buffer<Float>, input xb: Buffer<Float>, gw gwb: Buffer<Float>, n: Int, inF: Int, outF: Int) throws {
        try withScratch("linear backward weight") { scratch in
            let a = try scratch("columns", (outF + packing.mr - 1) / packing.mr * packing.mr * n)
            try packRows(gb, into: a, rows: outF, cols: n, mr: packing.mr, transposed: true)
            try packedGemm(a, .planes(xb, firstImage: 0, strideImage: 0, strideGroup: 0), gwb, bias: nil, m: outF, n: inF, k: n,
                           z: 1, groups: 1, firstImage: 0, strideImage: 0, strideGroup: 0, ldc: inF)
        }
    }

    /// im2col panels [z][ceil(n/NR)][k][NR] of images first ..< first + images of `x` [N, C, H, W].
    private func packIm2col(_ x: Buffer<Float>, into b: Buffer<Float>, first: Int, images: Int, c: Int, h: Int, w: Int,
                            out: Shape, k: Int, groups: Int, defines: [String: Int]) throws {
        try kernel(["conv_geometry", "gemm_packed"], "pack_b_im2col", defines: defines).launch(
            global: [k, images * groups], local: [1, 1],
            [.buffer(x), .buffer(b), .int(first), .int(c), .int(h), .int(w), .int(out[2]), .int(out[3]), .int(groups),
             .int(out[2] * out[3]), .int(k)] + [KernelArgument](repeating: .int(0), count: 8))
    }

    /// `planes` planes of h x w from `x`, zero-padded and split into stride phases of hq x wq
    /// (pad_planes): all sh x sw of them, or with `phases` 1 only phase 0; from x's plane
    /// `firstPlane` on.
    /// With `mask`, x is the gradient of a fused activation's output, put through its backward as
    /// it is copied.
    func padPlanes(_ x: Buffer<Float>, firstPlane: Int = 0, into xq: Buffer<Float>, planes: Int, h: Int, w: Int, hq: Int, wq: Int,
                   padding: (h: Int, w: Int), stride: (h: Int, w: Int), phases: Int, mask: GradientMask? = nil) throws {
        var defines = packing.defines, files = ["conv_geometry", "gemm_packed"]
        if let mask {
            defines.merge(["GRAD_KIND": Int(mask.kind.rawValue), "GRAD_RULE": Int(mask.rule.rawValue)]) { a, _ in a }
            files.insert("activation", at: 1)
        }
        try kernel(files, "pad_planes", defines: defines, flags: mask == nil ? [] : ["GRAD_MASK"]).launch(
            global: [planes * phases], local: [1],
            [.buffer(x), .buffer(xq), .int(h), .int(w), .int(hq), .int(wq), .int(padding.h), .int(padding.w), .int(stride.h),
             .int(stride.w), .int(phases), .int(firstPlane), .buffer(try mask.map { try buffer($0.output, "pad planes") } ?? x)])
    }

    /// An activation's backward that a convolution's backward to the input applies as it reads
    /// gy: `output` is the fused activation's (gy's shape), `kind` and `rule` as activationBackward's.
    struct GradientMask {
        let output: Tensor
        let kind: Activation
        let rule: GradientRule
    }

    /// Whether a convolution reads its zero-padded input in place (B_IMPLICIT, split into
    /// stride phases) rather than packing im2col panels: the phase grid's extra columns
    /// (Wq - OW per row) are computed and dropped, so it pays while they add at most 30% of
    /// column blocks; the packing it saves moves K x N floats, a quarter of a 128-row GEMM's
    /// time. 3x3 windows at stride 1: 56 wide +4%, 28 +8%, 14 +8%, 7 +0% (both 4 blocks of 16),
    /// 4 +100% (packed); stride 2 on 56 / 224: +4% / +3%.
    private func implicitPays(gridColumns: Int, outputColumns: Int) -> Bool {
        let nr = packing.nr, blocks = { ($0 + nr - 1) / nr }
        return blocks(gridColumns) * 10 <= blocks(outputColumns) * 13
    }

    /// A 1x1, stride-1, unpadded window: the im2col matrix is the input itself.
    func isPointwise(_ w: Shape, _ p: Conv2DParams) -> Bool {
        w[2] == 1 && w[3] == 1 && p.stride == (1, 1) && p.padding == (0, 0)
    }

    func conv2dPacked(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParams, out: Shape, activation: Activation?) throws -> Tensor {
        let op = "conv2d"
        if winogradApplies(weight.shape, p) {
            return try winogradConvolution(try buffer(x, op), x.shape, weight: weight, transposed: false, bias: try bias.map { try buffer($0, op) },
                                           padding: p.padding, out: out, activation: activation, op)
        }
        let (cout, cig, kh, kw) = weight.shape.nchw!
        let m = cout / p.groups, k = cig * kh * kw
        let a = try packedPanels(weight, layout: "forward", m: m, k: k, groups: p.groups, sg: m * k, sm: k, sk: 1, op)
        return try packedConvolution(try buffer(x, op), x.shape, panels: a, window: weight.shape, bias: try bias.map { try buffer($0, op) },
                                     p, out: out, activation: activation, op)
    }

    /// y = conv(x) for A panels of the weights (m = Cout/G rows of k = Cin/G * KH * KW):
    /// pointwise convolutions read x in place, the others through im2col panels per chunk.
    private func packedConvolution(_ xb: Buffer<Float>, _ xShape: Shape, panels a: Buffer<Float>, window: Shape, bias bb: Buffer<Float>?,
                                   _ p: Conv2DParams, out: Shape, activation: Activation? = nil, _ op: String) throws -> Tensor {
        let (images, cin, h, w) = xShape.nchw!
        let g = p.groups, cout = out[1], m = cout / g, n = out[2] * out[3], k = cin / g * window[2] * window[3]
        let (y, yb) = try empty(out, op)
        // Input planes of exactly [OH][OW] (x itself, or phase 0 of it) times A, read in place.
        func pointwise(_ planes: Buffer<Float>) throws {
            try packedGemm(a, .planes(planes, firstImage: 0, strideImage: cin * n, strideGroup: cin / g * n), yb, bias: bb,
                           activation: activation, m: m, n: n, k: k, z: images * g, groups: g, firstImage: 0, strideImage: cout * n,
                           strideGroup: m * n, ldc: n)
        }
        if isPointwise(window, p) {
            try pointwise(xb)
            return y
        }
        let (sh, sw) = p.stride
        if window[2] == 1, window[3] == 1, p.padding == (0, 0) {
            // A strided 1x1 window reads only x[s*oy][s*ox]: phase 0 of the stride phases, which
            // is a dense [OH][OW] plane.
            try withScratch(op) { scratch in
                let sub = try scratch("subsampled", images * cin * n)
                try padPlanes(xb, into: sub, planes: images * cin, h: h, w: w, hq: out[2], wq: out[3], padding: (0, 0), stride: p.stride,
                              phases: 1)
                try pointwise(sub)
            }
            return y
        }
        let hq = (h + 2 * p.padding.h + sh - 1) / sh, wq = (w + 2 * p.padding.w + sw - 1) / sw, plane = sh * sw * hq * wq
        if implicitPays(gridColumns: out[2] * wq, outputColumns: n) {
            // Pad once (split into stride phases), read the window taps in place. Past the last
            // plane, the last block's dropped columns read up to NR + a window's reach of floats.
            let reach = packing.nr + ((window[2] - 1) * p.dilation.h / sh + 2) * wq + (window[3] - 1) * p.dilation.w / sw
            try withScratch(op) { scratch in
                let padded = try scratch("padded", images * cin * plane + reach)
                try padPlanes(xb, into: padded, planes: images * cin, h: h, w: w, hq: hq, wq: wq, padding: p.padding, stride: p.stride,
                              phases: sh * sw)
                try packedGemm(a, .implicit(padded, strideImage: cin * plane, strideGroup: cin / g * plane, row: wq, plane: plane,
                                            outWidth: out[3], geometry: packedDefines(window, p)),
                               yb, bias: bb, activation: activation, m: m, n: out[2] * wq, k: k, z: images * g, groups: g, firstImage: 0,
                               strideImage: cout * n, strideGroup: m * n, ldc: n)
            }
            return y
        }
        let perImage = g * ((n + packing.nr - 1) / packing.nr * packing.nr) * k
        let chunk = imagesPerChunk(floatsPerImage: perImage, images: images)
        try withScratch(op) { scratch in
            let b = try scratch("im2col", chunk * perImage)
            for first in stride(from: 0, to: images, by: chunk) {
                let count = Swift.min(chunk, images - first)
                try packIm2col(xb, into: b, first: first, images: count, c: cin, h: h, w: w, out: out, k: k, groups: g,
                               defines: packedDefines(window, p))
                try packedGemm(a, .panels(b), yb, bias: bb, activation: activation, m: m, n: n, k: k, z: count * g, groups: g, firstImage: first,
                               strideImage: cout * n, strideGroup: m * n, ldc: n)
            }
        }
        return y
    }

    /// dL/dx. At stride 1 it is the convolution of gy with the transposed, window-reversed
    /// weights and padding D*(K-1) - P: the forward path. A pointwise conv's dL/dx is W^T gy,
    /// with gy read where it lies. Other strides go by stride phases (`phasedBackwardInput`);
    /// with few input channels by the phases stacked into one product (`StackedPhases`), or
    /// where that multiplies the work, as columns = W^T gy summed into dL/dx by col2im.
    /// With `mask`, gy is the gradient of a fused activation's output: the paths that pad gy
    /// (Winograd, stride phases) apply the activation's backward as they copy it, the others
    /// before they start. `storeMask` (pointwise convolutions only, the one path that takes
    /// it): dL/dx goes through the backward of the activation whose output x is as it is stored.
    func conv2dBackwardInputPacked(_ gy: Tensor, weight: Tensor, inputShape: Shape, _ p: Conv2DParams, out: Shape,
                                   mask: GradientMask? = nil, storeMask: GradientMask? = nil) throws -> Tensor {
        let op = "conv2d backward input"
        let (images, cin, _, _) = inputShape.nchw!, (cout, cig, kh, kw) = weight.shape.nchw!
        let g = p.groups, cog = cout / g, n = out[2] * out[3]
        let gb = try buffer(gy, op)
        // gy with the mask applied, for the paths that read it where it lies.
        func masked() throws -> Buffer<Float> {
            guard let mask else { return gb }
            return try buffer(try activationBackward(gy, input: mask.output, mask.kind, rule: mask.rule), op)
        }
        let transposedPadding = (p.dilation.h * (kh - 1) - p.padding.h, p.dilation.w * (kw - 1) - p.padding.w)
        if p.stride == (1, 1), !isPointwise(weight.shape, p), transposedPadding.0 >= 0, transposedPadding.1 >= 0 {
            let tp = Conv2DParams(stride: (1, 1), padding: transposedPadding, dilation: p.dilation, groups: g)
            if winogradApplies([cin, cog, kh, kw], tp) {
                return try winogradConvolution(gb, gy.shape, weight: weight, transposed: true, bias: nil, padding: transposedPadding,
                                               out: inputShape, mask: mask, op)
            }
            let window = kh * kw
            let a = try packedPanels(weight, layout: "transposed", m: cig, k: cog * window, groups: g, sg: cog * cig * window,
                                     sm: window, sk: cig * window, window: window, op)
            return try packedConvolution(try masked(), gy.shape, panels: a, window: [cin, cog, kh, kw], bias: nil, tp, out: inputShape, op)
        }
        if !isPointwise(weight.shape, p), cig >= OpenCLBackend.phasedMinimumChannels {
            return try phasedBackwardInput(gb, gy.shape, weight: weight, inputShape: inputShape, p, mask: mask, op)
        }
        if !isPointwise(weight.shape, p), let stacked = StackedPhases(window: weight.shape, p) {
            return try stackedBackwardInput(gb, gy.shape, weight: weight, inputShape: inputShape, p, stacked, mask: mask, op)
        }
        let source = try masked()
        let m = cig * kh * kw
        let a = try packedPanels(weight, layout: "backward input", m: m, k: cog, groups: g, sg: cog * m, sm: 1, sk: m, op)
        let (gx, gxb) = try empty(inputShape, op)
        if isPointwise(weight.shape, p) {
            try packedGemm(a, .planes(source, firstImage: 0, strideImage: cout * n, strideGroup: cog * n), gxb, bias: nil,
                           storeMask: storeMask,
                           m: m, n: n, k: cog, z: images * g, groups: g, firstImage: 0, strideImage: cin * n, strideGroup: cig * n, ldc: n)
            return gx
        }
        // Few input channels where stacking the phases would multiply the work (a 1x1 window, or
        // dilation or stride 3 with a 3x3 one): columns = W^T gy, then col2im.
        let chunk = imagesPerChunk(floatsPerImage: g * m * n, images: images)
        try withScratch(op) { scratch in
            let cols = try scratch("columns", chunk * g * m * n)
            for first in stride(from: 0, to: images, by: chunk) {
                let count = Swift.min(chunk, images - first)
                try packedGemm(a, .planes(source, firstImage: first, strideImage: cout * n, strideGroup: cog * n), cols, bias: nil,
                               m: m, n: n, k: cog, z: count * g, groups: g, firstImage: 0, strideImage: g * m * n, strideGroup: m * n, ldc: n)
                try kernel(["conv_geometry", "gemm_packed"], "col2im", defines: packedDefines(weight.shape, p)).launch(
                    global: [inputShape[3], inputShape[2], count * g * cig], local: [Swift.min(inputShape[3], 16), 1, 1],
                    [.buffer(cols), .buffer(gxb), .int(first), .int(cin), .int(inputShape[2]), .int(inputShape[3]), .int(out[2]),
                     .int(out[3]), .int(g)] + [KernelArgument](repeating: .int(0), count: 8))
            }
        }
        return gx
    }

    /// A strided convolution's backward to the input with all stride phases in one product:
    /// x[s*q + r] receives w[k] gy[q + u] for u = (r + P - k*D) / s where that is whole, and over
    /// all phases r those offsets u span one short run u0 ..< u0 + taps per axis (ResNet18's 7x7
    /// stem at stride 2: -1 ..< 3, four taps; a 3x3 window: 0 ..< 2). So dL/dx's phases are the
    /// rows of a single stride-1 convolution of gy with a taps x taps window: SH * SW * Cin/G
    /// rows (12 for an RGB image at stride 2) instead of Cin/G in each phase's own product,
    /// where taps a phase lacks are zeros. Used for few input channels (`phasedMinimumChannels`)
    /// while the stacked window does at most twice the real taps' work (the stem: 64 taps for 49).
    struct StackedPhases {
        let uy0, ux0, ty, tx: Int
        init?(window: Shape, _ p: Conv2DParams) {
            func run(_ s: Int, _ pad: Int, _ d: Int, _ k: Int) -> (Int, Int)? {
                let us = (0..<s).flatMap { r in (0..<k).filter { (r + pad - $0 * d) % s == 0 }.map { (r + pad - $0 * d) / s } }
                guard let lo = us.min(), let hi = us.max() else { return nil }
                return (lo, hi - lo + 1)
            }
            guard let (uy0, ty) = run(p.stride.h, p.padding.h, p.dilation.h, window[2]),
                  let (ux0, tx) = run(p.stride.w, p.padding.w, p.dilation.w, window[3]),
                  p.stride.h * p.stride.w * ty * tx <= 2 * window[2] * window[3] else { return nil }
            (self.uy0, self.ux0, self.ty, self.tx) = (uy0, ux0, ty, tx)
        }
    }

    /// dL/dx by `StackedPhases`: gy padded once, one gemm_packed launch reading it in place with
    /// the stacked window (its columns the phase grid of ceil(H/SH) x ceil(W/SW) pixels), and
    /// merge_phases moving each row of the product to its phase's pixels. A chunk of images at
    /// a time. Measured on ResNet18's stem at batch 8 (PoCL): see the README's Performance.
    private func stackedBackwardInput(_ gb: Buffer<Float>, _ gyShape: Shape, weight: Tensor, inputShape: Shape, _ p: Conv2DParams,
                                      _ st: StackedPhases, mask: GradientMask?, _ op: String) throws -> Tensor {
        let (images, cin, h, w) = inputShape.nchw!, (cout, cig, kh, kw) = weight.shape.nchw!
        let (oh, ow) = (gyShape[2], gyShape[3]), g = p.groups, cog = cout / g, (sh, sw) = p.stride
        guard let storage = weight.storage as? OpenCLStorage else { throw BackendError(op, "weight \(weight.shape) is not on \(name)") }
        let (qh, qw) = ((h + sh - 1) / sh, (w + sw - 1) / sw), m = sh * sw * cig, k = cog * st.ty * st.tx
        let a = try storage.derived("stacked phases \(packing.mr)") {
            let mb = (m + packing.mr - 1) / packing.mr
            let panels = try Buffer<Float>(context: context, count: g * mb * k * packing.mr)
            try kernel(["conv_geometry", "gemm_packed"], "pack_a_stacked", defines: packing.defines).launch(
                global: [k, mb, g], local: [Swift.min(k, 16), 1, 1],
                [.buffer(storage.buffer), .buffer(panels), .int(m), .int(cig), .int(k), .int(kh), .int(kw), .int(sh), .int(sw),
                 .int(p.padding.h), .int(p.padding.w), .int(p.dilation.h), .int(p.dilation.w), .int(st.ty), .int(st.tx), .int(st.uy0),
                 .int(st.ux0)])
            return panels
        }
        let (ty, tx) = (PhaseTaps(offset: st.uy0, count: st.ty, size: qh), PhaseTaps(offset: st.ux0, count: st.tx, size: qw))
        let pad = PaddedGradient([(ty, tx)], oh: oh, ow: ow, nr: packing.nr)
        let (plane, wq) = (pad.plane, pad.wq)
        let product = g * m * qh * qw
        // Chunks of images whose padded gy and product stay in cache between the launches (the
        // Winograd path's budget): at batch 8 the whole batch at once took 1.5x per image.
        let budget = Swift.min(scratchFloats, OpenCLBackend.winogradChunkFloats)
        let chunk = Swift.max(1, Swift.min(images, budget / (cout * plane + product)))
        let (gx, gxb) = try empty(inputShape, op)
        let window = Conv2DParams(stride: (1, 1), padding: (0, 0), dilation: (1, 1), groups: g)
        try withScratch(op) { scratch in
            let padded = try scratch("padded", chunk * cout * plane + pad.reach)
            let phases = try scratch("stacked phases", chunk * product)
            for first in stride(from: 0, to: images, by: chunk) {
                let count = Swift.min(chunk, images - first)
                try padPlanes(gb, firstPlane: first * cout, into: padded, planes: count * cout, h: oh, w: ow, hq: pad.hq, wq: wq,
                              padding: (pad.top, pad.left), stride: (1, 1), phases: 1, mask: mask)
                try packedGemm(a, .implicit(padded, strideImage: cout * plane, strideGroup: cog * plane, row: wq, plane: plane,
                                            outWidth: qw, geometry: packedDefines([m, cog, st.ty, st.tx], window),
                                            offset: pad.start(ty, tx)),
                               phases, bias: nil, m: m, n: qh * wq, k: k, z: count * g, groups: g, firstImage: 0,
                               strideImage: product, strideGroup: m * qh * qw, ldc: qh * qw)
                try kernel(["conv_geometry", "gemm_packed"], "merge_phases", defines: packing.defines).launch(
                    global: [h * count * cin], local: [1],
                    [.buffer(phases), .buffer(gxb), .int(first), .int(cin), .int(h), .int(w), .int(qh), .int(qw), .int(sh), .int(sw),
                     .int(g)])
            }
        }
        return gx
    }

    /// Input channels per group from which a strided convolution's backward goes by stride
    /// phases: each phase's product has Cin/G rows, so with fewer (3 for an RGB image) its
    /// register blocks are mostly padding and gy is reread for every few rows; ResNet18's
    /// 7x7 stem took 107 ms by phases, 37 ms by W^T gy and col2im (batch 8, PoCL).
    static let phasedMinimumChannels = 16

    /// The window taps of one axis that reach input phase r (input positions s*q + r) in a
    /// strided convolution's backward: kernel positions first, first + step, ... (count of
    /// them), taken from gy positions q + offset + t * dilation for t = count - 1 - tap index
    /// (the window reversed); `size` input positions belong to the phase. Nil when no tap does.
    struct PhaseTaps {
        let first, count, step, offset, dilation, size: Int
        init?(phase r: Int, stride s: Int, padding pad: Int, dilation d: Int, kernel k: Int, input: Int) {
            let taps = (0..<k).filter { (r + pad - $0 * d) % s == 0 }
            guard let first = taps.first, let last = taps.last, r < input else { return nil }
            self.first = first
            count = taps.count
            step = taps.count > 1 ? taps[1] - first : 1
            offset = (r + pad - last * d) / s
            dilation = taps.count > 1 ? step * d / s : 1
            size = (input - r + s - 1) / s
        }
        /// `count` consecutive gy positions from `offset` over `size` outputs (the stacked phases' window).
        init(offset: Int, count: Int, size: Int) {
            (first, step, dilation) = (0, 1, 1)
            (self.offset, self.count, self.size) = (offset, count, size)
        }
        /// The last gy position read, relative to the phase's first output.
        var reach: Int { size - 1 + offset + (count - 1) * dilation }
    }

    /// gy zero-padded once for the windows (y, x) of a strided backward (one per stride phase,
    /// or the stacked phases' one), read in place by gemm_packed's B_IMPLICIT: `top` rows above,
    /// `left` columns before, and below / after as far as the last output's last tap reads.
    struct PaddedGradient {
        let top, left, hq, wq: Int
        /// Floats read past the last plane: a window's last block reads its dropped columns
        /// (whole blocks of `nr`) and its taps' reach.
        let reach: Int
        var plane: Int { hq * wq }

        init(_ windows: [(y: PhaseTaps, x: PhaseTaps)], oh: Int, ow: Int, nr: Int) {
            top = Swift.max(0, windows.map { -$0.y.offset }.max() ?? 0)
            left = Swift.max(0, windows.map { -$0.x.offset }.max() ?? 0)
            hq = top + Swift.max(oh, (windows.map { $0.y.reach }.max() ?? 0) + 1)
            wq = left + Swift.max(ow, (windows.map { $0.x.reach }.max() ?? 0) + 1)
            let (top, left, wq) = (top, left, wq)
            let ends = windows.map { y, x in
                (y.offset + top) * wq + x.offset + left + (y.size * wq + nr - 1) / nr * nr + (y.count - 1) * y.dilation * wq
                    + (x.count - 1) * x.dilation
            }
            reach = Swift.max(0, (ends.max() ?? 0) - hq * wq)
        }

        /// Where window (y, x) starts reading in a plane.
        func start(_ y: PhaseTaps, _ x: PhaseTaps) -> Int { (y.offset + top) * wq + x.offset + left }
    }

    /// dL/dx of a strided convolution as SH x SW stride-1 convolutions of gy, one per stride
    /// phase (ry, rx) of x: x[s*qy + ry] receives the taps ky with (ry + P - ky*D) divisible by
    /// s, from gy[qy + (ry + P - ky*D) / s]. Those gy offsets are evenly spaced, so a phase is a
    /// plain (possibly dilated) window of the reversed taps over gy, which is padded once for
    /// all phases; each phase's GEMM stores straight into its pixels of gx. Same terms as W^T gy
    /// plus col2im, without the column matrix (9 x gy's size for a 3x3 window) and its second pass.
    private func phasedBackwardInput(_ gb: Buffer<Float>, _ gyShape: Shape, weight: Tensor, inputShape: Shape, _ p: Conv2DParams,
                                     mask: GradientMask?, _ op: String) throws -> Tensor {
        let (images, cin, h, w) = inputShape.nchw!, (cout, cig, kh, kw) = weight.shape.nchw!
        let (oh, ow) = (gyShape[2], gyShape[3]), g = p.groups, cog = cout / g
        guard let storage = weight.storage as? OpenCLStorage else { throw BackendError(op, "weight \(weight.shape) is not on \(name)") }
        let rows = (0..<p.stride.h).map { PhaseTaps(phase: $0, stride: p.stride.h, padding: p.padding.h, dilation: p.dilation.h, kernel: kh, input: h) }
        let cols = (0..<p.stride.w).map { PhaseTaps(phase: $0, stride: p.stride.w, padding: p.padding.w, dilation: p.dilation.w, kernel: kw, input: w) }
        var live: [(ry: Int, rx: Int, y: PhaseTaps, x: PhaseTaps)] = []
        for (ry, y) in rows.enumerated() {
            for (rx, x) in cols.enumerated() {
                if let y, let x { live.append((ry, rx, y, x)) }
            }
        }
        let pad = PaddedGradient(live.map { ($0.y, $0.x) }, oh: oh, ow: ow, nr: packing.nr)
        let (plane, wq) = (pad.plane, pad.wq)
        let (gx, gxb) = try empty(inputShape, op)
        if live.count < rows.count * cols.count { try gxb.fill(0) }
        guard !live.isEmpty else { return gx }
        try withScratch(op) { scratch in
            let padded = try scratch("padded", images * cout * plane + pad.reach)
            try padPlanes(gb, into: padded, planes: images * cout, h: oh, w: ow, hq: pad.hq, wq: wq, padding: (pad.top, pad.left),
                          stride: (1, 1), phases: 1, mask: mask)
            for (ry, rx, ty, tx) in live {
                let k = cog * ty.count * tx.count
                let a = try storage.derived("phase \(ry) \(rx) \(packing.mr)") {
                    let mb = (cig + packing.mr - 1) / packing.mr
                    let panels = try Buffer<Float>(context: context, count: g * mb * k * packing.mr)
                    try kernel(["conv_geometry", "gemm_packed"], "pack_a_phase", defines: packing.defines).launch(
                        global: [k, mb, g], local: [Swift.min(k, 16), 1, 1],
                        [.buffer(storage.buffer), .buffer(panels), .int(cig), .int(k), .int(kh), .int(kw), .int(ty.first), .int(tx.first),
                         .int(ty.count), .int(tx.count), .int(ty.step), .int(tx.step)])
                    return panels
                }
                let window = Conv2DParams(stride: (1, 1), padding: (0, 0), dilation: (ty.dilation, tx.dilation), groups: g)
                try packedGemm(a, .implicit(padded, strideImage: cout * plane, strideGroup: cog * plane, row: wq, plane: plane,
                                            outWidth: tx.size, geometry: packedDefines([cin, cog, ty.count, tx.count], window),
                                            offset: pad.start(ty, tx)),
                               gxb, bias: nil, m: cig, n: ty.size * wq, k: k, z: images * g, groups: g, firstImage: 0,
                               strideImage: cin * h * w, strideGroup: cig * h * w, ldc: h * w,
                               cOffset: ry * w + rx, cRowStride: p.stride.h * w, cColStride: p.stride.w)
            }
        }
        return gx
    }
}
