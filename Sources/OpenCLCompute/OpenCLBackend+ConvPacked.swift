import BackendCore
import Device

/// Register-blocked convolutions for CPU OpenCL devices (gemm_packed.cl): the weights are packed
/// into MR-row panels once per weight tensor (kept beside it), the input into NR-column im2col
/// panels per chunk of images (a scratch buffer reused across calls), and one barrier-free
/// microkernel multiplies them. Same math, same entry points and same tests as the tiled family.
extension OpenCLBackend {
    /// Images per chunk so that one chunk's packed panels stay within `scratchFloats` (at least 1).
    func imagesPerChunk(floatsPerImage: Int, images: Int) -> Int {
        Swift.max(1, Swift.min(images, scratchFloats / Swift.max(floatsPerImage, 1)))
    }

    func packedDefines(_ w: Shape, _ p: Conv2DParams) -> [String: Int] {
        geometry(w, p).merging(packing.defines) { a, _ in a }
    }

    /// im2col panels [z][ceil(n/NR)][k][NR] of images first ..< first + images of `x` [N, C, H, W].
    private func packIm2col(_ x: Buffer<Float>, into b: Buffer<Float>, first: Int, images: Int, c: Int, h: Int, w: Int,
                            out: Shape, k: Int, groups: Int, defines: [String: Int]) throws {
        try launch(.pack_b_im2col(x: x, B: b, z0: first, Cin: c, H: h, W: w, OH: out[2], OW: out[3], G: groups,
                                  N: out[2] * out[3], K: k, kh: defines["CONV_KH"] ?? 0, kw: defines["CONV_KW"] ?? 0,
                                  sh: defines["CONV_SH"] ?? 0, sw: defines["CONV_SW"] ?? 0, ph: defines["CONV_PH"] ?? 0,
                                  pw: defines["CONV_PW"] ?? 0, dh: defines["CONV_DH"] ?? 0, dw: defines["CONV_DW"] ?? 0),
                   files: ["conv_geometry", "gemm_packed"], defines: defines, global: [k, images * groups], local: [1, 1])
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
        try launch(.pad_planes(x: x, xq: xq, H: h, W: w, Hq: hq, Wq: wq, padH: padding.h, padW: padding.w, sh: stride.h,
                               sw: stride.w, phases: phases, firstPlane: firstPlane,
                               mask: try mask.map { try buffer($0.output, "pad planes") } ?? x),
                   files: files, defines: defines, flags: mask == nil ? [] : ["GRAD_MASK"], global: [planes * phases], local: [1])
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

    /// activation(conv(x) + residual), the residual added as the result is stored. With
    /// `forwardOnly`, a 3x3 window may go by Winograd F(4x4, 3x3) (`winogradPlan`).
    func conv2dPacked(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParams, out: Shape, activation: Activation?,
                      residual: Tensor? = nil, forwardOnly: Bool = false) throws -> Tensor {
        let op = "conv2d"
        let rb = try residual.map { try buffer($0, op) }
        if winogradApplies(weight.shape, p) {
            return try winogradConvolution(try buffer(x, op), x.shape, weight: weight, transposed: false, bias: try bias.map { try buffer($0, op) },
                                           padding: p.padding, out: out, activation: activation, residual: rb, largeTiles: forwardOnly, op)
        }
        let (cout, cig, kh, kw) = weight.shape.nchw!
        let m = cout / p.groups, k = cig * kh * kw
        if isPointwise(weight.shape, p), let tp = transposedColumns(m: m, n: out[2] * out[3], k: k, groups: p.groups) {
            // Few pixels: the output channels fill the vectors (gemm_packed's GEMM_TRANSPOSED).
            let a = try packedPanels(weight, layout: "forward", m: m, k: k, groups: 1, sg: m * k, sm: k, sk: 1, mr: packing.nr, op)
            let (y, yb) = try empty(out, op)
            let n = out[2] * out[3]
            try packedGemm(a, .planes(try buffer(x, op), firstImage: 0, strideImage: k * n, strideGroup: k * n),
                           into: PackedResult(yb, strideImage: m * n, strideGroup: m * n, ldc: n),
                           ProductShape(m: m, n: n, k: k, z: x.shape[0], groups: 1), bias: try bias.map { try buffer($0, op) },
                           activation: activation, residual: rb, transposedColumns: tp)
            return y
        }
        let a = try packedPanels(weight, layout: "forward", m: m, k: k, groups: p.groups, sg: m * k, sm: k, sk: 1, op)
        return try packedConvolution(try buffer(x, op), x.shape, panels: a, window: weight.shape, bias: try bias.map { try buffer($0, op) },
                                     p, out: out, activation: activation, residual: rb, op)
    }

    /// y = activation(conv(x) + residual) for A panels of the weights (m = Cout/G rows of k =
    /// Cin/G * KH * KW; residual of y's layout, or none): pointwise convolutions read x in place,
    /// the others through im2col panels per chunk.
    func packedConvolution(_ xb: Buffer<Float>, _ xShape: Shape, panels a: Buffer<Float>, window: Shape, bias bb: Buffer<Float>?,
                           _ p: Conv2DParams, out: Shape, activation: Activation? = nil, residual: Buffer<Float>? = nil,
                           _ op: String) throws -> Tensor {
        let (images, cin, h, w) = xShape.nchw!
        let g = p.groups, cout = out[1], m = cout / g, n = out[2] * out[3], k = cin / g * window[2] * window[3]
        let (y, yb) = try empty(out, op)
        // Input planes of exactly [OH][OW] (x itself, or phase 0 of it) times A, read in place.
        func pointwise(_ planes: Buffer<Float>) throws {
            try packedGemm(a, .planes(planes, firstImage: 0, strideImage: cin * n, strideGroup: cin / g * n),
                           into: PackedResult(yb, strideImage: cout * n, strideGroup: m * n, ldc: n),
                           ProductShape(m: m, n: n, k: k, z: images * g, groups: g), bias: bb, activation: activation, residual: residual)
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
                               into: PackedResult(yb, strideImage: cout * n, strideGroup: m * n, ldc: n),
                               ProductShape(m: m, n: out[2] * wq, k: k, z: images * g, groups: g), bias: bb, activation: activation, residual: residual)
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
                try packedGemm(a, .panels(b),
                               into: PackedResult(yb, firstImage: first, strideImage: cout * n, strideGroup: m * n, ldc: n),
                               ProductShape(m: m, n: n, k: k, z: count * g, groups: g), bias: bb, activation: activation, residual: residual)
            }
        }
        return y
    }
}
