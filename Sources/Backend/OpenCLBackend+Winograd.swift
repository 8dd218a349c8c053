import Device

/// 3x3 stride-1 convolutions of the register-blocked family as Winograd F(2x2, 3x3)
/// (winograd.cl): the input transformed into 16 matrices V[xi] (channels x 2x2 tiles, as
/// gemm_packed's B panels), multiplied by the transformed weights U[xi] in one gemm_packed launch
/// (the 16 positions as its groups), and the products transformed back into the output. 2.25x
/// fewer multiplies than the direct product, for two passes over 4x the input's and output's
/// size, kept in cache a chunk of images (or a band of one image's tile rows) at a time. The
/// backward to the input of the same layers is the same path (a stride-1 3x3 convolution of the
/// gradient with the reversed, transposed window). F(4x4, 3x3) (4x fewer multiplies) ran
/// ResNet18's 3x3 products 1.4x faster at batch 8 but is less exact: its forward moved
/// DenseNet121's and Inception v3's input gradients (through max-pool and ReLU choices) 8-12x
/// past the PyTorch fixtures' 1e-3 bound, so it was left.
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

    /// The 16 transformed weight matrices U[xi] = G g G^T as gemm_packed's A panels, packed once
    /// per weight tensor: forward (rows Cout, columns Cin) or, `transposed`, the backward to the
    /// input's (rows Cin, columns Cout, each window reversed).
    private func winogradPanels(_ weight: Tensor, transposed: Bool, _ op: String) throws -> Buffer<Float> {
        guard let storage = weight.storage as? OpenCLStorage else { throw BackendError(op, "weight \(weight.shape) is not on \(name)") }
        let (cout, cin) = (weight.shape[0], weight.shape[1])
        let (m, k) = transposed ? (cin, cout) : (cout, cin)
        let (sm, sk) = transposed ? (9, cin * 9) : (cin * 9, 9)
        return try storage.derived("winograd \(transposed ? "transposed" : "forward") \(packing.mr)") {
            let mb = (m + packing.mr - 1) / packing.mr
            let panels = try Buffer<Float>(context: context, count: 16 * mb * k * packing.mr)
            try kernel(["conv_geometry", "winograd"], "winograd_pack_a", defines: packing.defines).launch(
                global: [k, mb], local: [Swift.min(k, 16), 1],
                [.buffer(storage.buffer), .buffer(panels), .int(m), .int(k), .int(sm), .int(sk), .int(transposed ? 1 : 0)])
            return panels
        }
    }

    /// y = conv(x) with a 3x3 window at stride 1 (`winogradApplies`), padding `padding`: the
    /// forward (`transposed` false: x [N, Cin, H, W], weight [Cout, Cin, 3, 3]) or the backward
    /// to the input (`transposed`: x is dL/dy [N, Cout, H, W], the weight read reversed and
    /// transposed, padding 2 - P).
    func winogradConvolution(_ xb: Buffer<Float>, _ xShape: Shape, weight: Tensor, transposed: Bool, bias bb: Buffer<Float>?,
                             padding: (h: Int, w: Int), out: Shape, activation: Activation? = nil, _ op: String) throws -> Tensor {
        let (images, cin, h, w) = xShape.nchw!
        let cout = out[1], (oh, ow) = (out[2], out[3])
        let th = (oh + 1) / 2, tw = (ow + 1) / 2
        // Tiles a vector (4 or 8), whichever pads a tile row the least (ties: 8): 28 tiles go
        // as 7 x 4, 14 as 2 x 8; V and M rows hold twp tiles, the padding's products unstored.
        let vt = (tw + 3) / 4 * 4 < (tw + 7) / 8 * 8 ? 4 : 8, twp = (tw + vt - 1) / vt * vt
        let u = try winogradPanels(weight, transposed: transposed, op)
        let (y, yb) = try empty(out, op)
        // A chunk of images, or of one image a band of tile rows, whose V and M fit the budget;
        // bands and chunks of even sizes (28 tile rows as 14 + 14, not 18 + 10). Where the
        // weights' 16 matrices are larger than that (deep layers on small maps), V and M may grow
        // to their size: every chunk reads all of U, so fewer chunks read less.
        let budget = Swift.min(scratchFloats, Swift.max(OpenCLBackend.winogradChunkFloats, 16 * cin * cout))
        let perRow = 16 * (cin + cout) * twp
        let rows = evenly(th, Swift.max(1, budget / perRow))
        let chunk = rows < th ? 1 : evenly(images, Swift.max(1, budget / (perRow * th)))
        let defines = packing.defines.merging(["VT": vt, "WNR": packing.nr]) { a, _ in a }
        let act = activation.map { [$0.fusedFlag] } ?? []
        try withScratch(op) { scratch in
            let (hq, wq) = (2 * th + 2, 2 * twp + 2)
            let padded = try scratch("padded", chunk * cin * hq * wq)
            let panels = (chunk * rows * twp + packing.nr - 1) / packing.nr
            let v = try scratch("winograd input", 16 * panels * cin * packing.nr)
            let products = try scratch("winograd products", chunk * 16 * cout * rows * twp)
            for first in stride(from: 0, to: images, by: chunk) {
                let count = Swift.min(chunk, images - first)
                let (inPer, outPer) = (planesPerItem(count * cin), planesPerItem(count * cout))
                try padPlanes(xb, firstPlane: first * cin, into: padded, planes: count * cin, h: h, w: w, hq: hq, wq: wq,
                              padding: padding, stride: (1, 1), phases: 1)
                for ty0 in stride(from: 0, to: th, by: rows) {
                    let band = Swift.min(rows, th - ty0), columns = count * band * twp
                    try kernel(["conv_geometry", "winograd"], "winograd_input", defines: defines).launch(
                        global: [(count * cin + inPer - 1) / inPer], local: [1],
                        [.buffer(padded), .buffer(v), .int(cin), .int(th), .int(twp), .int(ty0), .int(band), .int(count * cin),
                         .int(inPer)])
                    try packedGemm(u, .panels(v), products, bias: nil, m: cout, n: columns, k: cin, z: 16, groups: 16, firstImage: 0,
                                   strideImage: 0, strideGroup: cout * columns, ldc: columns)
                    try kernel(["conv_geometry", "winograd"], "winograd_output", defines: defines, flags: act).launch(
                        global: [(count * cout + outPer - 1) / outPer], local: [1],
                        [.buffer(products), .buffer(yb), .buffer(bb ?? products), .int(bb == nil ? 0 : 1), .int(first), .int(cout),
                         .int(oh), .int(ow), .int(twp), .int(ty0), .int(band), .int(count * cout), .int(outPer)])
                }
            }
        }
        return y
    }
}
