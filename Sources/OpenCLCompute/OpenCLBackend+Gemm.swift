import BackendCore
import Device

/// The matrix-multiply engine that convolution, linear and matmul share: the tiled family's
/// `gemm` over gemm.cl (local-memory tiles, split K when the tiles are too few to fill the
/// device) and the register-blocked family's `packedGemm` over gemm_packed.cl (A packed into
/// MR-row panels, B as panels, strided planes or an implicit im2col, one barrier-free
/// microkernel). Callers describe their operands; the engine picks the launch.
extension OpenCLBackend {
    /// A program's files, defines and flags with `storeMask`'s backward applied as its kernel
    /// stores (activation.cl added, STORE_MASK with GRAD_KIND and GRAD_RULE), or as given without.
    func storeMaskProgram(_ files: [String], _ defines: [String: Int], _ flags: [String],
                          _ storeMask: GradientMask?) -> ([String], [String: Int], [String]) {
        guard let storeMask else { return (files, defines, flags) }
        return ([files[0], "activation"] + files.dropFirst(),
                defines.merging(["GRAD_KIND": Int(storeMask.kind.rawValue), "GRAD_RULE": Int(storeMask.rule.rawValue)]) { a, _ in a },
                flags + ["STORE_MASK"])
    }

    /// Slices of K for a product whose tiles are too few to fill the device: enough to reach
    /// `splitKGroups` work-groups, each slice at least four TK steps deep, the partial results
    /// within the scratch limit. 1 when the tiles alone fill the device.
    func splitK(m: Int, n: Int, z: Int, k: Int, tiling: GemmTiling) -> Int {
        let groups = (n + tiling.tn - 1) / tiling.tn * ((m + tiling.tm - 1) / tiling.tm) * z
        guard groups < splitKGroups else { return 1 }
        var splits = Swift.min((splitKGroups + groups - 1) / groups, k / (4 * tiling.tk), 256)
        while splits > 1, splits * z * m * n > scratchFloats { splits /= 2 }
        return Swift.max(splits, 1)
    }

    /// C = A B in `call`'s mode of gemm.cl (its file's GEMM_ARGS, A_LOAD, B_LOAD, C_STORE), over
    /// `z` products of m x n from k, with `includes` prepended (conv_geometry for convolutions).
    /// When the tiles are too few to fill the device, K is split into slices summed afterwards.
    func gemm(_ call: GemmCall, includes: [String] = [], m: Int, n: Int, k: Int, z: Int, tiling: GemmTiling,
              defines: [String: Int] = [:], flags: [String] = []) throws {
        let files = includes + [call.file, "gemm"]
        let defines = tiling.defines.merging(defines) { a, _ in a }
        let local = tiling.local
        let tiles = [(n + tiling.tn - 1) / tiling.tn * local[0], (m + tiling.tm - 1) / tiling.tm * local[1]]
        let splits = splitK(m: m, n: n, z: z, k: k, tiling: tiling)
        guard splits > 1 else {
            try kernel(files, "gemm_tiled", defines: defines, flags: [call.mode] + flags)
                .launch(global: tiles + [z], local: local, call.arguments)
            return
        }
        try withScratch(call.mode) { scratch in
            let part = try scratch("split-k", splits * z * m * n)
            // GEMM_KERNEL_ARGS under GEMM_SPLIT_K: the mode's arguments, then gemm_part and gemm_splits.
            let args = call.arguments + [.buffer(part), try kernelInt(splits, "gemm_tiled", "gemm_splits")]
            try kernel(files, "gemm_tiled", defines: defines, flags: [call.mode, "GEMM_SPLIT_K"] + flags)
                .launch(global: tiles + [z * splits], local: local, args)
            try kernel(files, "gemm_splitk_reduce", defines: defines, flags: [call.mode, "GEMM_SPLIT_K"] + flags)
                .launch(global: [n, m, z], local: [Swift.min(n, 32), Swift.min(m, 4), 1], args)
        }
    }

    /// `matrix` [rows, cols] (row-major; `transposed`: [cols, rows], its transpose packed) as A
    /// panels [ceil(rows/MR)][cols][MR] in `into`.
    func packRows(_ matrix: Buffer<Float>, into panels: Buffer<Float>, rows: Int, cols: Int, mr: Int,
                  transposed: Bool = false) throws {
        let (sm, sk) = transposed ? (1, rows) : (cols, 1)
        try launch(.pack_a(src: matrix, A: panels, M: rows, K: cols, sg: 0, sm: sm, sk: sk, window: 1),
                   files: ["conv_geometry", "gemm_packed"], defines: mr == packing.mr ? packing.defines : ["MR": mr],
                   global: [cols, (rows + mr - 1) / mr, 1], local: [Swift.min(cols, 16), 1, 1])
    }

    /// `weight` as A panels [G][ceil(m/MR)][k][MR], where row r, column c of group g is
    /// weight[g * sg + r * sm + (c / window) * sk + window - 1 - c % window] (window 1: a plain
    /// strided matrix); packed on the device once per weight tensor and layout.
    /// With `mr`, panels of that many rows instead of the register block's (`packedGemm`'s
    /// transposed products want one row per vector lane).
    func packedPanels(_ weight: Tensor, layout: String, m: Int, k: Int, groups: Int, sg: Int, sm: Int, sk: Int, window: Int = 1,
                      mr: Int? = nil, _ op: String) throws -> Buffer<Float> {
        guard let storage = weight.storage as? OpenCLStorage else { throw BackendError(op, "weight \(weight.shape) is not on \(name)") }
        let mr = mr ?? packing.mr
        return try storage.derived("\(layout) \(mr)") {
            let mb = (m + mr - 1) / mr
            let panels = try Buffer<Float>(context: context, count: groups * mb * k * mr)
            try launch(.pack_a(src: storage.buffer, A: panels, M: m, K: k, sg: sg, sm: sm, sk: sk, window: window),
                       files: ["conv_geometry", "gemm_packed"], defines: mr == packing.mr ? packing.defines : ["MR": mr],
                       global: [k, mb, groups], local: [Swift.min(k, 16), 1, 1])
            return panels
        }
    }

    /// The shortest K for which a transposed product's lane-by-lane stores pay. MobileNetV2's 7x7
    /// layers at batch 1 on PoCL here, device ms plain / transposed: 576->160 0.093 / 0.070,
    /// 960->160 0.15 / 0.105, 960->320 0.28 / 0.20; but 160->960 0.13 / 0.15-0.22 and 320->1280
    /// 0.32 / 0.33.
    static let transposedMinimumK = 512

    /// Columns per work-item block of a transposed product (`packedGemm`'s `transposedColumns`)
    /// for C [m, n] = A [m, k] B [k, n] with `groups` 1, or nil where the plain product does as
    /// well: where blocks of NR columns would compute at least 15% more columns than n (7x7 maps:
    /// 64 for 49), rows in blocks of NR waste less, n is a multiple of 8, 7, 6 or 5, and k is at
    /// least `transposedMinimumK`.
    func transposedColumns(m: Int, n: Int, k: Int, groups: Int) -> Int? {
        let nr = packing.nr, round = { ($0 + nr - 1) / nr * nr }
        guard groups == 1, m > 0, n > 0, k >= OpenCLBackend.transposedMinimumK, round(n) * 100 >= n * 115,
              round(m) * n < round(n) * m else { return nil }
        return columnBlock(n)
    }

    /// Columns per work-item block of a transposed product over `n` columns: 8, 7, 6 or 5,
    /// whichever divides n first; nil where none does.
    func columnBlock(_ n: Int) -> Int? { [8, 7, 6, 5].first { n % $0 == 0 } }

    /// Where gemm_packed reads B: panels (per chunk) or an NCHW tensor's planes in place.
    enum PackedOperand {
        /// Panels [z][ceil(n/NR)][k][NR] of the current chunk, `strideGroup` floats from one
        /// group's to the next (default: packed, ceil(n/NR) k NR).
        case panels(Buffer<Float>, strideGroup: Int? = nil)
        /// Image i, group g's [k][n] matrix at buffer + i * strideImage + g * strideGroup, rows n apart.
        case planes(Buffer<Float>, firstImage: Int, strideImage: Int, strideGroup: Int)
        /// The im2col matrix of a convolution over zero-padded planes split into stride phases
        /// (rows of `row` floats, `plane` floats a channel, all phases), read in place;
        /// `geometry` holds the window's defines, `outWidth` the output's columns.
        case implicit(Buffer<Float>, strideImage: Int, strideGroup: Int, row: Int, plane: Int, outWidth: Int, geometry: [String: Int],
                      offset: Int = 0)
    }

    /// A depthwise layer that each work-item of a channel-blocked product runs over the blocks it
    /// stored (gemm_packed.cl's DEPTHWISE_AFTER): the product's C is its h x w input, `output`
    /// its channel-blocked result.
    struct BlockedDepthwise {
        var weight: Buffer<Float>, bias: Buffer<Float>, output: Buffer<Float>
        var h: Int, w: Int, oh: Int, ow: Int, geometry: [String: Int]
    }

    /// The sizes of a packed product: `z` (image, group) pairs, `groups` per image, each
    /// C [m, n] = A [m, k] B [k, n].
    struct ProductShape {
        var m: Int, n: Int, k: Int, z: Int, groups: Int
    }

    /// Where gemm_packed stores C: pair z's [m, n] block at
    /// buffer + (firstImage + z / groups) * strideImage + (z % groups) * strideGroup, rows `ldc`
    /// apart. With an implicit B, output pixel (oy, ox) of a row goes to
    /// offset + oy * rowStride + ox * colStride instead (default: a dense map).
    struct PackedResult {
        var buffer: Buffer<Float>
        var firstImage = 0, strideImage: Int, strideGroup: Int, ldc: Int
        var offset = 0, rowStride: Int? = nil, colStride = 1

        init(_ buffer: Buffer<Float>, firstImage: Int = 0, strideImage: Int, strideGroup: Int, ldc: Int,
             offset: Int = 0, rowStride: Int? = nil, colStride: Int = 1) {
            self.buffer = buffer; self.firstImage = firstImage; self.strideImage = strideImage; self.strideGroup = strideGroup
            self.ldc = ldc; self.offset = offset; self.rowStride = rowStride; self.colStride = colStride
        }
    }

    /// C = A B for A panels `a` (see gemm_packed.cl) and B as `b` describes it, stored as `c`
    /// describes, plus `bias` per row (per column with `biasColumns`: a linear layer's), through
    /// `activation` as it is stored. With `storeMask` (panels or planes only), C is the gradient
    /// of its activation's output and goes through that activation's backward as it is stored.
    /// With `transposedColumns` (`transposedColumns(m:n:k:groups:)`; `b` planes, row bias), `a`
    /// holds panels of NR rows and each work-item computes a block of that many
    /// rows (the vector lanes) by `transposedColumns` columns (gemm_packed.cl's GEMM_TRANSPOSED).
    /// A transposed product may read its planes (`blockedInput`) or store C (`blockedOutput`,
    /// `m` a multiple of VW, no residual or mask) in the channel-blocked layout [k / VW][n][VW],
    /// and then run `depthwise` over what it stored (`blockedOutput`, one work-item per row block).
    func packedGemm(_ a: Buffer<Float>, _ b: PackedOperand, into c: PackedResult, _ shape: ProductShape, bias: Buffer<Float>? = nil,
                    biasColumns: Bool = false, activation: Activation? = nil, storeMask: GradientMask? = nil,
                    residual: Buffer<Float>? = nil, transposedColumns: Int? = nil, blockedInput: Bool = false,
                    blockedOutput: Bool = false, depthwise: BlockedDepthwise? = nil) throws {
        let (m, n, k, z, groups) = (shape.m, shape.n, shape.k, shape.z, shape.groups)
        let mb = (m + packing.mr - 1) / packing.mr, nb = (n + packing.nr - 1) / packing.nr
        let source: Buffer<Float>, bArgs: (image0: Int, strideImage: Int, strideGroup: Int, ldb: Int)
        var flags: [String]
        var defines = packing.defines, planeSize = 0, outWidth = 0, bOffset = 0
        switch b {
        case let .panels(buffer, strideGroup):
            let panel = strideGroup ?? nb * k * packing.nr
            (source, bArgs, flags) = (buffer, (0, groups * panel, panel, packing.nr), [])
        case let .planes(buffer, first, strideImage, strideGroup):
            (source, bArgs, flags) = (buffer, (first, strideImage, strideGroup, n), ["B_ROWMAJOR"])
        case let .implicit(buffer, strideImage, strideGroup, row, plane, width, geometry, offset):
            (source, bArgs, flags) = (buffer, (0, strideImage, strideGroup, row), ["B_IMPLICIT"])
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
        if residual != nil { flags.append("RESIDUAL") }
        var perItem = Swift.min(nb, Swift.max(1, (m > n ? 2048 : 1024) / Swift.max(k, 1)))
        while perItem > 1, mb * ((nb + perItem - 1) / perItem) * z < 64 { perItem -= 1 }
        var global = [mb, (nb + perItem - 1) / perItem, z]
        if let tp = transposedColumns {
            guard case .planes = b, !biasColumns, tp > 0, n % tp == 0 else {
                throw BackendError("gemm_packed", "a transposed product needs planes, a row bias and \(n) columns in blocks of \(tp)")
            }
            flags = ["GEMM_TRANSPOSED"] + flags.filter { $0 != "B_ROWMAJOR" }
            defines.merge(["MR": packing.nr, "TP": tp]) { _, new in new }
            // A work-item's rows across all the columns: its stores (lane by lane, ldc apart)
            // then fill whole cache lines alone; a work-item per block of TP columns left
            // MobileNetV2's 160->960 7x7 layers at twice the time of the plain product.
            perItem = n / tp
            let rowBlocks = (m + packing.nr - 1) / packing.nr
            if blockedInput || blockedOutput {
                guard !blockedOutput || (m % packing.vw == 0 && residual == nil && storeMask == nil) else {
                    throw BackendError("gemm_packed", "a channel-blocked store needs \(m) rows in blocks of \(packing.vw), no residual or mask")
                }
                if blockedInput { flags.append("B_BLOCKED") }
                if blockedOutput { flags.append("C_BLOCKED") }
                // Blocked stores are whole vectors, so columns may split across work-items: at
                // least about 16 of them, each at least 64 columns.
                let parts = Swift.max(1, 16 / Swift.max(1, rowBlocks * z))
                perItem = Swift.min(n / tp, Swift.max((64 + tp - 1) / tp, (n / tp + parts - 1) / parts))
            }
            if let depthwise {
                guard blockedOutput else { throw BackendError("gemm_packed", "a depthwise layer after the product needs its blocked store") }
                flags.append("DEPTHWISE_AFTER")
                defines.merge(depthwise.geometry.merging(["DWB": packing.vw]) { a, _ in a }) { _, new in new }
                perItem = n / tp
            }
            global = [rowBlocks, (n / tp + perItem - 1) / perItem, z]
        } else if blockedInput || blockedOutput || depthwise != nil {
            throw BackendError("gemm_packed", "the channel-blocked layout needs a transposed product")
        }
        let (files, allDefines, allFlags) = storeMaskProgram(["conv_geometry"] + (depthwise == nil ? [] : ["depthwise_blocked"]) + ["gemm_packed"],
                                                             defines, flags, storeMask)
        try launch(.gemm_packed(A: a, B: source, C: c.buffer, bias: bias ?? a, hasBias: bias == nil ? 0 : 1, M: m, N: n, K: k, G: groups,
                                bImage0: bArgs.image0, bStrideImage: bArgs.strideImage, bStrideGroup: bArgs.strideGroup, ldb: bArgs.ldb,
                                bCount: source.count, image0: c.firstImage, strideImage: c.strideImage, strideGroup: c.strideGroup,
                                ldc: c.ldc, blocksPerItem: perItem, planeSize: planeSize, outWidth: outWidth, bOffset: bOffset,
                                cOffset: c.offset, cRowStride: c.rowStride ?? outWidth, cColStride: c.colStride,
                                storeMask: try storeMask.map { try buffer($0.output, "gemm_packed") } ?? c.buffer,
                                residual: residual ?? c.buffer, dwWeight: depthwise?.weight ?? a, dwBias: depthwise?.bias ?? a,
                                dwOut: depthwise?.output ?? c.buffer, dwH: depthwise?.h ?? 0, dwW: depthwise?.w ?? 0,
                                dwOH: depthwise?.oh ?? 0, dwOW: depthwise?.ow ?? 0),
                   files: files, defines: allDefines, flags: allFlags, global: global, local: [1, 1, 1])
    }
}
