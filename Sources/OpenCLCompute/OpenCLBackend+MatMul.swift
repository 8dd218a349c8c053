import BackendCore
import Device

extension OpenCLBackend {
    /// CPU devices (the register-blocked family): `packedMatmul`; GPUs: gemm.cl's tiled kernel
    /// over Z (matmul.cl).
    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) throws -> Tensor {
        let op = "matmul"
        let (z, m, k, n) = try ShapeRules.matmul(op, a.shape, b.shape, transposeA: transposeA, transposeB: transposeB)
        guard k > 0 else { return try tensor([Float](repeating: 0, count: z * m * n), [z, m, n]) }
        _ = try buffer(a, op)
        _ = try buffer(b, op)
        let (c, cb) = try empty([z, m, n], op)
        guard z > 0, m > 0, n > 0 else { return c }
        try kernels.matmul(self, a, b, c: cb, z: z, m: m, k: k, n: n, transposeA: transposeA, transposeB: transposeB)
        return c
    }

    /// The register-blocked family's products: each a[z] packed into MR-row panels (pack_a reads
    /// it transposed or not through its strides), b[z] read in place as a row-major [K, N]
    /// matrix (a transposed b permuted first), all Z products in one gemm_packed launch with one
    /// A panel set per batch index.
    func packedMatmul(_ a: Tensor, _ b: Tensor, c cb: Buffer<Float>, z: Int, m: Int, k: Int, n: Int,
                      transposeA: Bool, transposeB: Bool) throws {
        let op = "matmul"
        let ab = try buffer(a, op)
        let rowMajor = transposeB ? try permute(b, [0, 2, 1]) : b
        let bb = try buffer(rowMajor, op)
        let mr = packing.mr, blocks = (m + mr - 1) / mr
        try withScratch(op) { scratch in
            let panels = try scratch("rows", z * blocks * mr * k)
            try launch(.pack_a(src: ab, A: panels, M: m, K: k, sg: m * k, sm: transposeA ? 1 : k, sk: transposeA ? m : 1,
                               window: 1),
                       files: ["conv_geometry", "gemm_packed"], defines: packing.defines, global: [k, blocks, z],
                       local: [Swift.min(k, 16), 1, 1])
            try packedGemm(panels, .planes(bb, firstImage: 0, strideImage: 0, strideGroup: k * n),
                           into: PackedResult(cb, strideImage: 0, strideGroup: m * n, ldc: n),
                           ProductShape(m: m, n: n, k: k, z: z, groups: z))
        }
    }

    /// The tiled family's products: gemm.cl over Z (matmul.cl).
    func tiledMatmul(_ a: Tensor, _ b: Tensor, c cb: Buffer<Float>, z: Int, m: Int, k: Int, n: Int,
                     transposeA: Bool, transposeB: Bool) throws {
        try gemm(.MATMUL(a: try buffer(a, "matmul"), b: try buffer(b, "matmul"), c: cb, transA: transposeA ? 1 : 0,
                         transB: transposeB ? 1 : 0, M: m, N: n, K: k),
                 m: m, n: n, k: k, z: z, tiling: n < 32 ? .narrow : .large)
    }
}
