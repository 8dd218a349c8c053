import BackendCore
import Device

/// dL/dx of the register-blocked family's convolutions: pointwise as one product, others as
/// W^T gy then col2im, stacked stride phases or Winograd where that pays.
extension OpenCLBackend {
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
        let (gx, gxb) = try empty(inputShape, op)
        if isPointwise(weight.shape, p), let tp = transposedColumns(m: m, n: n, k: cog, groups: g) {
            // Few pixels from many output channels: the input channels fill the vectors.
            let a = try packedPanels(weight, layout: "backward input", m: m, k: cog, groups: 1, sg: cog * m, sm: 1, sk: m,
                                     mr: packing.nr, op)
            try packedGemm(a, .planes(source, firstImage: 0, strideImage: cout * n, strideGroup: cout * n),
                           into: PackedResult(gxb, strideImage: cin * n, strideGroup: cin * n, ldc: n),
                           ProductShape(m: m, n: n, k: cog, z: images, groups: 1), storeMask: storeMask, transposedColumns: tp)
            return gx
        }
        let a = try packedPanels(weight, layout: "backward input", m: m, k: cog, groups: g, sg: cog * m, sm: 1, sk: m, op)
        if isPointwise(weight.shape, p) {
            try packedGemm(a, .planes(source, firstImage: 0, strideImage: cout * n, strideGroup: cog * n),
                           into: PackedResult(gxb, strideImage: cin * n, strideGroup: cig * n, ldc: n),
                           ProductShape(m: m, n: n, k: cog, z: images * g, groups: g), storeMask: storeMask)
            return gx
        }
        // Few input channels where stacking the phases would multiply the work (a 1x1 window, or
        // dilation or stride 3 with a 3x3 one): columns = W^T gy, then col2im.
        let chunk = imagesPerChunk(floatsPerImage: g * m * n, images: images)
        try withScratch(op) { scratch in
            let cols = try scratch("columns", chunk * g * m * n)
            for first in stride(from: 0, to: images, by: chunk) {
                let count = Swift.min(chunk, images - first)
                try packedGemm(a, .planes(source, firstImage: first, strideImage: cout * n, strideGroup: cog * n),
                               into: PackedResult(cols, strideImage: g * m * n, strideGroup: m * n, ldc: n),
                               ProductShape(m: m, n: n, k: cog, z: count * g, groups: g))
                try launch(.col2im(cols: cols, gx: gxb, n0: first, Cin: cin, H: inputShape[2], W: inputShape[3], OH: out[2],
                                   OW: out[3], G: g, kh: weight.shape[2], kw: weight.shape[3], sh: p.stride.h, sw: p.stride.w,
                                   ph: p.padding.h, pw: p.padding.w, dh: p.dilation.h, dw: p.dilation.w),
                           files: ["conv_geometry", "gemm_packed"], defines: packedDefines(weight.shape, p),
                           global: [inputShape[3], inputShape[2], count * g * cig], local: [Swift.min(inputShape[3], 16), 1, 1])
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
                                      _ stacked: StackedPhases, mask: GradientMask?, _ op: String) throws -> Tensor {
        let (images, cin, h, w) = inputShape.nchw!, (cout, cig, kh, kw) = weight.shape.nchw!
        let (oh, ow) = (gyShape[2], gyShape[3]), g = p.groups, cog = cout / g, (sh, sw) = p.stride
        guard let storage = weight.storage as? OpenCLStorage else { throw BackendError(op, "weight \(weight.shape) is not on \(name)") }
        let (qh, qw) = ((h + sh - 1) / sh, (w + sw - 1) / sw), m = sh * sw * cig, k = cog * stacked.ty * stacked.tx
        let a = try storage.derived("stacked phases \(packing.mr)") {
            let mb = (m + packing.mr - 1) / packing.mr
            let panels = try Buffer<Float>(context: context, count: g * mb * k * packing.mr)
            try launch(.pack_a_stacked(w: storage.buffer, A: panels, M: m, M1: cig, K: k, KHf: kh, KWf: kw, SHs: sh, SWs: sw,
                                       PHs: p.padding.h, PWs: p.padding.w, DHs: p.dilation.h, DWs: p.dilation.w, TY: stacked.ty,
                                       TX: stacked.tx, uy0: stacked.uy0, ux0: stacked.ux0),
                       files: ["conv_geometry", "gemm_packed"], defines: packing.defines, global: [k, mb, g],
                       local: [Swift.min(k, 16), 1, 1])
            return panels
        }
        let (ty, tx) = (PhaseTaps(offset: stacked.uy0, count: stacked.ty, size: qh), PhaseTaps(offset: stacked.ux0, count: stacked.tx, size: qw))
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
                                            outWidth: qw, geometry: packedDefines([m, cog, stacked.ty, stacked.tx], window),
                                            offset: pad.start(ty, tx)),
                               into: PackedResult(phases, strideImage: product, strideGroup: m * qh * qw, ldc: qh * qw),
                               ProductShape(m: m, n: qh * wq, k: k, z: count * g, groups: g))
                try launch(.merge_phases(P: phases, gx: gxb, n0: first, Cin: cin, H: h, W: w, QH: qh, QW: qw, SHs: sh, SWs: sw,
                                         G: g),
                           files: ["conv_geometry", "gemm_packed"], defines: packing.defines, global: [h * count * cin],
                           local: [1])
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
                    try launch(.pack_a_phase(w: storage.buffer, A: panels, M: cig, K: k, KHf: kh, KWf: kw, ky0: ty.first,
                                             kx0: tx.first, TY: ty.count, TX: tx.count, stepY: ty.step, stepX: tx.step),
                               files: ["conv_geometry", "gemm_packed"], defines: packing.defines, global: [k, mb, g],
                               local: [Swift.min(k, 16), 1, 1])
                    return panels
                }
                let window = Conv2DParams(stride: (1, 1), padding: (0, 0), dilation: (ty.dilation, tx.dilation), groups: g)
                try packedGemm(a, .implicit(padded, strideImage: cout * plane, strideGroup: cog * plane, row: wq, plane: plane,
                                            outWidth: tx.size, geometry: packedDefines([cin, cog, ty.count, tx.count], window),
                                            offset: pad.start(ty, tx)),
                               into: PackedResult(gxb, strideImage: cin * h * w, strideGroup: cig * h * w, ldc: h * w,
                                                  offset: ry * w + rx, rowStride: p.stride.h * w, colStride: p.stride.w),
                               ProductShape(m: cig, n: ty.size * wq, k: k, z: images * g, groups: g))
            }
        }
        return gx
    }
}
