import BackendCore
import Device

// Concatenation, split (channels.cl) and permutation (layout.cl) on the device.
extension OpenCLBackend {
    private func copyChannels(_ src: Buffer<Float>, srcC: Int, srcOffset: Int, _ dst: Buffer<Float>, dstC: Int,
                              dstOffset: Int, count: Int, n: Int, hw: Int) throws {
        try launch(.copy_channels(src: src, srcC: srcC, srcOffset: srcOffset, dst: dst, dstC: dstC, dstOffset: dstOffset,
                                  count: count, HW: hw),
                   global: [quads(count * hw), n])
    }

    public func concat(_ parts: [Tensor]) throws -> Tensor {
        let out = try ShapeRules.concat("concat", parts.map(\.shape))
        let (n, c, h, w) = out.nchw!
        let (y, yb) = try empty(out, "concat")
        var offset = 0
        for p in parts {
            try copyChannels(try buffer(p, "concat"), srcC: p.shape[1], srcOffset: 0, yb, dstC: c, dstOffset: offset,
                             count: p.shape[1], n: n, hw: h * w)
            offset += p.shape[1]
        }
        return y
    }

    public func split(_ x: Tensor, sizes: [Int]) throws -> [Tensor] {
        try ShapeRules.split("split", x.shape, sizes: sizes)
        let (n, c, h, w) = x.shape.nchw!
        let xb = try buffer(x, "split")
        var offset = 0
        return try sizes.map { size in
            let (part, pb) = try empty([n, size, h, w], "split")
            try copyChannels(xb, srcC: c, srcOffset: offset, pb, dstC: size, dstOffset: 0, count: size, n: n, hw: h * w)
            offset += size
            return part
        }
    }

    public func permute(_ x: Tensor, _ perm: [Int]) throws -> Tensor {
        let (out, strides) = try ShapeRules.permute("permute", x.shape, perm)
        let xb = try buffer(x, "permute")
        let (y, yb) = try empty(out, "permute")
        guard out.count > 0 else { return y }
        let pad = 6 - out.rank
        let dims = [Int](repeating: 1, count: pad) + out.dims, inStrides = [Int](repeating: 0, count: pad) + strides
        try launch(.permute(x: xb, y: yb, d1: dims[1], d2: dims[2], d3: dims[3], d4: dims[4], d5: dims[5], s0: inStrides[0],
                            s1: inStrides[1], s2: inStrides[2], s3: inStrides[3], s4: inStrides[4], s5: inStrides[5]),
                   global: [(dims[5] + 15) / 16, out.count / dims[5]])
        return y
    }
}
