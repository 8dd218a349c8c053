import Backend
import Foundation
import Interpret
import Models
import Testing
import TestSupport
import WeightFiles

/// Captum's Lime and KernelShap on random-weight ResNet18, VGG16 and MobileNetV2
/// (tools/make_surrogate_fixtures.py), features a grid of 8-pixel cells, given Captum's own binary
/// vectors, on both backends. Captum fits in float32 (sklearn's Lasso to its 1e-4 tolerance;
/// LinearRegression through float32 LAPACK); Loupe fits in float64 to convergence, so it is held
/// to the same fit in float64 closely and to Captum's within 4x Captum's own distance from it.
@Suite(.timed) struct SurrogateTests {
    static let fixtures = try! SafeTensorsFile(url: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/surrogate.safetensors"))

    @Test(arguments: ["resnet18", "vgg16", "mobilenet_v2"])
    func limeAndKernelShapMatchCaptum(_ arch: String) throws {
        let c = Case(arch, in: Self.fixtures)
        let floors = c.settings["float64_error"] as! [String: Double]
        let cell = c.settings["cell"] as! Int
        for b in backends() {
            let model = try c.model(on: b), input = try c.input(on: b)
            for (kind, baseline) in [(Surrogate.Kind.lime, IntegratedGradients.Baseline.zero), (.kernelShap, .black)] {
                let flat = try c.expected("\(kind.rawValue).samples")
                let m = flat.count / (c.settings["samples"] as! Int)
                let given = stride(from: 0, to: flat.count, by: m).map { flat[$0..<($0 + m)].map { $0 != 0 } }
                let method = Surrogate(kind, samples: given.count, baseline: baseline, cell: cell, batch: 16, given: given)
                let result = try method.attribute(model, input: input, targets: [c.target])
                let exact = relativeL2(result.raw!, try c.expected("\(kind.rawValue).float64"))
                let captum = relativeL2(result.raw!, try c.expected(kind.rawValue))
                #expect(exact < 1e-3, "\(b.name) \(arch) \(kind): relative L2 \(exact) from the float64 fit")
                #expect(captum < Swift.max(1e-3, 4 * Float(floors[kind.rawValue]!)), "\(b.name) \(arch) \(kind): relative L2 \(captum) from Captum")
            }
        }
    }

    /// KernelSHAP's draws: all features on, all off, then k features on with the Shapley kernel's
    /// probabilities (k = 1 and M - 1 most often); LIME's: each feature on half the time. Given
    /// every coalition of four features as often as the kernel weighs it, KernelSHAP's fit is the
    /// exact Shapley values of the network's logit, which add up to f(x) - f(baseline).
    @Test func samplesAndExactShapleyValues() throws {
        let shap = Surrogate(.kernelShap, samples: 4000, seed: 3)
        let zs = shap.drawn(features: 10, image: 0)
        #expect(zs[0].allSatisfy { $0 } && zs[1].allSatisfy { !$0 })
        var sizes = [Int](repeating: 0, count: 11)
        for z in zs.dropFirst(2) { sizes[z.filter { $0 }.count] += 1 }
        #expect(sizes[0] == 0 && sizes[10] == 0)
        let expected = (1..<10).map { 9.0 / Double($0 * (10 - $0)) }, total = expected.reduce(0, +)
        for k in 1..<10 { #expect(abs(Double(sizes[k]) / 3998 - expected[k - 1] / total) < 0.02, "size \(k): \(sizes[k])") }
        let lime = Surrogate(.lime, samples: 2000, seed: 3).drawn(features: 10, image: 0)
        let fraction = Double(lime.joined().filter { $0 }.count) / 20_000
        #expect(abs(fraction - 0.5) < 0.02)
        #expect(Surrogate(.lime, samples: 5, seed: 3).drawn(features: 10, image: 0) != Surrogate(.lime, samples: 5, seed: 4).drawn(features: 10, image: 0))

        // Every coalition of 4 features, each as often as the Shapley kernel weighs it (sizes 1
        // and 3 twice, size 2 once), all on and all off first: the fit is the Shapley values.
        let arch = try Architectures.make("mobilenet_v2")
        let model = Model(architecture: arch, parameters: try SeededWeights.parameters(for: arch, seed: 7, on: cpu), backend: cpu)
        let x = try cpu.tensor((0..<(3 * 32 * 32)).map { Float(($0 * 7919) % 1000) / 500 - 1 }, [1, 3, 32, 32])
        let all = (0..<16).map { code in (0..<4).map { code >> $0 & 1 == 1 } }
        var given = [all[15], all[0]]
        for code in 1..<15 { given += [[Bool]](repeating: all[code], count: code.nonzeroBitCount == 2 ? 1 : 2) }
        let mask = try FeatureMask.grid(height: 32, width: 32, cell: 16)
        let result = try Surrogate(.kernelShap, samples: given.count, baseline: .black, mask: mask, given: given).attribute(model, input: x, targets: [5])
        let scores = try all.map { try coalitionScore(model, x, $0, mask) }
        var shapley = [Double](repeating: 0, count: 4)
        for code in 0..<16 {
            for j in 0..<4 where code >> j & 1 == 0 {
                let k = code.nonzeroBitCount
                shapley[j] += Double(factorial(k) * factorial(3 - k)) / 24 * Double(scores[code | 1 << j] - scores[code])
            }
        }
        let scale = shapley.map(abs).max()!
        for (p, label) in mask.labels.enumerated() {
            #expect(abs(Double(result.raw![p]) - shapley[label]) < 1e-4 * scale, "feature \(label): \(result.raw![p]) against \(shapley[label])")
        }
        #expect(abs(shapley.reduce(0, +) - Double(scores[15] - scores[0])) < 1e-4 * scale)
    }

    /// Bad settings and samples are errors.
    @Test func badSettings() throws {
        let arch = try Architectures.make("mobilenet_v2")
        let model = Model(architecture: arch, parameters: try SeededWeights.parameters(for: arch, seed: 7, on: cpu), backend: cpu)
        let x = try cpu.tensor([Float](repeating: 0.1, count: 3 * 16 * 16), [1, 3, 16, 16])
        #expect(throws: InterpretError.self) { try Surrogate(.lime, samples: 0).attribute(model, input: x, targets: [1]) }
        #expect(throws: InterpretError.self) { try Surrogate(.lime, samples: 2, given: [[true]]).attribute(model, input: x, targets: [1]) }
        #expect(throws: InterpretError.self) { try Surrogate(.lime, mask: try FeatureMask.grid(height: 8, width: 8, cell: 4)).attribute(model, input: x, targets: [1]) }
        #expect(throws: InterpretError.self) { try Surrogate(.lime, alpha: -1).attribute(model, input: x, targets: [1]) }
        #expect(throws: InterpretError.self) { try FeatureMask(labels: [0, 2], count: 3) }
        #expect(throws: InterpretError.self) { try FeatureMask.grid(height: 4, width: 4, cell: 0) }
        #expect(try FeatureMask.grid(height: 5, width: 5, cell: 2).count == 9)
    }
}

/// The target logit with the features of `z` on (the input there, the black baseline elsewhere).
private func coalitionScore(_ model: Model, _ x: Tensor, _ z: [Bool], _ mask: FeatureMask) throws -> Float {
    let values = try cpu.values(x)
    let hw = mask.labels.count
    let black = try IntegratedGradients(baseline: .black).baselineValues(values, 32, 32, model.architecture.normalization)
    let v = (0..<values.count).map { z[mask.labels[$0 % hw]] ? values[$0] : black[$0] }
    return try ClassScores(model, input: try cpu.tensor(v, [1, 3, 32, 32])).logits[5]
}

private func factorial(_ n: Int) -> Int { n <= 1 ? 1 : n * factorial(n - 1) }
