import Backend
import Testing
import TestSupport

struct ConvCase: Sendable, CustomTestStringConvertible {
    let n, cin, cout, h, w, k, stride, pad, dilation, groups: Int
    let bias: Bool
    var testDescription: String {
        "x[\(n),\(cin),\(h),\(w)] w[\(cout),\(cin / groups),\(k),\(k)] s\(stride) p\(pad) d\(dilation) g\(groups)\(bias ? " +b" : "")"
    }
    var params: Conv2DParams { Conv2DParams(stride: stride, padding: pad, dilation: dilation, groups: groups) }
    var xShape: Shape { [n, cin, h, w] }
    var wShape: Shape { [cout, cin / groups, k, k] }
}

/// Awkward settings on purpose: 1x1 and 7x7 spatial, channel counts that are not multiples of 4,
/// stride 2 on odd sizes, padding, dilation, groups, depthwise, batch 1 and 3, more output
/// channels than one tile. Strided windows with few input channels take the register-blocked
/// backward's stacked phases (7x7 at stride 2 on a 7x7 map, 5x5, 3x3 with 2 and 1 channels a
/// group; tools/mutants/run.py's merged-phases-columns-swapped is caught) or, where stacking
/// would do more than twice the work (stride 3, dilation 2 at stride 2), col2im.
let convCases: [ConvCase] = [
    ConvCase(n: 1, cin: 3, cout: 5, h: 7, w: 7, k: 3, stride: 1, pad: 1, dilation: 1, groups: 1, bias: true),
    ConvCase(n: 3, cin: 4, cout: 6, h: 7, w: 6, k: 3, stride: 2, pad: 1, dilation: 1, groups: 2, bias: true),
    ConvCase(n: 1, cin: 5, cout: 7, h: 1, w: 1, k: 1, stride: 1, pad: 0, dilation: 1, groups: 1, bias: false),
    ConvCase(n: 2, cin: 6, cout: 6, h: 9, w: 9, k: 3, stride: 1, pad: 2, dilation: 2, groups: 6, bias: true),
    ConvCase(n: 1, cin: 8, cout: 16, h: 8, w: 7, k: 3, stride: 2, pad: 1, dilation: 1, groups: 8, bias: false),
    ConvCase(n: 3, cin: 7, cout: 70, h: 11, w: 13, k: 5, stride: 2, pad: 2, dilation: 1, groups: 1, bias: true),
    ConvCase(n: 1, cin: 2, cout: 3, h: 5, w: 4, k: 2, stride: 1, pad: 0, dilation: 1, groups: 1, bias: true),
    ConvCase(n: 2, cin: 9, cout: 3, h: 1, w: 1, k: 3, stride: 1, pad: 1, dilation: 1, groups: 1, bias: true),
    ConvCase(n: 1, cin: 3, cout: 4, h: 7, w: 7, k: 7, stride: 2, pad: 3, dilation: 1, groups: 1, bias: true),
    ConvCase(n: 1, cin: 20, cout: 66, h: 10, w: 9, k: 3, stride: 1, pad: 1, dilation: 1, groups: 1, bias: false),
    // Deep K on few tiles (split K in the tiled family): a 7x7 map with 288 / 360 deep forward /
    // backward-input sums, and a weight gradient summed over 432 pixels; slices end inside K.
    ConvCase(n: 2, cin: 32, cout: 40, h: 7, w: 7, k: 3, stride: 1, pad: 1, dilation: 1, groups: 1, bias: true),
    ConvCase(n: 3, cin: 4, cout: 8, h: 12, w: 12, k: 3, stride: 1, pad: 1, dilation: 1, groups: 1, bias: false),
    // Pointwise (the register-blocked family reads the input and gradient in place): a width
    // that is no multiple of the block, so the last block reads past rows and up to the buffer's end.
    ConvCase(n: 2, cin: 12, cout: 19, h: 5, w: 7, k: 1, stride: 1, pad: 0, dilation: 1, groups: 1, bias: true),
    ConvCase(n: 3, cin: 8, cout: 10, h: 6, w: 6, k: 1, stride: 1, pad: 0, dilation: 1, groups: 2, bias: false),
    // Wide rows with stride 1: whole panel rows are vector copies.
    ConvCase(n: 2, cin: 3, cout: 9, h: 5, w: 37, k: 3, stride: 1, pad: 1, dilation: 1, groups: 1, bias: true),
    // Stride 1 on maps 14 or more wide (read in place from the padded input): groups, dilation,
    // a 5x5 window, batch 2.
    ConvCase(n: 2, cin: 6, cout: 4, h: 9, w: 16, k: 3, stride: 1, pad: 2, dilation: 2, groups: 2, bias: true),
    ConvCase(n: 2, cin: 5, cout: 13, h: 6, w: 15, k: 5, stride: 1, pad: 1, dilation: 1, groups: 1, bias: false),
    // Depthwise (the direct kernels): stride 2 on odd and even sizes, 5x5, batch 3.
    ConvCase(n: 3, cin: 5, cout: 5, h: 8, w: 9, k: 3, stride: 2, pad: 1, dilation: 1, groups: 5, bias: true),
    ConvCase(n: 1, cin: 4, cout: 4, h: 7, w: 7, k: 5, stride: 2, pad: 2, dilation: 1, groups: 4, bias: false),
    ConvCase(n: 2, cin: 3, cout: 3, h: 1, w: 1, k: 3, stride: 1, pad: 1, dilation: 1, groups: 3, bias: true),
    // Depthwise rows wider than one vector, unpadded and padded, stride 1 and 2.
    ConvCase(n: 2, cin: 4, cout: 4, h: 5, w: 21, k: 3, stride: 1, pad: 1, dilation: 1, groups: 4, bias: true),
    ConvCase(n: 1, cin: 3, cout: 3, h: 6, w: 19, k: 3, stride: 1, pad: 0, dilation: 1, groups: 3, bias: false),
    ConvCase(n: 1, cin: 2, cout: 2, h: 7, w: 23, k: 3, stride: 2, pad: 1, dilation: 1, groups: 2, bias: false),
    // Enough rows times planes that depthwise_rows gives a work-item several rows (3 of the 31
    // output rows each, the last item one), stride 1 and 2.
    ConvCase(n: 2, cin: 16, cout: 16, h: 31, w: 37, k: 3, stride: 1, pad: 1, dilation: 1, groups: 16, bias: true),
    ConvCase(n: 2, cin: 16, cout: 16, h: 61, w: 37, k: 3, stride: 2, pad: 1, dilation: 1, groups: 16, bias: false),
    // Narrow maps: depthwise_rows' part vectors stored whole into the next row (14 wide, a whole
    // plane a work-item; rows of 5, the overrun three floats of the next).
    ConvCase(n: 4, cin: 144, cout: 144, h: 14, w: 14, k: 3, stride: 1, pad: 1, dilation: 1, groups: 144, bias: true),
    ConvCase(n: 3, cin: 25, cout: 25, h: 7, w: 5, k: 3, stride: 1, pad: 1, dilation: 1, groups: 25, bias: false),
    // Several whole planes a work-item on a small map (262 planes, four a work-item, the last
    // item two), forward and the backward's upsampled gy at stride 2.
    ConvCase(n: 2, cin: 131, cout: 131, h: 13, w: 13, k: 3, stride: 2, pad: 1, dilation: 1, groups: 131, bias: true),
    // depthwise_rows' ring of padded rows with dilation 2 at stride 2 (seven rows, two output rows
    // a step, 15 of them: the last step one); a row too wide for the ring and stride 3 (the
    // general kernels, forward and backward).
    ConvCase(n: 2, cin: 5, cout: 5, h: 29, w: 29, k: 3, stride: 2, pad: 2, dilation: 2, groups: 5, bias: true),
    ConvCase(n: 1, cin: 2, cout: 2, h: 3, w: 3000, k: 3, stride: 1, pad: 1, dilation: 1, groups: 2, bias: false),
    ConvCase(n: 2, cin: 3, cout: 3, h: 9, w: 20, k: 3, stride: 3, pad: 1, dilation: 1, groups: 3, bias: true),
    // Pointwise on few pixels from many channels: the register-blocked family's transposed
    // product (channels in the vectors, 7 and 5 pixels a block; 40 and 33 channels: a part-filled
    // last vector); the third takes it in its backward to the input (40 input channels from 520
    // outputs), through the masks of the backward tests.
    ConvCase(n: 2, cin: 520, cout: 40, h: 7, w: 7, k: 1, stride: 1, pad: 0, dilation: 1, groups: 1, bias: true),
    ConvCase(n: 3, cin: 515, cout: 33, h: 4, w: 5, k: 1, stride: 1, pad: 0, dilation: 1, groups: 1, bias: false),
    ConvCase(n: 2, cin: 40, cout: 520, h: 7, w: 7, k: 1, stride: 1, pad: 0, dilation: 1, groups: 1, bias: true),
    // Stride 2 with dilation 2 (every tap in one stride phase) and stride 3 (nine phases), read
    // in place from the phase planes.
    ConvCase(n: 2, cin: 3, cout: 5, h: 11, w: 40, k: 3, stride: 2, pad: 2, dilation: 2, groups: 1, bias: true),
    ConvCase(n: 1, cin: 4, cout: 7, h: 13, w: 14, k: 3, stride: 3, pad: 1, dilation: 1, groups: 1, bias: false),
    // Padding beyond the window at stride 1 with few channels: the backward's transposed
    // padding is negative, so it goes by the stacked phases (one phase, gy offsets 1 to 3).
    ConvCase(n: 2, cin: 3, cout: 5, h: 6, w: 7, k: 3, stride: 1, pad: 3, dilation: 1, groups: 1, bias: false),
]

/// 16 or more input channels a group: the register-blocked backward to the input goes by
/// stride phases (one stride-1 product per phase, stored into its pixels of dL/dx): odd and
/// even sizes, groups, a 1x1 window at stride 2 and 3 (the forward reads phase 0 alone; in the
/// backward the other phases get no tap), 5x5, stride 3,
/// dilation 3 at stride 2 (a phase's taps two apart: a dilated window of its own), and
/// padding beyond the window at stride 1 (negative transposed padding).
let phasedConvCases: [ConvCase] = [
    ConvCase(n: 2, cin: 16, cout: 12, h: 9, w: 10, k: 3, stride: 2, pad: 1, dilation: 1, groups: 1, bias: true),
    ConvCase(n: 1, cin: 32, cout: 8, h: 8, w: 7, k: 3, stride: 2, pad: 1, dilation: 1, groups: 2, bias: false),
    ConvCase(n: 2, cin: 17, cout: 9, h: 7, w: 8, k: 1, stride: 2, pad: 0, dilation: 1, groups: 1, bias: false),
    ConvCase(n: 2, cin: 32, cout: 6, h: 9, w: 8, k: 1, stride: 3, pad: 0, dilation: 1, groups: 2, bias: true),
    ConvCase(n: 1, cin: 18, cout: 6, h: 11, w: 12, k: 5, stride: 2, pad: 2, dilation: 1, groups: 1, bias: false),
    ConvCase(n: 1, cin: 16, cout: 7, h: 13, w: 14, k: 3, stride: 3, pad: 1, dilation: 1, groups: 1, bias: false),
    ConvCase(n: 1, cin: 16, cout: 4, h: 13, w: 15, k: 3, stride: 2, pad: 3, dilation: 3, groups: 1, bias: false),
    ConvCase(n: 1, cin: 16, cout: 4, h: 5, w: 6, k: 1, stride: 1, pad: 1, dilation: 1, groups: 1, bias: false),
]

/// 3x3 windows at stride 1 with 16 or more channels both ways: the register-blocked family runs
/// them as Winograd, the forward as F(2x2, 3x3), the backward to the input as F(4x4, 3x3) unless
/// that would do more work (here the 6x5 and 1x1 maps' backward go by F(2x2) too). Odd output
/// sizes (a last tile partly outside), padding 0 and 2 (backward: 2 and 0), F(2x2)'s tile rows in
/// vectors of 4 tiles (9 padded to 12, 4, 3, 1) and of 8 (24; 30 padded to 32), F(4x4)'s in
/// vectors of 2 (5 padded to 6; 2; a 3x3 map's one tile padded to 2), 4 (12; 4) and 8 (15
/// padded to 16), output rows ending in a part of a vector (by fours, then one by one), more
/// than 256 planes (a transform's work-item takes two, the last one), batch 3 and 8. Checked to
/// fail with F(4x4)'s input transform's last row, the 2-tile row's last column and an output
/// coefficient (8 for 4) changed.
let winogradConvCases: [ConvCase] = [
    ConvCase(n: 3, cin: 16, cout: 17, h: 9, w: 20, k: 3, stride: 1, pad: 0, dilation: 1, groups: 1, bias: true),
    ConvCase(n: 1, cin: 24, cout: 16, h: 6, w: 5, k: 3, stride: 1, pad: 2, dilation: 1, groups: 1, bias: false),
    ConvCase(n: 2, cin: 16, cout: 16, h: 5, w: 48, k: 3, stride: 1, pad: 1, dilation: 1, groups: 1, bias: true),
    ConvCase(n: 2, cin: 16, cout: 20, h: 10, w: 59, k: 3, stride: 1, pad: 1, dilation: 1, groups: 1, bias: true),
    ConvCase(n: 3, cin: 91, cout: 87, h: 5, w: 6, k: 3, stride: 1, pad: 1, dilation: 1, groups: 1, bias: false),
    ConvCase(n: 2, cin: 16, cout: 24, h: 1, w: 1, k: 3, stride: 1, pad: 1, dilation: 1, groups: 1, bias: false),
    ConvCase(n: 8, cin: 16, cout: 24, h: 3, w: 3, k: 3, stride: 1, pad: 1, dilation: 1, groups: 1, bias: false),
    ConvCase(n: 2, cin: 48, cout: 64, h: 16, w: 16, k: 3, stride: 1, pad: 1, dilation: 1, groups: 1, bias: false),
]

@Suite(.timed) struct ConvTests {
    @Test(arguments: convCases)
    func deviceMatchesReference(_ c: ConvCase) throws {
        guard let device = openCL() else { return }
        // Every kernel family on this device, the register-blocked one with scratch for less than
        // one image (batches go through in chunks), and the tiled one splitting K wherever it can.
        let backends = openCLFamilies() + [OpenCLBackend(context: device.context, family: .registerBlocked, scratchFloats: 64)]
            + openCLSplitK()
        let reference = try Reference(c)
        for gpu in backends {
            try expectConvMatchesReference(c, reference, on: gpu)
        }
    }

    /// The stride-phase path is the register-blocked family's only (the tiled family's code is
    /// the one `deviceMatchesReference` covers), so these cases run there alone.
    @Test(arguments: phasedConvCases)
    func phasedBackwardMatchesReference(_ c: ConvCase) throws {
        guard let device = openCL() else { return }
        let reference = try Reference(c)
        for gpu in [OpenCLBackend(context: device.context, family: .registerBlocked),
                    OpenCLBackend(context: device.context, family: .registerBlocked, scratchFloats: 64)] {
            try expectConvMatchesReference(c, reference, on: gpu)
        }
    }

    /// Winograd is the register-blocked family's only, so these cases run there alone: with
    /// the whole batch in one chunk, and one image a chunk.
    @Test(arguments: winogradConvCases)
    func winogradMatchesReference(_ c: ConvCase) throws {
        guard let device = openCL() else { return }
        let reference = try Reference(c)
        for gpu in [OpenCLBackend(context: device.context, family: .registerBlocked),
                    OpenCLBackend(context: device.context, family: .registerBlocked, scratchFloats: 64)] {
            try expectConvMatchesReference(c, reference, on: gpu)
        }
    }

    /// The CPU reference's results for case `c`, computed once and compared with every backend
    /// the case runs on (each reference convolution used to be recomputed per backend).
    struct Reference {
        let xv: [Float], wv: [Float], bv: [Float], gv: [Float], ov: [Float], xmv: [Float], rv: [Float], out: Shape
        /// Expected values by what they are: "forward", "forward relu", "backward input",
        /// "through relu standard", "plain", "into relu standard", "backward weight", "backward bias".
        var expected: [String: [Float]] = [:]

        init(_ c: ConvCase) throws {
            var rng = SeededRandom(seed: 11)
            xv = rng.floats(c.xShape.count); wv = rng.floats(c.wShape.count); bv = rng.floats(c.cout)
            out = try c.params.outputShape(input: c.xShape, weight: c.wShape)
            gv = rng.floats(out.count)
            ov = rng.floats(out.count).map { 8 * $0 }
            xmv = rng.floats(c.xShape.count).map { 8 * $0 }
            rv = rng.floats(out.count).map { 4 * $0 }
            let (x, w, b, g) = (try cpu.tensor(xv, c.xShape), try cpu.tensor(wv, c.wShape), try cpu.tensor(bv, [c.cout]), try cpu.tensor(gv, out))
            let y = try cpu.conv2d(x, weight: w, bias: c.bias ? b : nil, c.params)
            expected["forward"] = try cpu.values(y)
            let plain = try cpu.conv2dBackwardInput(g, weight: w, inputShape: c.xShape, c.params)
            expected["backward input"] = try cpu.values(plain)
            let sum = try cpu.add(y, try cpu.tensor(rv, out))
            expected["residual"] = try cpu.values(sum)
            for act in Activation.allCases {
                expected["residual \(act)"] = try cpu.values(cpu.activation(sum, act))
                expected["forward \(act)"] = try cpu.values(cpu.activation(y, act))
                let masked = try cpu.activation(try cpu.tensor(ov, out), act)
                let xm = try cpu.activation(try cpu.tensor(xmv, c.xShape), act)
                expected["mask \(act)"] = try cpu.values(masked)
                expected["input mask \(act)"] = try cpu.values(xm)
                for rule in GradientRule.allCases {
                    expected["through \(act) \(rule)"] = try cpu.values(cpu.conv2dBackwardInput(cpu.activationBackward(g, input: masked, act, rule: rule),
                                                                                                  weight: w, inputShape: c.xShape, c.params))
                    expected["into \(act) \(rule)"] = try cpu.values(cpu.activationBackward(plain, input: xm, act, rule: rule))
                }
            }
            expected["backward weight"] = try cpu.values(cpu.conv2dBackwardWeight(g, input: x, weightShape: c.wShape, c.params))
            expected["backward bias"] = try cpu.values(cpu.conv2dBackwardBias(g))
        }
    }

    func expectConvMatchesReference(_ c: ConvCase, on gpu: OpenCLBackend) throws {
        try expectConvMatchesReference(c, try Reference(c), on: gpu)
    }

    func expectConvMatchesReference(_ c: ConvCase, _ r: Reference, on gpu: OpenCLBackend) throws {
        let want = { (key: String) in r.expected[key]! }
        let (dx, dw, db, dg) = (try gpu.tensor(r.xv, c.xShape), try gpu.tensor(r.wv, c.wShape), try gpu.tensor(r.bv, [c.cout]), try gpu.tensor(r.gv, r.out))
        expectClose(try gpu.values(gpu.conv2d(dx, weight: dw, bias: c.bias ? db : nil, c.params)), want("forward"), "\(gpu.family) forward")
        // The activation fused into the store (both families; the tiled one after summing split K).
        for act in Activation.allCases {
            expectClose(try gpu.values(gpu.conv2d(dx, weight: dw, bias: c.bias ? db : nil, c.params, activation: act)), want("forward \(act)"),
                        "\(gpu.family) forward + \(act)")
        }
        // The residual added as the result is stored, before the activation (a residual block's
        // sum); and a pass no backward follows, where a 3x3 window may go by Winograd F(4x4).
        let dr = try gpu.tensor(r.rv, r.out)
        // (Four of the combinations: each is a program of its own to compile per geometry.)
        for (act, residual, forwardOnly) in [(nil, true, false), (.relu6, true, false), (.relu, true, true), (nil, false, true)] as [(Activation?, Bool, Bool)] {
            let key = (residual ? "residual" : "forward") + (act.map { " \($0)" } ?? "")
            expectClose(try gpu.values(gpu.conv2d(dx, weight: dw, bias: c.bias ? db : nil, c.params, activation: act,
                                                  residual: residual ? dr : nil, forwardOnly: forwardOnly)),
                        want(key), "\(gpu.family) \(key)\(forwardOnly ? ", forward only" : "")")
        }
        expectClose(try gpu.values(gpu.conv2dBackwardInput(dg, weight: dw, inputShape: c.xShape, c.params)), want("backward input"),
                    "\(gpu.family) backward input")
        // The backward through a fused activation: its mask read from an output spanning both
        // sides of ReLU6's range, every rule (the register-blocked family applies it as it pads gy).
        for act in Activation.allCases {
            let dmasked = try gpu.tensor(want("mask \(act)"), r.out)
            for rule in GradientRule.allCases {
                let fused = try gpu.conv2dBackwardInput(dg, weight: dw, inputShape: c.xShape, c.params,
                                                        fused: ConvolutionFusion(rule: rule, output: .init(act, dmasked)))
                #expect(!fused.inputMasked)
                expectClose(try gpu.values(fused.gradient), want("through \(act) \(rule)"), "\(gpu.family) backward input through \(act), \(rule)")
            }
        }
        // The backward to an input that a fused activation made, its mask applied as dL/dx is
        // stored: the register-blocked family's pointwise and depthwise convolutions have it
        // (elsewhere the plain gradient, unmasked: the caller leaves the mask to the op that made x).
        let storesMasked = gpu.family == .registerBlocked
            && ((c.k == 1 && c.stride == 1 && c.pad == 0) || (c.groups > 1 && c.groups == c.cin && c.groups == c.cout))
        for act in Activation.allCases {
            let dxm = try gpu.tensor(want("input mask \(act)"), c.xShape)
            for rule in GradientRule.allCases {
                let got = try gpu.conv2dBackwardInput(dg, weight: dw, inputShape: c.xShape, c.params,
                                                      fused: ConvolutionFusion(rule: rule, input: .init(act, dxm)))
                #expect(got.inputMasked == storesMasked, "\(gpu.family) \(c): a masked store where none was expected, or none")
                expectClose(try gpu.values(got.gradient), got.inputMasked ? want("into \(act) \(rule)") : want("backward input"),
                            "\(gpu.family) backward input into \(act), \(rule)")
            }
        }
        expectClose(try gpu.values(gpu.conv2dBackwardWeight(dg, input: dx, weightShape: c.wShape, c.params)), want("backward weight"), "backward weight")
        expectClose(try gpu.values(gpu.conv2dBackwardBias(dg)), want("backward bias"), "backward bias")
    }

    /// An inverted residual's expand and depthwise layers in one launch (the register-blocked
    /// family's expand_depthwise, forward only) against the CPU reference's two convolutions
    /// and activations: rows that end inside a vector (61, 58 and 57 wide), expanded channels
    /// that end inside a work-item's block (14 = 6 + 6 + 2; 7), stride 2, dilation 2, a 5x5
    /// window, batch 2, both activations, expanded values past ReLU6's top. Maps narrower than
    /// `expandDepthwiseMinimumWidth` and the tiled family return nil (layer by layer).
    @Test func expandDepthwiseMatchesReference() throws {
        guard let device = openCL() else { return }
        let gpu = device.family == .registerBlocked ? device
            : OpenCLBackend(context: device.context, family: .registerBlocked, packing: device.packing)
        var rng = SeededRandom(seed: 31)
        let cases: [(x: Shape, e: Int, k: Int, p: Conv2DParams)] = [
            ([2, 5, 9, 61], 14, 3, Conv2DParams(stride: (1, 1), padding: (1, 1), dilation: (1, 1), groups: 14)),
            ([1, 3, 10, 58], 7, 3, Conv2DParams(stride: (2, 2), padding: (1, 1), dilation: (1, 1), groups: 7)),
            ([1, 4, 7, 57], 6, 3, Conv2DParams(stride: (1, 1), padding: (2, 2), dilation: (2, 2), groups: 6)),
            ([1, 2, 8, 59], 9, 5, Conv2DParams(stride: (2, 2), padding: (2, 2), dilation: (1, 1), groups: 9)),
        ]
        for c in cases {
            let (cin, e) = (c.x[1], c.e)
            let x = rng.floats(c.x.count), we = rng.floats(e * cin, -3, 3), be = rng.floats(e), wd = rng.floats(e * c.k * c.k)
            let bd = rng.floats(e)
            for act in Activation.allCases {
                let expanded = try cpu.activation(try cpu.conv2d(try cpu.tensor(x, c.x), weight: try cpu.tensor(we, [e, cin, 1, 1]),
                                                                 bias: try cpu.tensor(be, [e]), Conv2DParams()), act)
                let want = try cpu.values(try cpu.activation(try cpu.conv2d(expanded, weight: try cpu.tensor(wd, [e, 1, c.k, c.k]),
                                                                            bias: try cpu.tensor(bd, [e]), c.p), act))
                let got = try gpu.expandDepthwise(try gpu.tensor(x, c.x), expandWeight: try gpu.tensor(we, [e, cin, 1, 1]),
                                                  expandBias: try gpu.tensor(be, [e]), depthwiseWeight: try gpu.tensor(wd, [e, 1, c.k, c.k]),
                                                  depthwiseBias: try gpu.tensor(bd, [e]), c.p, activation: act)
                guard let got else {
                    Issue.record("expand_depthwise did not apply to \(c.x) -> \(e), \(c.k)x\(c.k)")
                    continue
                }
                #expect(got.shape == (try c.p.outputShape(input: [c.x[0], e, c.x[2], c.x[3]], weight: [e, 1, c.k, c.k])))
                expectClose(try gpu.values(got), want, tolerance: 1e-5, "expand depthwise \(c.x) -> \(e) \(act)")
            }
        }
        // Narrow maps and the tiled family: nil, layer by layer.
        let narrow: Shape = [1, 3, 9, OpenCLBackend.expandDepthwiseMinimumWidth - 1]
        let params = Conv2DParams(stride: (1, 1), padding: (1, 1), dilation: (1, 1), groups: 4)
        let args = (we: try gpu.tensor(rng.floats(12), [4, 3, 1, 1]), b: try gpu.tensor(rng.floats(4), [4]),
                    wd: try gpu.tensor(rng.floats(36), [4, 1, 3, 3]))
        #expect(try gpu.expandDepthwise(try gpu.tensor(rng.floats(narrow.count), narrow), expandWeight: args.we, expandBias: args.b,
                                        depthwiseWeight: args.wd, depthwiseBias: args.b, params, activation: .relu6) == nil)
        let tiled = OpenCLBackend(context: device.context, family: .tiled)
        let wide: Shape = [1, 3, 9, 64]
        #expect(try tiled.expandDepthwise(try tiled.tensor(rng.floats(wide.count), wide), expandWeight: try moved(args.we, from: gpu, to: tiled),
                                          expandBias: try moved(args.b, from: gpu, to: tiled), depthwiseWeight: try moved(args.wd, from: gpu, to: tiled),
                                          depthwiseBias: try moved(args.b, from: gpu, to: tiled), params, activation: .relu6) == nil)
    }

    /// A whole inverted residual in two launches over channel-blocked maps (the register-blocked
    /// family's invertedResidual, forward only) against the CPU reference's layers one by one,
    /// for register blocks of this device's tiling, three vectors of 8 lanes and two of 16 (32
    /// rows, so that a block ends past E; the depthwise layer then runs per vector): 7x7 and
    /// 14x14 maps, stride 2, a 5x5 window at dilation 2, batch 2, with and without the residual
    /// sum, both activations, expanded values past ReLU6's top. Wide maps,
    /// E not a multiple of the vector width, pixel counts with no column block and the tiled
    /// family return nil; a residual whose shape differs throws.
    @Test func invertedResidualMatchesReference() throws {
        guard let device = openCL() else { return }
        var rng = SeededRandom(seed: 37)
        let tilings = [device.packing, PackedTiling(mr: 4, vw: 8, nv: 3), PackedTiling(mr: 8, vw: 16, nv: 2)]
        for tiling in tilings {
            let gpu = OpenCLBackend(context: device.context, family: .registerBlocked, packing: tiling)
            let vw = tiling.vw
            let cases: [(x: Shape, e: Int, k: Int, p: Conv2DParams, out: Int, residual: Bool)] = [
                ([1, 8, 7, 7], 3 * vw, 3, Conv2DParams(stride: (1, 1), padding: (1, 1), dilation: (1, 1), groups: 3 * vw), 8, true),
                ([2, 16, 14, 14], 2 * vw, 3, Conv2DParams(stride: (2, 2), padding: (1, 1), dilation: (1, 1), groups: 2 * vw), 24, false),
                ([1, 6, 10, 12], vw, 3, Conv2DParams(stride: (1, 1), padding: (1, 1), dilation: (1, 1), groups: vw), 6, true),
                ([1, 4, 12, 12], vw, 5, Conv2DParams(stride: (1, 1), padding: (4, 4), dilation: (2, 2), groups: vw), 5, false),
            ]
            for c in cases {
                let (cin, e) = (c.x[1], c.e)
                let x = rng.floats(c.x.count), we = rng.floats(e * cin, -3, 3), be = rng.floats(e), wd = rng.floats(e * c.k * c.k)
                let bd = rng.floats(e), wp = rng.floats(c.out * e), bp = rng.floats(c.out)
                for act in Activation.allCases {
                    let xc = try cpu.tensor(x, c.x)
                    let expanded = try cpu.activation(try cpu.conv2d(xc, weight: try cpu.tensor(we, [e, cin, 1, 1]),
                                                                     bias: try cpu.tensor(be, [e]), Conv2DParams()), act)
                    let filtered = try cpu.activation(try cpu.conv2d(expanded, weight: try cpu.tensor(wd, [e, 1, c.k, c.k]),
                                                                     bias: try cpu.tensor(bd, [e]), c.p), act)
                    let projected = try cpu.conv2d(filtered, weight: try cpu.tensor(wp, [c.out, e, 1, 1]), bias: try cpu.tensor(bp, [c.out]),
                                                   Conv2DParams())
                    let want = try cpu.values(c.residual ? try cpu.add(projected, xc) : projected)
                    let got = try gpu.invertedResidual(try gpu.tensor(x, c.x), expandWeight: try gpu.tensor(we, [e, cin, 1, 1]),
                                                       expandBias: try gpu.tensor(be, [e]), depthwiseWeight: try gpu.tensor(wd, [e, 1, c.k, c.k]),
                                                       depthwiseBias: try gpu.tensor(bd, [e]), c.p, activation: act,
                                                       projectWeight: try gpu.tensor(wp, [c.out, e, 1, 1]), projectBias: try gpu.tensor(bp, [c.out]),
                                                       residual: c.residual)
                    guard let got else {
                        Issue.record("invertedResidual did not apply to \(c.x) -> \(e) -> \(c.out) with \(tiling)")
                        continue
                    }
                    #expect(got.shape == projected.shape)
                    expectClose(try gpu.values(got), want, tolerance: 1e-5, "inverted residual \(c.x) -> \(e) -> \(c.out) \(act) \(tiling)")
                }
            }
            // Where it does not apply: nil; a residual of another shape: an error.
            func attempt(_ x: Shape, e: Int, residual: Bool = false, on b: OpenCLBackend? = nil) throws -> Tensor? {
                let b = b ?? gpu, cin = x[1]
                return try b.invertedResidual(try b.tensor(rng.floats(x.count), x), expandWeight: try b.tensor(rng.floats(e * cin), [e, cin, 1, 1]),
                                              expandBias: try b.tensor(rng.floats(e), [e]), depthwiseWeight: try b.tensor(rng.floats(e * 9), [e, 1, 3, 3]),
                                              depthwiseBias: try b.tensor(rng.floats(e), [e]),
                                              Conv2DParams(stride: (1, 1), padding: (1, 1), dilation: (1, 1), groups: e), activation: .relu6,
                                              projectWeight: try b.tensor(rng.floats(4 * e), [4, e, 1, 1]), projectBias: try b.tensor(rng.floats(4), [4]),
                                              residual: residual)
            }
            #expect(try attempt([1, 4, 8, OpenCLBackend.expandDepthwiseMinimumWidth], e: vw) == nil)
            #expect(try attempt([1, 4, 8, 8], e: vw + 1) == nil)
            #expect(try attempt([1, 4, 9, 11], e: vw) == nil)
            #expect(throws: BackendError.self) { _ = try attempt([1, 5, 8, 8], e: vw, residual: true) }
        }
        let tiled = OpenCLBackend(context: device.context, family: .tiled)
        let e = 16, x: Shape = [1, 4, 8, 8]
        #expect(try tiled.invertedResidual(try tiled.tensor(rng.floats(x.count), x), expandWeight: try tiled.tensor(rng.floats(4 * e), [e, 4, 1, 1]),
                                           expandBias: try tiled.tensor(rng.floats(e), [e]), depthwiseWeight: try tiled.tensor(rng.floats(9 * e), [e, 1, 3, 3]),
                                           depthwiseBias: try tiled.tensor(rng.floats(e), [e]),
                                           Conv2DParams(stride: (1, 1), padding: (1, 1), dilation: (1, 1), groups: e), activation: .relu6,
                                           projectWeight: try tiled.tensor(rng.floats(4 * e), [4, e, 1, 1]), projectBias: try tiled.tensor(rng.floats(4), [4]),
                                           residual: true) == nil)
    }

    /// Every tile `loupe tune` may choose for the tiled family, each as the default for a layer
    /// wider than 32 channels both ways (so that forward and backward input use it): a 3x3
    /// layer deep enough to split K, ending inside tiles in every dimension, and a 1x1 layer.
    @Test(arguments: GemmTiling.candidates)
    func everyTileCandidateMatchesReference(_ tiling: GemmTiling) throws {
        guard let device = openCL() else { return }
        let gpu = OpenCLBackend(context: device.context, convTiling: tiling, family: .tiled)
        for c in [ConvCase(n: 2, cin: 36, cout: 70, h: 9, w: 11, k: 3, stride: 1, pad: 1, dilation: 1, groups: 1, bias: true),
                  ConvCase(n: 1, cin: 40, cout: 33, h: 5, w: 6, k: 1, stride: 1, pad: 0, dilation: 1, groups: 1, bias: false)] {
            try expectConvMatchesReference(c, on: gpu)
        }
    }

    /// Every register block `loupe tune` may choose for the register-blocked family (the one
    /// CPUs run): pointwise, 3x3 below and at Winograd's channel count, strided, depthwise,
    /// grouped and dilated layers whose rows and channels end inside a block, forward and every
    /// backward, fused activations and rules included.
    @Test(arguments: PackedTiling.candidates)
    func everyRegisterBlockCandidateMatchesReference(_ packing: PackedTiling) throws {
        guard let device = openCL() else { return }
        let gpu = OpenCLBackend(context: device.context, family: .registerBlocked, packing: packing)
        #expect(gpu.packing == packing)
        for c in [ConvCase(n: 2, cin: 13, cout: 29, h: 7, w: 9, k: 1, stride: 1, pad: 0, dilation: 1, groups: 1, bias: true),
                  ConvCase(n: 1, cin: 6, cout: 11, h: 9, w: 10, k: 3, stride: 1, pad: 1, dilation: 1, groups: 1, bias: false),
                  ConvCase(n: 2, cin: 16, cout: 20, h: 7, w: 11, k: 3, stride: 1, pad: 1, dilation: 1, groups: 1, bias: true),
                  ConvCase(n: 1, cin: 5, cout: 7, h: 11, w: 13, k: 3, stride: 2, pad: 1, dilation: 1, groups: 1, bias: true),
                  ConvCase(n: 1, cin: 12, cout: 12, h: 9, w: 9, k: 3, stride: 1, pad: 1, dilation: 1, groups: 12, bias: true),
                  ConvCase(n: 1, cin: 8, cout: 12, h: 8, w: 9, k: 3, stride: 1, pad: 2, dilation: 2, groups: 4, bias: false)] {
            try expectConvMatchesReference(c, on: gpu)
        }
    }

    @Test(arguments: convCases)
    func referenceBackwardMatchesFiniteDifferences(_ c: ConvCase) throws {
        var rng = SeededRandom(seed: 12)
        let inputs = [rng.floats(c.xShape.count), rng.floats(c.wShape.count), rng.floats(c.cout)]
        let problems = try finiteDifferenceMismatches(inputs: inputs) { v in
            try cpu.values(cpu.conv2d(cpu.tensor(v[0], c.xShape), weight: cpu.tensor(v[1], c.wShape),
                                      bias: cpu.tensor(v[2], [c.cout]), c.params))
        } backward: { v, r in
            let out = try c.params.outputShape(input: c.xShape, weight: c.wShape)
            let g = try cpu.tensor(r, out)
            return [try cpu.values(cpu.conv2dBackwardInput(g, weight: cpu.tensor(v[1], c.wShape), inputShape: c.xShape, c.params)),
                    try cpu.values(cpu.conv2dBackwardWeight(g, input: cpu.tensor(v[0], c.xShape), weightShape: c.wShape, c.params)),
                    try cpu.values(cpu.conv2dBackwardBias(g))]
        }
        #expect(problems.isEmpty, "\(problems.prefix(5))")
    }

    /// The reference's loops are arranged for speed; each pass must still be the naive seven
    /// loops below, sum for sum and bit for bit.
    @Test(arguments: convCases)
    func referenceIsTheNaiveLoopsBitForBit(_ c: ConvCase) throws {
        var rng = SeededRandom(seed: 5)
        let out = try c.params.outputShape(input: c.xShape, weight: c.wShape)
        let (x, w, bias, g) = (rng.floats(c.xShape.count), rng.floats(c.wShape.count), rng.floats(c.cout), rng.floats(out.count))
        let (cig, cog, p) = (c.cin / c.groups, c.cout / c.groups, c.params)
        var (y, gx, gw) = ([Float](repeating: 0, count: out.count), [Float](repeating: 0, count: x.count), [Float](repeating: 0, count: w.count))
        for b in 0..<c.n { for co in 0..<c.cout { for oy in 0..<out[2] { for ox in 0..<out[3] {
            let o = ((b * c.cout + co) * out[2] + oy) * out[3] + ox
            var s = c.bias ? bias[co] : 0
            for ci in 0..<cig { for ky in 0..<c.k { for kx in 0..<c.k {
                let iy = oy * p.stride.h - p.padding.h + ky * p.dilation.h, ix = ox * p.stride.w - p.padding.w + kx * p.dilation.w
                guard iy >= 0, iy < c.h, ix >= 0, ix < c.w else { continue }
                let (wi, xi) = (((co * cig + ci) * c.k + ky) * c.k + kx, ((b * c.cin + co / cog * cig + ci) * c.h + iy) * c.w + ix)
                s += w[wi] * x[xi]
                gx[xi] += w[wi] * g[o]
            } } }
            y[o] = s
        } } } }
        for b in 0..<c.n { for co in 0..<c.cout { for oy in 0..<out[2] { for ox in 0..<out[3] {
            for ci in 0..<cig { for ky in 0..<c.k { for kx in 0..<c.k {
                let iy = oy * p.stride.h - p.padding.h + ky * p.dilation.h, ix = ox * p.stride.w - p.padding.w + kx * p.dilation.w
                guard iy >= 0, iy < c.h, ix >= 0, ix < c.w else { continue }
                gw[((co * cig + ci) * c.k + ky) * c.k + kx] += x[((b * c.cin + co / cog * cig + ci) * c.h + iy) * c.w + ix]
                    * g[((b * c.cout + co) * out[2] + oy) * out[3] + ox]
            } } }
        } } } }
        let got = try cpu.values(cpu.conv2d(cpu.tensor(x, c.xShape), weight: cpu.tensor(w, c.wShape),
                                             bias: c.bias ? cpu.tensor(bias, [c.cout]) : nil, p))
        #expect(got.map(\.bitPattern) == y.map(\.bitPattern), "forward")
        let gotX = try cpu.values(cpu.conv2dBackwardInput(cpu.tensor(g, out), weight: cpu.tensor(w, c.wShape), inputShape: c.xShape, p))
        #expect(gotX.map(\.bitPattern) == gx.map(\.bitPattern), "backward input")
        let gotW = try cpu.values(cpu.conv2dBackwardWeight(cpu.tensor(g, out), input: cpu.tensor(x, c.xShape), weightShape: c.wShape, p))
        #expect(gotW.map(\.bitPattern) == gw.map(\.bitPattern), "backward weight")
    }

    @Test func mismatchedShapesThrowNamingTheOp() throws {
        let x = try cpu.tensor([Float](repeating: 0, count: 2 * 3 * 4 * 4), [2, 3, 4, 4])
        let w = try cpu.tensor([Float](repeating: 0, count: 5 * 2 * 3 * 3), [5, 2, 3, 3])
        #expect(throws: BackendError.self) { try cpu.conv2d(x, weight: w, bias: nil, Conv2DParams()) }
        do { _ = try cpu.conv2d(x, weight: w, bias: nil, Conv2DParams()) } catch {
            #expect("\(error)".contains("conv2d") && "\(error)".contains("[2, 3, 4, 4]"))
        }
        if let gpu = openCL() {
            let dx = try gpu.tensor(try cpu.values(x), x.shape), dw = try gpu.tensor(try cpu.values(w), w.shape)
            #expect(throws: BackendError.self) { try gpu.conv2d(dx, weight: dw, bias: nil, Conv2DParams()) }
            #expect(throws: BackendError.self) { try gpu.conv2d(x, weight: dw, bias: nil, Conv2DParams()) }
        }
    }
}
