import Backend
import Foundation
import Graph
import ImageIO
import Interpret
import Models
import Testing
import TestSupport
import WeightFiles

/// The optimization engine's parts against tools/make_render_fixtures.py (numpy's irfft2 with
/// Lucid's scaling, torch autograd of each penalty), and every gradient against finite
/// differences on the CPU reference. The ops under them (affine resampling, Adam, pointwise
/// functions) are tested in BackendTests/RenderOpTests.swift.
@Suite(.timed) struct RenderPartsTests {
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

    /// A squeeze-excitation gate [N, C, 1, 1] expanded over a grid: every pixel holds its
    /// channel's value, and the gradient is the sum over the grid.
    @Test func expandRepeatsAGateOverTheGrid() throws {
        let gate: [Float] = [0.5, -1, 2, 0.25, 3, -0.75]
        for b in backends() {
            let g = Graph(backend: b)
            let y = try g.expand(g.input(try b.tensor(gate, [2, 3, 1, 1])), height: 2, width: 3)
            #expect(g.shape(y) == [2, 3, 2, 3])
            #expect(try b.values(g.tensor(y)) == gate.flatMap { [Float](repeating: $0, count: 6) }, "\(b.name)")
            #expect(throws: BackendError.self) { try g.expand(y, height: 4, width: 4) }
        }
        try expectGraphGradient("expand", gate, [2, 3, 1, 1], eps: 1e-3, tolerance: 1e-2) { g, v in
            try g.mul(try g.expand(v, height: 3, width: 2), g.constant(try cpu.tensor((0..<36).map { Float($0 % 7) - 3 }, [2, 3, 3, 2])))
        }
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

    @Test func diversityMatchesLucidInTorch() throws {
        let a = try fixture("diversity.a")
        for b in backends() {
            let g = Graph(backend: b)
            let x = g.input(try b.tensor(a.values, a.shape))
            let value = try diversity(g, x)
            #expect(abs(try b.values(g.tensor(value))[0] - (try fixture("diversity.value").values[0])) < 1e-5, "\(b.name) diversity value")
            #expect(normalizedError(try b.values(try g.backward(from: value).of(x)!), try fixture("diversity.grad").values) < 1e-4, "\(b.name) diversity gradient")
        }
        try expectGraphGradient("diversity", a.values, a.shape, eps: 1e-3) { g, v in try diversity(g, v) }
        try expectGraphGradient("slice channels", a.values, a.shape) { g, v in try g.sliceChannels(v, from: 1, count: 2) }
    }

    @Test func transformsAreSeededAndSized() {
        var a = SplitMix64(noiseSeed: 5), b = SplitMix64(noiseSeed: 5)
        let first = TransformSet.standard.draw(count: 3, height: 64, width: 64, random: &a)
        let second = TransformSet.standard.draw(count: 3, height: 64, width: 64, random: &b)
        #expect(first.transforms == second.transforms && first.height == second.height)
        // pad 12, jitter 8 -> 80; scale 0.9 ... 1.1 -> 72 ... 88; jitter 4 -> 68 ... 84.
        #expect((68...84).contains(first.height) && first.height == first.width)
        #expect(Set(first.transforms.map(\.description)).count == 3, "each image draws its own jitter and rotation")
        for t in first.transforms { #expect(abs(t.determinant) > 0.8 && abs(t.determinant) < 1.25) }
        var c = SplitMix64(noiseSeed: 5)
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

/// Whole optimizations: the same seed gives the same picture, the CPU reference and the device
/// agree on a short run, and divergence is caught with its step and term.
@Suite(.timed) struct RenderRunTests {
    /// Plain gradient ascent on both backends: the pictures agree to 1e-3.
    @Test func visualizationAgreesAcrossBackendsAndIsReproducible() throws {
        let c = Case("resnet18")
        let job = FeatureVisualization(objectives: [.channel(layer: "layer2", channel: 3), .sum([
            WeightedObjective(weight: 0.5, objective: .classLogit(7)), WeightedObjective(weight: 2, objective: .neuron(layer: "layer3.0", channel: 1, x: nil, y: nil))])],
            size: 40, steps: 3, optimizer: .sgd(learningRate: 0.05), regularizers: [Regularizer(.totalVariation(1), weight: 0.1), Regularizer(.l2, weight: 0.1)], seed: 9, reportEvery: 1)
        var runs: [(String, FeatureVisualization.Result)] = []
        for b in backends() {
            var reports = 0
            runs.append((b.name, try job.run(try c.model(on: b)) { _ in reports += 1 }))
            #expect(reports == 3)
        }
        let reference = runs[0].1
        #expect(reference.images.allSatisfy { $0 > 0 && $0 < 1 } && reference.images.count == 2 * 3 * 40 * 40)
        for (name, r) in runs.dropFirst() {
            #expect(normalizedError(r.images, reference.images) < 1e-3, "\(name) images vs CPU")
            #expect(normalizedError(r.objectives, reference.objectives) < 1e-3, "\(name) objectives vs CPU")
        }
        let b = backends().last!
        let again = try job.run(try c.model(on: b))
        #expect(again.images == runs.last!.1.images, "same seed, same picture")
        var other = job
        other.seed = 10
        #expect(try other.run(try c.model(on: b)).images != again.images)
        // Adam with its default epsilon steps lr * sign(gradient) at first: a coordinate whose
        // gradient is within rounding of zero steps either way on different devices (measured
        // here: 4.6% apart in the pictures after 3 steps; its update matches torch.optim.Adam to
        // 1e-5 in the optimizer test). With an epsilon near the gradients' scale (0.1) the step
        // is smooth in the gradient: measured 1.4e-3 apart in the pictures, 7e-5 in the
        // objectives.
        var adam = job
        adam.optimizer = .adam(AdamSettings(learningRate: 0.05, epsilon: 0.1))
        let adamRuns = try backends().map { try adam.run(try c.model(on: $0)) }
        for r in adamRuns.dropFirst() {
            #expect(normalizedError(r.images, adamRuns[0].images) < 5e-3, "Adam images vs CPU")
            #expect(normalizedError(r.objectives, adamRuns[0].objectives) < 1e-3, "Adam objectives vs CPU")
        }
    }

    @Test func inversionAgreesAcrossBackends() throws {
        let c = Case("resnet18")
        var target: [Float] = []
        var random = SplitMix64(noiseSeed: 2)
        for _ in 0..<(3 * 32 * 32) { target.append(Float(random.index(256)) / 255) }
        let job = FeatureInversion(layers: ["layer1", "layer2.0"], steps: 3, tvWeight: 0.5, jitter: 2, reportEvery: 1)
        let results = try backends().map { b in try job.run(try c.model(on: b), target: try b.tensor(target, [1, 3, 32, 32])) }
        for r in results.dropFirst() {
            #expect(normalizedError(r.image, results[0].image) < 1e-3)
            #expect(normalizedError(r.errors, results[0].errors) < 1e-3)
        }
        #expect(results[0].errors.count == 2 && results[0].errors.allSatisfy { $0 > 0 && $0.isFinite })
    }

    @Test func divergenceNamesItsStepAndTerm() throws {
        let model = try Case("resnet18").model(on: cpu)
        let job = FeatureVisualization(objectives: [.channel(layer: "layer1", channel: 0)], size: 32, steps: 4, basis: .pixel,
                                       transforms: .none, optimizer: .sgd(learningRate: .infinity), reportEvery: 1)
        do {
            _ = try job.run(model)
            Issue.record("an infinite learning rate must diverge")
        } catch let error as InterpretError {
            #expect(error.description.contains("diverged at step") && error.description.contains("objective"), "\(error)")
        }
        // Between reports too: the loss is watched every step and read every 8, so a run of 40
        // steps with no report before its last stops at once and names the first bad step.
        let quiet = FeatureVisualization(objectives: [.channel(layer: "layer1", channel: 0)], size: 32, steps: 40, basis: .pixel,
                                         transforms: .none, optimizer: .sgd(learningRate: .infinity), reportEvery: 1000)
        var reported: [Int] = []
        do {
            _ = try quiet.run(model) { reported.append($0.step) }
            Issue.record("an infinite learning rate must diverge")
        } catch let error as InterpretError {
            #expect(error.description.contains("diverged at step 1: the loss is"), "\(error)")
        }
        #expect(reported == [0])
        // A learning rate far too high saturates the picture without any NaN: reported as such.
        func run(lr: Float) throws -> Double {
            try FeatureVisualization(objectives: [.channel(layer: "layer1", channel: 0)], size: 32, steps: 3, basis: .pixel,
                                     transforms: .none, optimizer: .sgd(learningRate: lr)).run(model).saturatedFraction
        }
        #expect(try run(lr: 1e6) > 0.5)
        #expect(try run(lr: 0.05) < 0.05)
        #expect(throws: InterpretError.self) {
            try FeatureVisualization(objectives: [.channel(layer: "layer1", channel: 64)], size: 32, steps: 1).run(model)
        }
        #expect(throws: (any Error).self) { try FeatureInversion(layers: ["nope"], steps: 1).run(model, target: try cpu.tensor([Float](repeating: 0.5, count: 3 * 32 * 32), [1, 3, 32, 32])) }
    }
}

/// The real MobileNetV2 (`make models`), on the OpenCL device.
@Suite(.timed) struct RealModelRenderTests {
    static let reference = try! JSONSerialization.jsonObject(with: Data(contentsOf: fixtureURL.deletingLastPathComponent()
        .appendingPathComponent("inversion_reference.json"))) as! [String: Double]

    func model() throws -> Model? {
        guard realWeightsPresent(fail: { Issue.record(Comment(rawValue: $0)) }),
              let gpu = TestDevice.backend(fail: { Issue.record(Comment(rawValue: $0)) }) else { return nil }
        return try ModelLocator.load(on: gpu)
    }

    /// A short class visualization is classified as its class by the same model; a channel
    /// visualization ends far above the channel's mean activation on a random image.
    @Test func classAndChannelVisualizationsWork() throws {
        guard let model = try model() else { return }
        let b = model.backend
        let picture = try FeatureVisualization(objectives: [.classLogit(948)], size: 96, steps: 32).run(model).image(0)
        let input = try b.tensor(Preprocessing.normalizeOnly.normalize(picture), [1, 3, 96, 96])  // the saved 8-bit picture
        let g = Graph(backend: b)
        let p = try b.values(b.softmax(g.tensor(try model.forward(g, g.input(input)))))
        #expect(p[948] > 0.9, "p(Granny Smith) = \(p[948])")

        // Eight channels of a ReLU6 layer (non-negative, so a ratio means something) in one
        // batch; they must end 10x above their mean activation on uniform noise (the median
        // over the eight, so one channel that noise already excites does not decide).
        let layer = "features.10.conv.0"
        let channels = (0..<8).map { Objective.channel(layer: layer, channel: $0) }
        let result = try FeatureVisualization(objectives: channels, size: 128, steps: 128).run(model)
        var random = SplitMix64(noiseSeed: 1)
        let noise = RGBImage(width: 128, height: 128, pixels: (0..<(3 * 128 * 128)).map { _ in UInt8(random.index(256)) })
        let g2 = Graph(backend: b)
        _ = try model.forward(g2, g2.input(try b.tensor(Preprocessing.normalizeOnly.normalize(noise), [1, 3, 128, 128])))
        let activations = try b.values(g2.tensor(g2.tapped(layer)!))
        let plane = activations.count / g2.shape(g2.tapped(layer)!)[1]
        let baselines = (0..<8).map { c in activations[(c * plane)..<((c + 1) * plane)].reduce(0, +) / Float(plane) }
        let ratios = zip(result.objectives, baselines).map { $0 / Swift.max(abs($1), 0.01) }
        #expect(ratios.sorted()[4] > 10, "\(layer) channels 0-7: final \(result.objectives), on noise \(baselines)")
    }

    /// Inverting the photo from features.2 and features.4 beats a plain PyTorch loop (Adam on a
    /// sigmoid-parameterized image, 600 steps, no regularizer; tools/torch_render_reference.py)
    /// in half its steps, measured on the 8-bit pictures.
    @Test(arguments: ["features.2", "features.4"])
    func inversionBeatsAPlainLoop(_ layer: String) throws {
        guard let model = try model() else { return }
        let b = model.backend
        let photo = try Preprocessing.imagenet.prepare(try RGBImage(contentsOf: URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().appendingPathComponent("../../Assets/chelsea.png").standardized))
        let target = try b.tensor(photo.planes, [1, 3, 224, 224])
        let stride = layer == "features.2" ? 4 : 8
        let job = FeatureInversion(layers: [layer], steps: 300, tvWeight: FeatureInversion.defaultTVWeight(stride: stride))
        let result = try job.run(model, target: target)
        let saved = result.picture
        let error = try job.relativeErrors(model, image: saved.planes, height: 224, width: 224, target: target)[0]
        let plain = Self.reference[layer]!
        #expect(Double(error) < plain, "\(layer): \(error) vs the plain loop's \(plain)")
    }
}
