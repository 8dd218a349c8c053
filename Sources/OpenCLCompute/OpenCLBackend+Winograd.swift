import BackendCore
import Device

/// 3x3 stride-1 convolutions of the register-blocked family as Winograd F(m x m, 3x3)
/// (winograd.cl): the input transformed into (m+2)^2 matrices V[xi] (channels x tiles, as
/// gemm_packed's B panels), multiplied by the transformed weights U[xi] in one gemm_packed launch
/// (the positions as its groups), and the products transformed back into the output, a chunk of
/// images (or a band of one image's tile rows) at a time so that they stay in cache.
///
/// The forward goes by F(2x2, 3x3): 2.25x fewer multiplies than the direct product, for two
/// passes over 4x the input's and output's size, within a few rounding errors of the direct
/// sum. The backward to the input of the same layers (a stride-1 3x3 convolution of the gradient
/// with the reversed, transposed window) goes by F(4x4, 3x3): 4x fewer multiplies and passes over
/// 2.25x the sizes, about three times F(2x2)'s rounding error. In the forward that error moved
/// DenseNet121's and Inception v3's input gradients (through max-pool and ReLU choices made on
/// the activations) 8-12x past the PyTorch fixtures' 1e-3 bound; a gradient's error chooses
/// nothing downstream, and those fixtures hold with it.
extension OpenCLBackend {
    /// Channels, in and out, from which a 3x3 window goes by Winograd: below it the product is
    /// small next to its transforms.
    static let winogradMinimumChannels = 16

    /// Floats of V and M per chunk (images, or a band of tile rows of one image): 4 MB, so that
    /// the product and the output transform read them from cache. Measured here at batch 8
    /// (ResNet18's 3x3 layers, minima of three alternated runs): 4 MB 0.7-0.8x the direct
    /// product's time on every layer; 16 MB lost the gain on 56x56 and 28x28 maps; 1 MB about
    /// as 4 MB, with more launches.
    static let winogradChunkFloats = 1 << 20

    /// Floats from one position's matrix of V or M to the next: `floats` rounded up to 4 KB plus
    /// one cache line. Unskewed, the positions' matrices lie a multiple of 4 KB apart whenever
    /// the channels are a multiple of 64, so the 16 or 36 vectors a transform stores (or loads)
    /// per step fall in one set of the L1 cache and evict each other: the input transform of
    /// ResNet18's 56x56 layers spent most of its time on those stores.
    func winogradSkewed(_ floats: Int) -> Int { (floats + 1023) / 1024 * 1024 + 16 }

    /// Planes per work-item of the transforms: at most 256 work-groups, since on PoCL each costs
    /// about as much as a few tiles' transforms (a 7x7 map has 16 tiles a plane).
    private func planesPerItem(_ planes: Int) -> Int { Swift.max(1, (planes + 255) / 256) }

    /// `count` split into parts of at most `most`, as even as can be: the size of the largest.
    private func evenly(_ count: Int, _ most: Int) -> Int {
        let parts = (count + most - 1) / most
        return (count + parts - 1) / parts
    }

    /// Whether a convolution with `window` [Cout, Cin/G, KH, KW] goes by Winograd: 3x3, stride 1,
    /// no dilation, one group, enough channels both ways.
    func winogradApplies(_ window: Shape, _ p: Conv2DParams) -> Bool {
        window[2] == 3 && window[3] == 3 && p.stride == (1, 1) && p.dilation == (1, 1) && p.groups == 1
            && window[0] >= OpenCLBackend.winogradMinimumChannels && window[1] >= OpenCLBackend.winogradMinimumChannels
    }

    /// How an output of oh x ow goes by F(tile x tile, 3x3): th x tw tiles, tile rows in vectors
    /// of vt tiles, padded to twp.
    struct WinogradPlan {
        let tile, th, tw, vt, twp: Int
        var positions: Int { (tile + 2) * (tile + 2) }

        init(tile: Int, oh: Int, ow: Int) {
            (self.tile, th, tw) = (tile, (oh + tile - 1) / tile, (ow + tile - 1) / tile)
            // F(2x2): 4 or 8, whichever pads a tile row the least (ties: 8): 28 tiles go as
            // 7 x 4, 14 as 2 x 8. F(4x4): the widest of 8, 4 and 2 that pads a tile row to at
            // most 15% more than 2 would (14 tiles as 2 x 8, 7 as 8, 4 as 4, 2 as 2).
            let tw = tw, up = { (v: Int) in (tw + v - 1) / v * v }
            vt = tile == 2 ? (up(4) < up(8) ? 4 : 8) : [8, 4, 2].first { up($0) * 20 <= up(2) * 23 } ?? 2
            twp = up(vt)
        }

        /// The products' multiply-adds per input-output channel pair for `images` images, their
        /// columns rounded up to whole blocks of `nr`.
        func work(images: Int, nr: Int) -> Int { positions * ((images * th * twp + nr - 1) / nr * nr) }
    }

    /// The plan for an output of oh x ow: a differentiable forward by F(2x2); the backward to
    /// the input and a forward-only pass (`largeTiles`) by F(4x4) (see the type's note) unless
    /// its products would do more work than F(2x2)'s: at batch 1 a 7x7 map is 4 tiles of 4x4, a
    /// quarter of a 16-column block, 36 times, where F(2x2)'s 16 tiles fill the block, 16 times.
    func winogradPlan(largeTiles: Bool, oh: Int, ow: Int, images: Int) -> WinogradPlan {
        let small = WinogradPlan(tile: 2, oh: oh, ow: ow)
        guard largeTiles else { return small }
        let large = WinogradPlan(tile: 4, oh: oh, ow: ow)
        return large.work(images: images, nr: packing.nr) < small.work(images: images, nr: packing.nr) ? large : small
    }

    /// The (m+2)^2 transformed weight matrices U[xi] = G g G^T as gemm_packed's A panels, packed
    /// once per weight tensor: forward (rows Cout, columns Cin) or, `transposed`, the backward to
    /// the input's (rows Cin, columns Cout, each window reversed).
    private func winogradPanels(_ weight: Tensor, transposed: Bool, tile: Int, _ op: String) throws -> Buffer<Float> {
        guard let storage = weight.storage as? OpenCLStorage else { throw BackendError(op, "weight \(weight.shape) is not on \(name)") }
        let (cout, cin) = (weight.shape[0], weight.shape[1])
        let (m, k) = transposed ? (cin, cout) : (cout, cin)
        let (sm, sk) = transposed ? (9, cin * 9) : (cin * 9, 9)
        let positions = (tile + 2) * (tile + 2)
        return try storage.derived("winograd \(transposed ? "transposed" : "forward") F\(tile) \(packing.mr)") {
            let mb = (m + packing.mr - 1) / packing.mr
            let panels = try Buffer<Float>(context: context, count: positions * mb * k * packing.mr)
            let defines = packing.defines.merging(["WM": tile]) { a, _ in a }
            try launch(.winograd_pack_a(w: storage.buffer, A: panels, M: m, K: k, sm: sm, sk: sk, flip: transposed ? 1 : 0),
                       files: ["conv_geometry", "winograd"], defines: defines, global: [mb], local: [1])
            return panels
        }
    }

    /// y = conv(x) with a 3x3 window at stride 1 (`winogradApplies`), padding `padding`: the
    /// forward (`transposed` false: x [N, Cin, H, W], weight [Cout, Cin, 3, 3]) or the backward
    /// to the input (`transposed`: x is dL/dy [N, Cout, H, W], the weight read reversed and
    /// transposed, padding 2 - P; with `mask`, dL/dy of a fused activation's output, put through
    /// its backward as it is padded). With `residual` (y's layout), y = activation(conv(x) + b +
    /// residual). The backward, and a forward with `largeTiles` (a pass no backward follows), may
    /// go by F(4x4) (`winogradPlan`).
    func winogradConvolution(_ xb: Buffer<Float>, _ xShape: Shape, weight: Tensor, transposed: Bool, bias bb: Buffer<Float>?,
                             padding: (h: Int, w: Int), out: Shape, activation: Activation? = nil, mask: GradientMask? = nil,
                             residual: Buffer<Float>? = nil, largeTiles: Bool = false, _ op: String) throws -> Tensor {
        let (images, cin, h, w) = xShape.nchw!
        let cout = out[1], (oh, ow) = (out[2], out[3])
        // V and M rows hold twp tiles, the padding's products unstored.
        let plan = winogradPlan(largeTiles: transposed || largeTiles, oh: oh, ow: ow, images: images)
        let (tile, positions, th, vt, twp) = (plan.tile, plan.positions, plan.th, plan.vt, plan.twp)
        let u = try winogradPanels(weight, transposed: transposed, tile: tile, op)
        let (y, yb) = try empty(out, op)
        // A chunk of images, or of one image a band of tile rows, whose V and M fit the budget;
        // bands and chunks of even sizes (28 tile rows as 14 + 14, not 18 + 10). Where the
        // weights' matrices are larger than that (deep layers on small maps), V and M may grow
        // to their size: every chunk reads all of U, so fewer chunks read less.
        let budget = Swift.min(scratchFloats, Swift.max(OpenCLBackend.winogradChunkFloats, positions * cin * cout))
        let perRow = positions * (cin + cout) * twp
        let rows = evenly(th, Swift.max(1, budget / perRow))
        let chunk = rows < th ? 1 : evenly(images, Swift.max(1, budget / (perRow * th)))
        let defines = packing.defines.merging(["VT": vt, "WNR": packing.nr, "WM": tile]) { a, _ in a }
        let act = (activation.map { [$0.fusedFlag] } ?? []) + (residual == nil ? [] : ["RESIDUAL"])
        try withScratch(op) { scratch in
            // WINOGRAD_EXTRA in winograd.cl: the columns a tile row's last vector reads past its tiles.
            let (hq, wq) = (tile * th + 2, tile * twp + (tile == 4 ? 4 : 2))
            let padded = try scratch("padded", chunk * cin * hq * wq)
            let panels = (chunk * rows * twp + packing.nr - 1) / packing.nr
            let (vStride, mStride) = (winogradSkewed(panels * cin * packing.nr), winogradSkewed(chunk * cout * rows * twp))
            let v = try scratch("winograd input", positions * vStride)
            let products = try scratch("winograd products", positions * mStride)
            for first in stride(from: 0, to: images, by: chunk) {
                let count = Swift.min(chunk, images - first)
                let (inPer, outPer) = (planesPerItem(count * cin), planesPerItem(count * cout))
                try padPlanes(xb, firstPlane: first * cin, into: padded, planes: count * cin, h: h, w: w, hq: hq, wq: wq,
                              padding: padding, stride: (1, 1), phases: 1, mask: mask)
                for ty0 in stride(from: 0, to: th, by: rows) {
                    let band = Swift.min(rows, th - ty0), columns = count * band * twp
                    try launch(.winograd_input(xq: padded, V: v, xiStride: vStride, C: cin, TH: th, TWp: twp, ty0: ty0, rows: band,
                                               planes: count * cin, planesPerItem: inPer),
                               files: ["conv_geometry", "winograd"], defines: defines,
                               global: [(count * cin + inPer - 1) / inPer], local: [1])
                    try packedGemm(u, .panels(v, strideGroup: vStride),
                                   into: PackedResult(products, strideImage: 0, strideGroup: mStride, ldc: columns),
                                   ProductShape(m: cout, n: columns, k: cin, z: positions, groups: positions))
                    try launch(.winograd_output(Mx: products, xiStride: mStride, y: yb, bias: bb ?? products, hasBias: bb == nil ? 0 : 1,
                                                image0: first, Cout: cout, OH: oh, OW: ow, TWp: twp, ty0: ty0, rows: band,
                                                planes: count * cout, planesPerItem: outPer, residual: residual ?? yb),
                               files: ["conv_geometry", "winograd"], defines: defines, flags: act,
                               global: [(count * cout + outPer - 1) / outPer], local: [1])
                }
            }
        }
        return y
    }
}
