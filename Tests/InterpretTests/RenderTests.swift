import Backend
import Foundation
import Graph
import Interpret
import Models
import Testing
import TestSupport

/// The optimization engine's parts against tools/make_render_fixtures.py (torch's grid_sample,
/// torch.optim.Adam, numpy's irfft2 with Lucid's scaling, torch autograd of each penalty), and
/// every gradient against finite differences on the CPU reference.
@Suite struct RenderPartsTests {
    static let file = try! SafeTensorsFile(url: fixtureURL.deletingLastPathComponent().appendingPathComponent("render.safetensors"))
    func fixture(_ name: String) throws -> HostTensor { try Self.file.tensor(name) }

    /// Graph gradient of sum(f(x) * r) vs central differences, on the CPU reference.
    func expectGraphGradient(_ what: String, _ x: [Float], _ shape: Shape, eps: Float = 1e-2, tolerance: Float = 2e-2,
                             _ f: (Graph, Graph.Value) throws -> Graph.Value) throws {
        let problems = try finiteDifferenceMismatches(inputs: [x], eps: eps, samples: 12, tolerance: tolerance, forward: { xs in
            let g = Graph(backend: cpu)
            return try cpu.values(g.tensor(try f(g, g.input(try cpu.tensor(xs[0], shape)))))
        }, backward: { xs, r in
            let g = Graph(backend: cpu)
            let input = g.input(try cpu.tensor(xs[0], shape))
            let y = try f(g, input)
            return [try cpu.values(try g.backward(from: y, seed: try cpu.tensor(r, g.shape(y))).of(input)!)]
        })
        #expect(problems.isEmpty, "\(what): \(problems.prefix(4))")
    }

    var maps: [AffineMap] {
        let info = try! JSONSerialization.jsonObject(with: Data(Self.file.metadata["render"]!.utf8)) as! [String: Any]
        return (info["affine_maps"] as! [[Double]]).map { m in
            AffineMap(a: Float(m[0]), b: Float(m[1]), c: Float(m[2]), d: Float(m[3]), e: Float(m[4]), f: Float(m[5]))
        }
    }

    @Test func affineSampleMatchesGridSample() throws {
        let x = try fixture("affine.x"), gy = try fixture("affine.gy")
        for b in backends() {
            let y = try b.affineSample(try b.tensor(x.values, x.shape), maps, height: 6, width: 8, fill: 0)
            #expect(y.shape == [2, 3, 6, 8])
            #expect(normalizedError(try b.values(y), try fixture("affine.y").values) < 1e-5, "\(b.name) forward")
            let gx = try b.affineSampleBackward(try b.tensor(gy.values, gy.shape), maps, inputShape: x.shape)
            #expect(normalizedError(try b.values(gx), try fixture("affine.gx").values) < 1e-5, "\(b.name) backward")
            // Identity and an integer shift with a fill value.
            let same = try b.affineSample(try b.tensor(x.values, x.shape), [.identity, .identity], height: 7, width: 9, fill: 0)
            #expect(try b.values(same) == x.values)
            let shifted = try b.values(b.affineSample(try b.tensor(x.values, x.shape), [AffineMap(a: 1, b: 0, c: 2, d: 0, e: 1, f: 0), .identity],
                                                      height: 7, width: 9, fill: 0.5))
            #expect(shifted[0] == x.values[2] && shifted[7] == 0.5 && shifted[8] == 0.5)
        }
        try expectGraphGradient("affine sample", x.values, x.shape) { g, v in try g.affineSample(v, maps, height: 6, width: 8, fill: 0.5) }
        #expect(throws: BackendError.self) { try cpu.affineSample(try cpu.tensor(x.values, x.shape), [maps[0]], height: 6, width: 8, fill: 0) }
        #expect(throws: BackendError.self) {
            try cpu.affineSample(try cpu.tensor(x.values, x.shape), [AffineMap(a: 1, b: 1, c: 0, d: 1, e: 1, f: 0), .identity], height: 6, width: 8, fill: 0)
        }
    }

    @Test func adamMatchesTorch() throws {
        for b in backends() {
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
        for op in [Pointwise.sigmoid, .absPower(1.5), .absPower(6), .absPower(0.5)] {
            let expected = x.map { v -> Float in
                if case .absPower(let p) = op { return pow(abs(v), p) }
                return 1 / (1 + exp(-v))
            }
            for b in backends() {
                #expect(normalizedError(try b.values(b.pointwise(try b.tensor(x, [23]), op)), expected) < 1e-5, "\(b.name) \(op)")
                let gx = try b.values(b.pointwiseBackward(try b.tensor([Float](repeating: 1, count: 23), [23]), input: try b.tensor(x, [23]), op))
                #expect(normalizedError(gx, try cpu.values(cpu.pointwiseBackward(try cpu.tensor([Float](repeating: 1, count: 23), [23]), input: try cpu.tensor(x, [23]), op))) < 1e-5)
            }
            try expectGraphGradient("\(op)", x.map { $0 / 4 }, [23], eps: 1e-3, tolerance: 1e-2) { g, v in try g.pointwise(v, op) }
        }
        #expect(try cpu.values(cpu.pointwiseBackward(try cpu.tensor([1], [1]), input: try cpu.tensor([0], [1]), .absPower(0.5))) == [0])
    }

    @Test(arguments: [(10, 9), (8, 8)])
    func fourierParameterizationMatchesNumpyAndLucid(_ size: (Int, Int)) throws {
        let (h, w) = size
        let spectrum = try fixture("fourier\(h)x\(w).spectrum")
        for decorrelate in [true, false] {
            let param = ImageParameterization(.fourier, batch: 2, height: h, width: w, decorrelate: decorrelate)
            #expect(param.shape == spectrum.shape)
            for b in backends() {
                let g = Graph(backend: b)
                let image = try b.values(g.tensor(try param.image(g, g.input(try b.tensor(spectrum.values, spectrum.shape)))))
                let want = decorrelate ? try fixture("fourier\(h)x\(w).image").values
                    : try fixture("fourier\(h)x\(w).plain").values.map { 1 / (1 + exp(-$0)) }
                #expect(normalizedError(image, want) < 1e-5, "\(b.name) \(h)x\(w) decorrelate \(decorrelate)")
            }
            try expectGraphGradient("fourier \(h)x\(w) decorrelate \(decorrelate)", spectrum.values, spectrum.shape, eps: 1e-3) { g, v in try param.image(g, v) }
        }
        let pixel = ImageParameterization(.pixel, batch: 2, height: h, width: w)
        let start = pixel.initial(seed: 3)
        try expectGraphGradient("pixel \(h)x\(w)", start, pixel.shape, eps: 1e-3) { g, v in try pixel.image(g, v) }
    }

    @Test func regularizersMatchTorchAndFiniteDifferences() throws {
        let x = try fixture("reg.x")
        let cases: [(String, Regularizer.Kind)] = [("l2", .l2), ("l1", .l1), ("alpha", .alphaNorm(6)), ("tv", .totalVariation(1)),
                                                   ("tv2", .totalVariation(2)), ("freq", .frequency), ("blur", .blur)]
        for (name, kind) in cases {
            let r = Regularizer(kind, weight: 1)
            for b in backends() {
                let g = Graph(backend: b)
                let input = g.input(try b.tensor(x.values, x.shape))
                let value = try r.value(g, input)
                #expect(normalizedError(try b.values(g.tensor(value)), try fixture("reg.\(name).value").values) < 1e-4, "\(b.name) \(name) value")
                let grad = try b.values(try g.backward(from: value).of(input)!)
                #expect(normalizedError(grad, try fixture("reg.\(name).grad").values) < 1e-4, "\(b.name) \(name) gradient")
            }
            try expectGraphGradient("regularizer \(name)", x.values, x.shape, eps: 1e-3) { g, v in try r.value(g, v) }
        }
    }

    @Test func transformsAreSeededAndSized() {
        var a = SplitMixRandom(seed: 5), b = SplitMixRandom(seed: 5)
        let first = TransformSet.standard.draw(count: 3, height: 64, width: 64, random: &a)
        let second = TransformSet.standard.draw(count: 3, height: 64, width: 64, random: &b)
        #expect(first.transforms == second.transforms && first.height == second.height)
        // pad 12, jitter 8 -> 80; scale 0.9 ... 1.1 -> 72 ... 88; jitter 4 -> 68 ... 84.
        #expect((68...84).contains(first.height) && first.height == first.width)
        #expect(Set(first.transforms.map(\.description)).count == 3, "each image draws its own jitter and rotation")
        for t in first.transforms { #expect(abs(t.determinant) > 0.8 && abs(t.determinant) < 1.25) }
        var c = SplitMixRandom(seed: 5)
        let none = TransformSet.none.draw(count: 2, height: 10, width: 12, random: &c)
        #expect(none.transforms == [.identity, .identity] && none.height == 10 && none.width == 12)
    }

    @Test func objectivesParseAndCompile() throws {
        #expect(try Objective.parse("features.10:5") == .channel(layer: "features.10", channel: 5))
        #expect(try Objective.parse("class:948") == .classLogit(948))
        #expect(try Objective.parse("features.3:2@4,5") == .neuron(layer: "features.3", channel: 2, x: 4, y: 5))
        #expect(try Objective.parse("features.18") == .layer("features.18"))
        #expect(try Objective.parse("0.2*features.10:5 + 0.8*class:948") == .sum([
            WeightedObjective(weight: 0.2, objective: .channel(layer: "features.10", channel: 5)),
            WeightedObjective(weight: 0.8, objective: .classLogit(948))]))
        #expect(try Objective.parse("layer1:[1,-2.5e-1,0]") == .direction(layer: "layer1", vector: [1, -0.25, 0]))
        #expect(try Objective.parse("features.1:0 - 1e-2*features.2") == .sum([
            WeightedObjective(weight: 1, objective: .channel(layer: "features.1", channel: 0)),
            WeightedObjective(weight: -0.01, objective: .layer("features.2"))]))
        for bad in ["", "x*features.1:0", "features.1:a", "features.1:0@1", "class:dog", "features.1:[1,a]", "a + "] {
            #expect(throws: InterpretError.self, "\(bad)") { try Objective.parse(bad) }
        }
    }

    /// Each objective's value through the compiled masks equals the same quantity read off the
    /// activations on the host.
    @Test func objectiveValuesMatchTheirDefinitions() throws {
        let c = Case("resnet18")
        let model = try c.model(on: cpu)
        let x = try c.input(on: cpu)
        let g = Graph(backend: cpu)
        let logits = try model.forward(g, g.input(x))
        let act = try cpu.values(g.tensor(g.tapped("layer2")!)), shape = g.shape(g.tapped("layer2")!)
        let (ch, h, w) = (shape[1], shape[2], shape[3])
        let plane = h * w
        let logitValues = try cpu.values(g.tensor(logits))
        let direction = (0..<ch).map { Float($0 % 3) - 1 }
        let cases: [(Objective, Float)] = [
            (.channel(layer: "layer2", channel: 3), act[(3 * plane)..<(4 * plane)].reduce(0, +) / Float(plane)),
            (.neuron(layer: "layer2", channel: 4, x: 1, y: 2), act[4 * plane + 2 * w + 1]),
            (.neuron(layer: "layer2", channel: 4, x: nil, y: nil), act[4 * plane + (h / 2) * w + w / 2]),
            (.layer("layer2"), act.map { $0 * $0 }.reduce(0, +) / Float(act.count)),
            (.classLogit(7), logitValues[7]),
            (.direction(layer: "layer2", vector: direction), (0..<ch).map { k in direction[k] * act[(k * plane)..<((k + 1) * plane)].reduce(0, +) }.reduce(0, +) / Float(plane)),
        ]
        for (objective, want) in cases {
            let got = try cpu.values(g.tensor(try FeatureVisualization.objectiveValues([objective], g, logits: logits)))[0]
            #expect(abs(got - want) <= 1e-4 * Swift.max(1, abs(want)), "\(objective): \(got) vs \(want)")
        }
        #expect(throws: InterpretError.self) { try FeatureVisualization.objectiveValues([.channel(layer: "layer2", channel: ch)], g, logits: logits) }
        #expect(throws: InterpretError.self) { try FeatureVisualization.objectiveValues([.channel(layer: "nope", channel: 0)], g, logits: logits) }
    }
}
