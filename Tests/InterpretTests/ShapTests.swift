import Backend
import Foundation
import Interpret
import Models
import Testing
import TestSupport
import WeightFiles

/// Captum's GradientShap and DeepLiftShap on random-weight ResNet18, VGG16 and MobileNetV2
/// (tools/make_shap_fixtures.py) over a distribution of three references (zeros, black, uniform
/// pixels), on both backends. GradientShap takes Captum's own draws (reference, point on the
/// path, noise), recorded as Captum made them.
@Suite(.timed) struct ShapTests {
    static let fixtures = try! SafeTensorsFile(url: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/shap.safetensors"))

    static func references(_ c: Case) throws -> [IntegratedGradients.Baseline] {
        let all = try fixtures.tensor("\(c.arch).references").values
        let plane = all.count / 3
        return (0..<3).map { .image(Array(all[($0 * plane)..<(($0 + 1) * plane)])) }
    }

    @Test(arguments: ["resnet18", "vgg16", "mobilenet_v2"])
    func gradientShapMatchesCaptum(_ arch: String) throws {
        let c = Case(arch, in: Self.fixtures)
        let floor = (c.settings["float64_error"] as! [String: Double])["gradient_shap"]!
        let draws = GradientShap.Draws(baselineIndices: try c.expected("gradient_shap.indices").map { Int($0) },
                                       alphas: try c.expected("gradient_shap.alphas"), noise: try c.expected("gradient_shap.noise"))
        let samples = c.settings["samples"] as! Int
        for b in backends() {
            let model = try c.model(on: b), input = try c.input(on: b)
            // Four samples per pass: the six samples take a full and a partial batch.
            let method = GradientShap(baselines: try Self.references(c), samples: samples, batch: 4, draws: draws)
            let result = try method.attribute(model, input: input, targets: [c.target])
            let error = relativeL2(result.raw!, try c.expected("gradient_shap"))
            #expect(error < Swift.max(1e-3, 4 * Float(floor)), "\(b.name) \(arch): relative L2 \(error)")
        }
    }

    @Test(arguments: ["resnet18", "vgg16", "mobilenet_v2"])
    func deepLiftShapMatchesCaptum(_ arch: String) throws {
        let c = Case(arch, in: Self.fixtures)
        let floor = (c.settings["float64_error"] as! [String: Double])["deeplift_shap"]!
        for b in backends() {
            let model = try c.model(on: b), input = try c.input(on: b)
            // Captum rescales nn.ReLU only, and its max-pool rule does not reach the result.
            let method = DeepLiftShap(baselines: try Self.references(c), deepLift: DeepLift(activations: [.relu], batch: 2, maxPoolRule: false))
            let result = try method.attribute(model, input: input, targets: [c.target])
            let error = relativeL2(result.raw!, try c.expected("deeplift_shap"))
            #expect(error < Swift.max(1e-3, 4 * Float(floor)), "\(b.name) \(arch): relative L2 \(error)")
        }
    }

    /// Loupe's own draws: a seed gives the same attribution on both backends and at any batch;
    /// another seed another one. DeepLIFT SHAP over one reference is DeepLIFT from it, and its
    /// completeness error is DeepLIFT's mean over the references.
    @Test func seededDrawsAndOneReference() throws {
        let arch = try Architectures.make("mobilenet_v2")
        let input: [Float] = (0..<(2 * 3 * 32 * 32)).map { Float(($0 * 7919) % 1000) / 500 - 1 }
        var results: [[Float]] = []
        for (b, batch) in zip(backends() + [cpu], [3, 5, 2]) {
            let model = Model(architecture: arch, parameters: try SeededWeights.parameters(for: arch, seed: 7, on: b), backend: b)
            let x = try b.tensor(input, [2, 3, 32, 32])
            let method = GradientShap(baselines: [.black, .uniform(seed: 4), .blur(sigma: 3)], samples: 7, stdev: 0.2, batch: batch, seed: 11)
            results.append(try method.attribute(model, input: x, targets: [3, 9]).raw!)
        }
        for r in results.dropFirst() { #expect(relativeL2(r, results[0]) < 1e-4) }
        let b = backends().last!
        let model = Model(architecture: arch, parameters: try SeededWeights.parameters(for: arch, seed: 7, on: b), backend: b)
        let x = try b.tensor(input, [2, 3, 32, 32])
        let other = try GradientShap(baselines: [.black, .uniform(seed: 4)], samples: 7, stdev: 0.2, seed: 12).attribute(model, input: x, targets: [3, 9])
        #expect(relativeL2(other.raw!, results[0]) > 1e-2)

        let one = try DeepLiftShap(baselines: [.uniform(seed: 2)]).attribute(model, input: x, targets: [3, 9])
        let plain = try DeepLift(baseline: .uniform(seed: 2)).attribute(model, input: x, targets: [3, 9])
        #expect(one.raw! == plain.raw! && one.completenessError! == plain.completenessError!)
        let two = try DeepLiftShap(baselines: [.black, .zero]).attribute(model, input: x, targets: [3, 9])
        let black = try DeepLift(baseline: .black).attribute(model, input: x, targets: [3, 9])
        let zero = try DeepLift(baseline: .zero).attribute(model, input: x, targets: [3, 9])
        for i in 0..<2 {
            #expect(abs(two.completenessError![i] - (black.completenessError![i] + zero.completenessError![i]) / 2) < 1e-5)
        }
        #expect(relativeL2(two.raw!, zip(black.raw!, zero.raw!).map { ($0 + $1) / 2 }) < 1e-6)
    }

    /// `--baseline` as a distribution: the SHAP methods take a list, IG and DeepLIFT refuse one;
    /// bad draws and settings are errors.
    @Test func distributionsAndBadSettings() throws {
        var s = MethodRegistry.Settings(layer: "features.18")
        s.baseline = "black,uniform,blur"
        let shap = try MethodRegistry.entry("gradient_shap")!.make(s) as! GradientShap
        #expect(shap.baselines.count == 3)
        #expect(try (MethodRegistry.entry("deeplift_shap")!.make(s) as! DeepLiftShap).baselines.count == 3)
        #expect(throws: InterpretError.self) { try MethodRegistry.entry("integrated_gradients")!.make(s) }
        #expect(throws: InterpretError.self) { try MethodRegistry.entry("deeplift")!.make(s) }
        s.baseline = "black,grey"
        #expect(throws: InterpretError.self) { try MethodRegistry.entry("gradient_shap")!.make(s) }

        let arch = try Architectures.make("mobilenet_v2")
        let model = Model(architecture: arch, parameters: try SeededWeights.parameters(for: arch, seed: 7, on: cpu), backend: cpu)
        let x = try cpu.tensor([Float](repeating: 0.1, count: 3 * 16 * 16), [1, 3, 16, 16])
        let wrong = GradientShap.Draws(baselineIndices: [0, 2], alphas: [0.5, 0.5])
        #expect(throws: InterpretError.self) { try GradientShap(baselines: [.black, .zero], samples: 2, draws: wrong).attribute(model, input: x, targets: [1]) }
        #expect(throws: InterpretError.self) { try GradientShap(baselines: [], samples: 2).attribute(model, input: x, targets: [1]) }
        #expect(throws: InterpretError.self) { try GradientShap(stdev: .nan).attribute(model, input: x, targets: [1]) }
        #expect(throws: InterpretError.self) { try DeepLiftShap(baselines: []).attribute(model, input: x, targets: [1]) }
    }
}
