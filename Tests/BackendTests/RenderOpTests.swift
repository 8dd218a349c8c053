import Backend
import Foundation
import Testing
import TestSupport
import WeightFiles

/// The ops feature visualization runs on (affine resampling, the Adam step, pointwise functions)
/// against tools/make_render_fixtures.py (torch's grid_sample, torch.optim.Adam; the fixture lives
/// with the engine's other references in InterpretTests) and their definitions, on the CPU
/// reference and both device families; backward passes by finite differences.
@Suite(.timed) struct RenderOpTests {
    static let file = try! SafeTensorsFile(url: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../InterpretTests/Fixtures/render.safetensors").standardized)
    func fixture(_ name: String) throws -> HostTensor { try Self.file.tensor(name) }
    var all: [any Backend] { [cpu] + openCLFamilies() }

    var maps: [AffineMap] {
        let info = try! JSONSerialization.jsonObject(with: Data(Self.file.metadata["render"]!.utf8)) as! [String: Any]
        return (info["affine_maps"] as! [[Double]]).map { m in
            AffineMap(a: Float(m[0]), b: Float(m[1]), c: Float(m[2]), d: Float(m[3]), e: Float(m[4]), f: Float(m[5]))
        }
    }

    @Test func affineSampleMatchesGridSample() throws {
        let x = try fixture("affine.x"), gy = try fixture("affine.gy")
        for b in all {
            let y = try b.affineSample(try b.tensor(x.values, x.shape), maps, height: 6, width: 8, fill: 0)
            #expect(y.shape == [2, 3, 6, 8], "\(b.name)")
            #expect(normalizedError(try b.values(y), try fixture("affine.y").values) < 1e-5, "\(b.name) forward")
            let gx = try b.affineSampleBackward(try b.tensor(gy.values, gy.shape), maps, inputShape: x.shape)
            #expect(normalizedError(try b.values(gx), try fixture("affine.gx").values) < 1e-5, "\(b.name) backward")
            // Identity and an integer shift with a fill value.
            let same = try b.affineSample(try b.tensor(x.values, x.shape), [.identity, .identity], height: 7, width: 9, fill: 0)
            #expect(try b.values(same) == x.values, "\(b.name) identity")
            let shifted = try b.values(b.affineSample(try b.tensor(x.values, x.shape), [AffineMap(a: 1, b: 0, c: 2, d: 0, e: 1, f: 0), .identity],
                                                      height: 7, width: 9, fill: 0.5))
            #expect(shifted[0] == x.values[2] && shifted[7] == 0.5 && shifted[8] == 0.5)
        }
        try expectFiniteDifferences("affine sample", inputs: [x.values]) { v in
            try cpu.values(cpu.affineSample(try cpu.tensor(v[0], x.shape), maps, height: 6, width: 8, fill: 0.5))
        } backward: { _, r in
            [try cpu.values(cpu.affineSampleBackward(try cpu.tensor(r, [2, 3, 6, 8]), maps, inputShape: x.shape))]
        }
        #expect(throws: BackendError.self) { try cpu.affineSample(try cpu.tensor(x.values, x.shape), [maps[0]], height: 6, width: 8, fill: 0) }
        #expect(throws: BackendError.self) {
            try cpu.affineSample(try cpu.tensor(x.values, x.shape), [AffineMap(a: 1, b: 1, c: 0, d: 1, e: 1, f: 0), .identity], height: 6, width: 8, fill: 0)
        }
    }

    /// The device gather against the reference's scatter on maps far from the standard
    /// transforms: rotations (90 degrees: a = 0), a mirror, a shear, down- and upscaling.
    @Test func affineSampleBackwardMatchesReferenceUnderManyMaps() throws {
        func rotation(_ degrees: Float, scale: Float, _ tx: Float, _ ty: Float) -> AffineMap {
            let (c, s) = (scale * Float(cos(Double(degrees) * .pi / 180)), scale * Float(sin(Double(degrees) * .pi / 180)))
            return AffineMap(a: c, b: -s, c: tx, d: s, e: c, f: ty)
        }
        let maps = [rotation(10, scale: 1.1, -3, 2), rotation(90, scale: 1, 40, 0), AffineMap(a: -1, b: 0, c: 40.5, d: 0, e: 1, f: 0),
                    AffineMap(a: 0.5, b: 0.3, c: 1, d: -0.2, e: 0.6, f: 4), rotation(-35, scale: 2.2, 5, -7)]
        var rng = SeededRandom(seed: 21)
        let shape: Shape = [maps.count, 3, 37, 41], out: Shape = [maps.count, 3, 40, 44]
        let gy = rng.floats(out.count)
        let reference = try cpu.values(cpu.affineSampleBackward(try cpu.tensor(gy, out), maps, inputShape: shape))
        for b in openCLFamilies() {
            let gx = try b.values(b.affineSampleBackward(try b.tensor(gy, out), maps, inputShape: shape))
            #expect(normalizedError(gx, reference) < 1e-5, "\(b.name)")
        }
    }

    @Test func adamMatchesTorch() throws {
        for b in all {
            var p = try b.tensor(try fixture("adam.p0").values, [11])
            var m = try b.tensor([Float](repeating: 0, count: 11), [11]), v = m
            for t in 0..<3 {
                (p, m, v) = try b.adamStep(p, gradient: try b.tensor(try fixture("adam.g\(t)").values, [11]), m: m, v: v, AdamSettings(learningRate: 0.05), step: t + 1)
            }
            #expect(normalizedError(try b.values(p), try fixture("adam.p3").values) < 1e-5, "\(b.name) Adam")
        }
    }

    @Test func pointwiseOpsAndTheirGradients() throws {
        let x: [Float] = (0..<23).map { Float($0) * 0.37 - 4.1 }
        for op in [Pointwise.sigmoid, .absPower(1.5), .absPower(6), .absPower(0.5), .absPower(1), .hardSigmoid, .hardSwish, .erf, .offset(-0.75), .gelu, .tanh, .stabilizedReciprocal(0.5)] {
            let expected = x.map { v -> Float in
                switch op {
                case .absPower(let p): return pow(abs(v), p)
                case .hardSigmoid: return min(max(v + 3, 0), 6) / 6
                case .hardSwish: return v * min(max(v + 3, 0), 6) / 6
                case .sigmoid: return 1 / (1 + exp(-v))
                case .erf: return erf(v)
                case .offset(let c): return v + c
                // torch.nn.functional.gelu(torch.tensor(v)), approximate="none"
                case .gelu: return v * 0.5 * (1 + erf(v / Float(2).squareRoot()))
                case .tanh: return tanh(v)
                case .stabilizedReciprocal(let e): return 1 / (v + (v >= 0 ? e : -e))
                }
            }
            // The derivative written out (PyTorch's at the hard functions' kinks; none of x is one).
            let derivative = x.map { v -> Float in
                switch op {
                case .absPower(let p): return v == 0 ? 0 : p * pow(abs(v), p - 1) * (v < 0 ? -1 : 1)
                case .hardSigmoid: return v > -3 && v < 3 ? 1 / 6 : 0
                case .hardSwish: return v < -3 ? 0 : v > 3 ? 1 : v / 3 + 0.5
                case .sigmoid: let s = 1 / (1 + exp(-v)); return s * (1 - s)
                case .erf: return 2 / Float.pi.squareRoot() * exp(-v * v)
                case .offset: return 1
                case .gelu: return 0.5 * (1 + erf(v / Float(2).squareRoot())) + v * exp(-v * v / 2) / (2 * Float.pi).squareRoot()
                case .tanh: return 1 - tanh(v) * tanh(v)
                case .stabilizedReciprocal(let e): return -1 / ((v + (v >= 0 ? e : -e)) * (v + (v >= 0 ? e : -e)))
                }
            }
            for b in all {
                #expect(normalizedError(try b.values(b.pointwise(try b.tensor(x, [23]), op)), expected) < 1e-5, "\(b.name) \(op)")
                let gx = try b.values(b.pointwiseBackward(try b.tensor([Float](repeating: 1, count: 23), [23]), input: try b.tensor(x, [23]), op))
                #expect(normalizedError(gx, derivative) < 1e-5, "\(b.name) \(op) derivative")
            }
            try expectPointwiseGradient("\(op)", x.map { $0 / 4 }, op)
        }
        #expect(try cpu.values(cpu.pointwiseBackward(try cpu.tensor([1], [1]), input: try cpu.tensor([0], [1]), .absPower(0.5))) == [0])
        // The hard functions on both sides of their kinks (none within eps of a sample).
        let wide: [Float] = [-5, -4.2, -3.4, -2.6, -1.5, -0.3, 0.8, 1.9, 2.7, 3.3, 4.6, 6.1]
        for op in [Pointwise.hardSigmoid, .hardSwish] { try expectPointwiseGradient("\(op) across its kinks", wide, op) }
        // PyTorch's derivatives at the kinks: hardsigmoid 0 at +-3; hardswish -1/2 at -3, 3/2 at 3.
        for b in all {
            let ones = try b.tensor([1, 1], [2]), kinks = try b.tensor([-3, 3], [2])
            #expect(try b.values(b.pointwiseBackward(ones, input: kinks, .hardSigmoid)) == [0, 0], "\(b.name)")
            #expect(try b.values(b.pointwiseBackward(ones, input: kinks, .hardSwish)) == [-0.5, 1.5], "\(b.name)")
        }
    }

    func expectPointwiseGradient(_ what: String, _ x: [Float], _ op: Pointwise, sourceLocation: SourceLocation = #_sourceLocation) throws {
        try expectFiniteDifferences(what, inputs: [x], eps: 1e-3, tolerance: 1e-2, sourceLocation: sourceLocation) { v in
            try cpu.values(cpu.pointwise(try cpu.tensor(v[0], [v[0].count]), op))
        } backward: { v, r in
            [try cpu.values(cpu.pointwiseBackward(try cpu.tensor(r, [r.count]), input: try cpu.tensor(v[0], [v[0].count]), op))]
        }
    }
}

/// Resizing's backward pass (a segmentation head's upsampling, ONNX's Resize): the adjoint of the
/// forward (<resize(x), r> = <x, resizeBackward(r)>) in every mode, up by 8 (FCN's head), down,
/// from one pixel (DeepLabV3's pooled branch) and to odd sizes, on the CPU reference and every
/// device family, the device's gather against the reference's scatter; finite differences.
@Suite(.timed) struct ResizeBackwardTests {
    @Test func resizeBackwardIsTheForwardsAdjoint() throws {
        var rng = SeededRandom(seed: 5)
        let cases: [(Shape, Int, Int)] = [([1, 3, 4, 5], 32, 40), ([2, 2, 9, 7], 4, 3), ([1, 2, 1, 1], 6, 5), ([1, 1, 5, 6], 11, 13), ([1, 1, 2, 1], 7, 1)]
        for (shape, oh, ow) in cases {
            let x = rng.floats(shape.count), r = rng.floats(shape[0] * shape[1] * oh * ow)
            let out: Shape = [shape[0], shape[1], oh, ow]
            for mode in [ResizeMode.bilinear, .bilinearAlignCorners, .nearest] {
                let reference = try cpu.values(cpu.resizeBackward(try cpu.tensor(r, out), inputShape: shape, mode: mode))
                let backends: [any Backend] = [cpu] + openCLFamilies()
                for b in backends {
                    let y = try b.values(b.resize(try b.tensor(x, shape), height: oh, width: ow, mode: mode))
                    let gx = try b.values(b.resizeBackward(try b.tensor(r, out), inputShape: shape, mode: mode))
                    let lhs = zip(y, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                    let rhs = zip(x, gx).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                    let scale = zip(y, r).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
                    #expect(abs(lhs - rhs) <= 1e-5 * scale, "\(b.name) \(mode) \(shape) -> \(oh)x\(ow): <Ax, r> \(lhs), <x, A'r> \(rhs)")
                    #expect(normalizedError(gx, reference) < 1e-5, "\(b.name) \(mode) \(shape) -> \(oh)x\(ow) against the reference")
                }
            }
        }
        let shape: Shape = [1, 2, 3, 4]
        try expectFiniteDifferences("resize", inputs: [rng.floats(shape.count)]) { v in
            try cpu.values(cpu.resize(try cpu.tensor(v[0], shape), height: 7, width: 9, mode: .bilinear))
        } backward: { _, r in
            [try cpu.values(cpu.resizeBackward(try cpu.tensor(r, [1, 2, 7, 9]), inputShape: shape, mode: .bilinear))]
        }
        #expect(throws: BackendError.self) { try cpu.resizeBackward(try cpu.tensor(rng.floats(8), [1, 2, 2, 2]), inputShape: [1, 3, 2, 2], mode: .bilinear) }
    }
}
