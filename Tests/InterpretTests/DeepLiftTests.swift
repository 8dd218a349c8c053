import Backend
import Foundation
import Interpret
import Models
import Testing
import TestSupport
import WeightFiles

/// Captum's DeepLift on random-weight ResNet18, VGG16 and MobileNetV2 (tools/make_deeplift_fixtures.py),
/// from a zero and a black reference, on both backends. Captum 0.9's max-pool rule does not reach
/// its result (taking MaxPool2d out of its SUPPORTED_NON_LINEAR leaves the attributions
/// unchanged), so its reference is matched with `maxPoolRule` off, and the rule itself is held to
/// DeepLIFT's summation to delta.
@Suite(.timed) struct DeepLiftTests {
    static let fixtures = try! SafeTensorsFile(url: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/deeplift.safetensors"))

    @Test(arguments: ["resnet18", "vgg16", "mobilenet_v2"])
    func matchesCaptum(_ arch: String) throws {
        let c = Case(arch, in: Self.fixtures)
        let errors = c.settings["float64_error"] as! [String: Double]
        for b in backends() {
            let model = try c.model(on: b), input = try c.input(on: b)
            for (key, baseline) in [("zero", IntegratedGradients.Baseline.zero), ("black", .black)] {
                // Captum rescales nn.ReLU only: MobileNetV2's ReLU6 pass their gradient.
                let result = try DeepLift(baseline: baseline, activations: [.relu], maxPoolRule: false).attribute(model, input: input, targets: [c.target])
                let want = try c.expected(key)
                let error = relativeL2(result.raw!, want)
                #expect(error < Swift.max(1e-3, 4 * Float(errors[key]!)), "\(b.name) \(arch) \(key): relative L2 \(error)")
            }
        }
    }

    /// The rescale and max-pool rules are complete: the attributions add up to f(x) - f(x')
    /// (Shrikumar et al.'s summation to delta), through MobileNetV2's ReLU6, additions and pools,
    /// ResNet18's and VGG16's max pools, two images per pass.
    @Test(arguments: ["mobilenet_v2", "resnet18", "vgg16"])
    func rulesSumToTheDifference(_ arch: String) throws {
        let a = try Architectures.make(arch)
        let b = backends().last!
        let model = Model(architecture: a, parameters: try SeededWeights.parameters(for: a, seed: 7, on: b), backend: b)
        let x = try b.tensor((0..<(2 * 3 * 48 * 48)).map { Float(($0 * 7919) % 1000) / 500 - 1 }, [2, 3, 48, 48])
        let result = try DeepLift(baseline: .black).attribute(model, input: x, targets: [3, 500])
        for (i, e) in result.completenessError!.enumerated() {
            let total = result.raw(i)!.reduce(0) { $0 + abs($1) }
            #expect(abs(e) < 1e-4 * total, "\(b.name) \(arch) image \(i): completeness error \(e) of attributions summing to \(total) in magnitude")
        }
        // Without the max-pool rule the sum misses it where there are max pools.
        if arch != "mobilenet_v2" {
            let plain = try DeepLift(baseline: .black, maxPoolRule: false).attribute(model, input: x, targets: [3, 500])
            #expect(plain.completenessError!.enumerated().contains { abs($1) > 1e-3 * plain.raw($0)!.reduce(0) { $0 + abs($1) } })
        }
    }

    /// `--baseline uniform`: pixels from [0, 1) normalized, the same for a seed, another for
    /// another seed or image; DeepLIFT from it still sums to f(x) - f(x') (the scored reference is
    /// the one attributed from).
    @Test func uniformBaselineIsSeededNoiseInTheInputBox() throws {
        let (h, w) = (6, 5)
        let x = [Float](repeating: 0, count: 3 * h * w)
        let draw = { (seed: UInt64, image: Int) in
            try IntegratedGradients(baseline: .uniform(seed: seed)).baselineValues(x, h, w, .imagenet, image: image, of: 2)
        }
        let a = try draw(3, 0)
        #expect(try a == draw(3, 0) && a != draw(4, 0) && a != draw(3, 1))
        var pixels: [Float] = []
        for (j, v) in a.enumerated() {
            let c = j / (h * w)
            pixels.append(v * Normalization.imagenet.std[c] + Normalization.imagenet.mean[c])
        }
        #expect(pixels.allSatisfy { $0 >= -1e-6 && $0 < 1 + 1e-6 }, "\(pixels)")
        #expect(abs(pixels.reduce(0, +) / Float(pixels.count) - 0.5) < 0.15)
        var settings = MethodRegistry.Settings(layer: "features.18")
        settings.baseline = "uniform"
        settings.seed = 9
        let b = backends().last!
        let arch = try Architectures.make("mobilenet_v2")
        let model = Model(architecture: arch, parameters: try SeededWeights.parameters(for: arch, seed: 7, on: b), backend: b)
        let input = try b.tensor((0..<(3 * 32 * 32)).map { Float(($0 * 7919) % 1000) / 500 - 1 }, [1, 3, 32, 32])
        let result = try MethodRegistry.entry("deeplift")!.make(settings).attribute(model, input: input, targets: [7])
        let total = result.raw(0)!.reduce(0) { $0 + abs($1) }
        #expect(abs(result.completenessError![0]) < 1e-4 * total)
        #expect(MethodRegistry.entry("integrated_gradients")!.parameters(settings)["seed"] as? UInt64 == 9)
    }
}
