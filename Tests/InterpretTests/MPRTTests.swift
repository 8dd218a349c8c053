import Backend
import Foundation
import Interpret
import Models
import Testing
import TestSupport
import WeightFiles

/// Quantus' MPRT, SmoothMPRT and EfficientMPRT (tools/make_mprt_fixtures.py) on random-weight
/// ResNet18 and MobileNetV2 at 32x32, both backends: Quantus' own layer list, order, noise
/// averaging and scores, with its layers re-drawn as Loupe re-draws them. Scores match within
/// max(tolerance, 4 x the reference's float32-vs-float64 distance).
@Suite(.timed) struct MPRTTests {
    static let archs = ["resnet18", "mobilenet_v2"]
    static let file = try! SafeTensorsFile(url: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/mprt.safetensors"))

    static func reference(_ c: Case) -> (scores: [String: [Double]], floors: [String: Double], layers: [String]) {
        (c.settings["scores"] as! [String: [Double]], c.settings["float64_error"] as! [String: Double], c.settings["layers"] as! [String])
    }

    func close(_ got: [Float], _ want: some Collection<Double>, floor: Double, tolerance: Double, _ what: String) {
        #expect(got.count == want.count, "\(what): \(got.count) values, expected \(want.count)")
        let error = zip(got, want).map { abs(Double($0) - $1) }.max() ?? .infinity
        #expect(error <= Swift.max(tolerance, 4 * floor), "\(what): off by \(error), float64 floor \(floor)")
    }

    @Test(arguments: archs)
    func layersAreQuantusModulesInItsOrder(_ arch: String) throws {
        let c = Case(arch, in: Self.file)
        let architecture = try Architectures.make(arch)
        let layers = Self.reference(c).layers
        #expect(ModelRandomization(granularity: .layer, order: .topDown).stages(of: architecture) == layers)
        #expect(ModelRandomization(granularity: .layer, order: .bottomUp).stages(of: architecture) == layers.reversed())
        #expect(ModelRandomization(granularity: .layer, order: .independent).stages(of: architecture) == layers.reversed())
    }

    /// MPRT top down through every layer (ResNet18) or the first 24 (MobileNetV2's 105 take the
    /// longest on the CPU reference and add nothing new).
    @Test(arguments: archs)
    func mprtMatchesQuantus(_ arch: String) throws {
        let c = Case(arch, in: Self.file)
        let (scores, floors, layers) = Self.reference(c)
        let count = arch == "resnet18" ? layers.count : 24
        for b in backends() {
            let check = try SanityCheck(model: try c.model(on: b), image: try c.input(on: b), target: c.target, methods: [VanillaGradient()],
                                        randomization: ModelRandomization(seed: 1, granularity: .layer, order: .topDown), stageCount: count)
            #expect(check.stages.map(\.name) == ["original"] + layers.prefix(count))
            close(check.stages.dropFirst().map { $0.spearman[0] }, scores["mprt"]!.prefix(count), floor: floors["mprt"]!, tolerance: 1e-3,
                  "\(b.name) \(arch) MPRT")
        }
    }

    /// SmoothMPRT bottom up through the stages whose noise the fixture holds, with that noise.
    @Test(arguments: archs)
    func smoothMPRTMatchesQuantus(_ arch: String) throws {
        let c = Case(arch, in: Self.file)
        let (scores, floors, layers) = Self.reference(c)
        let noise = try c.file.tensor("\(arch).smooth_noise")
        let (sets, per, size) = (noise.shape.dims[0], noise.shape.dims[1], noise.shape.dims[2])
        let given = (0..<sets).map { s in (0..<per).map { k in Array(noise.values[((s * per + k) * size)..<((s * per + k + 1) * size)]) } }
        let smoothing = MapSmoothing(samples: c.settings["smooth_samples"] as! Int, magnitude: Float(c.settings["smooth_noise"] as! Double),
                                     batch: 3, noise: given)
        for b in backends() {
            let check = try SanityCheck(model: try c.model(on: b), image: try c.input(on: b), target: c.target, methods: [VanillaGradient()],
                                        randomization: ModelRandomization(seed: 1, granularity: .layer, order: .bottomUp),
                                        stageCount: sets - 1, smoothing: smoothing)
            #expect(check.stages.map(\.name) == ["original"] + layers.reversed().prefix(sets - 1))
            close(check.stages.dropFirst().map { $0.spearman[0] }, scores["smooth_mprt"]!.prefix(sets - 1), floor: floors["smooth_mprt"]!,
                  tolerance: 1e-3, "\(b.name) \(arch) smooth MPRT")
        }
        // Too few given draws are refused before any pass.
        let b = backends()[0]
        #expect(throws: InterpretError.self) {
            try SanityCheck(model: try c.model(on: b), image: try c.input(on: b), target: c.target, methods: [VanillaGradient()],
                            randomization: ModelRandomization(granularity: .layer, order: .bottomUp), stageCount: sets,
                            smoothing: smoothing)
        }
    }

    /// EfficientMPRT: the entropy of the trained and the fully random model's maps (one stage
    /// with every layer random), and the entropy function on Quantus' own random map.
    @Test(arguments: archs)
    func efficientMPRTMatchesQuantus(_ arch: String) throws {
        let c = Case(arch, in: Self.file)
        let (scores, floors, layers) = Self.reference(c)
        let entropies = scores["entropy"]!
        #expect(abs(Double(discreteEntropy(try c.expected("random_map"))) - entropies[1]) < 1e-5, "\(arch) entropy of Quantus' map")
        #expect(discreteEntropy([Float](repeating: 2, count: 9)) == 0)
        #expect(abs(discreteEntropy([0, 1, 2, 3]) - Float(log(4.0))) < 1e-6)
        for b in backends() {
            let check = try SanityCheck(model: try c.model(on: b), image: try c.input(on: b), target: c.target, methods: [VanillaGradient()],
                                        randomization: ModelRandomization(seed: 1, granularity: .layer, order: .bottomUp), finalOnly: true)
            #expect(check.stages.map(\.name) == ["original", layers[0]])
            #expect(normalizedError(check.stages[1].maps[0], try c.expected("random_map")) < 1e-3, "\(b.name) \(arch) the random model's map")
            // A value on a bin edge may fall either side for float32 rounding: a bin holds 1/1024
            // of the values, which moves the entropy by at most about 1e-2.
            close(check.stages.map { $0.entropy[0] }, entropies, floor: floors["entropy"]!, tolerance: 1e-2, "\(b.name) \(arch) entropies")
            close(check.entropyRise, scores["efficient_mprt"]!, floor: floors["efficient_mprt"]!, tolerance: 3e-3, "\(b.name) \(arch) eMPRT")
        }
    }
}
