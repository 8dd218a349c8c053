import Backend
import Foundation
import Interpret
import Models
import Testing
import TestSupport
import WeightFiles

/// Quantus' FaithfulnessCorrelation, PixelFlipping, RegionPerturbation, MaxSensitivity and
/// AvgSensitivity, ROAD's imputation and curve, and Captum's infidelity on random-weight ResNet18 and MobileNetV2 at
/// 36x36, both backends, with the libraries' own random draws
/// (tools/make_perturbation_fixtures.py): the map is the gradient's, and the scores match
/// within max(tolerance, 4 x the reference's float32-vs-float64 distance).
@Suite(.timed) struct PerturbationMetricTests {
    static let archs = ["resnet18", "mobilenet_v2"]
    static let file = try! SafeTensorsFile(url: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/perturbation.safetensors"))

    /// The fixture's scores and float64 distances of `arch`.
    static func reference(_ c: Case) -> (scores: [String: [Double]], floors: [String: Double]) {
        (c.settings["scores"] as! [String: [Double]], c.settings["float64_error"] as! [String: Double])
    }

    /// Rows of a fixture array [k, ...].
    static func rows(_ c: Case, _ key: String) throws -> [[Float]] {
        let t = try file.tensor("\(c.arch).\(key)")
        let n = t.values.count / t.shape.dims[0]
        return (0..<t.shape.dims[0]).map { Array(t.values[($0 * n)..<(($0 + 1) * n)]) }
    }

    /// |got - want| within `relative` of max(|want|, `scale`), or 4 x the float64 distance.
    func close(_ got: [Float], _ want: [Double], floor: Double, relative: Double, scale: Double, _ what: String) {
        #expect(got.count == want.count, "\(what): \(got.count) values, expected \(want.count)")
        let size = want.map(abs).max() ?? 0
        let error = zip(got, want).map { abs(Double($0) - $1) }.max() ?? .infinity
        #expect(error <= Swift.max(relative * Swift.max(size, scale), 4 * floor), "\(what): off by \(error) (largest \(size)), float64 floor \(floor)")
    }

    @Test(arguments: archs)
    func faithfulnessMetricsMatchQuantus(_ arch: String) throws {
        let c = Case(arch, in: Self.file)
        let (scores, floors) = Self.reference(c)
        let subsets = try Self.rows(c, "subsets").map { $0.map { Int($0) } }
        for b in backends() {
            let model = try c.model(on: b), x = try c.input(on: b)
            let map = try c.expected("map")[...]
            // Loupe's gradient map is the one Quantus was given.
            let own = try VanillaGradient().attribute(model, input: x, targets: [c.target])
            #expect(relativeL2(own.map, Array(map)) < 1e-3, "\(b.name) \(arch): the gradient map")
            let correlation = try FaithfulnessCorrelation(batch: 5, subsets: subsets).evaluate(model, image: x, target: c.target, map: map)
            close([correlation], scores["faithfulness_correlation"]!, floor: floors["faithfulness_correlation"]!, relative: 1e-3, scale: 1,
                  "\(b.name) \(arch) faithfulness correlation")
            let flipping = try PixelFlipping(step: 108, batch: 16).evaluate(model, image: x, target: c.target, map: map)
            close(flipping.curve, scores["pixel_flipping"]!, floor: floors["pixel_flipping"]!, relative: 1e-3, scale: 0,
                  "\(b.name) \(arch) pixel flipping")
            for patch in [6, 10] {
                let key = "region_perturbation_\(patch)"
                let regions = try RegionPerturbation(patch: patch, regions: 8, batch: 3).evaluate(model, image: x, target: c.target, map: map)
                close(regions.curve, scores[key]!, floor: floors[key]!, relative: 1e-3, scale: 0, "\(b.name) \(arch) \(key)")
            }
        }
    }

    @Test(arguments: archs)
    func sensitivityAndInfidelityMatchQuantusAndCaptum(_ arch: String) throws {
        let c = Case(arch, in: Self.file)
        let (scores, floors) = Self.reference(c)
        for b in backends() {
            let model = try c.model(on: b), x = try c.input(on: b)
            let map = try c.expected("map")[...]
            for (kind, key) in [(Sensitivity.Kind.max, "max_sensitivity"), (.average, "avg_sensitivity")] {
                let noise = try Self.rows(c, "\(key)_noise")
                let value = try Sensitivity(kind, batch: 3, noise: noise).evaluate(model, image: x, target: c.target, method: VanillaGradient(), map: map)
                close([value], scores[key]!, floor: floors[key]!, relative: 1e-3, scale: 0, "\(b.name) \(arch) \(key)")
            }
            let perturbations = try Self.rows(c, "infidelity_noise")
            let attributions = try c.expected("gradient_x_input")[...]
            for (normalize, key) in [(false, "infidelity_plain"), (true, "infidelity_normalized")] {
                let value = try Infidelity(normalize: normalize, batch: 2, perturbations: perturbations)
                    .evaluate(model, image: x, target: c.target, attributions: attributions)
                close([value], scores[key]!, floor: floors[key]!, relative: 1e-3, scale: 0, "\(b.name) \(arch) \(key)")
            }
        }
    }

    /// ROAD: the imputed images at 30% and 90% and the curve at 10, 30, ..., 90% against Quantus'
    /// noisy_linear_imputation (noise 0) and the reference model's probabilities.
    @Test(arguments: archs)
    func roadMatchesQuantusImputation(_ arch: String) throws {
        let c = Case(arch, in: Self.file)
        let (scores, floors) = Self.reference(c)
        let map = try c.expected("map")[...]
        let imputed = try Self.rows(c, "road_imputed")
        let x = try cpu.values(try c.input(on: cpu))
        let values = Array(map)
        let order = values.indices.sorted { values[$0] != values[$1] ? values[$0] > values[$1] : $0 < $1 }
        for (k, p) in [30.0, 90.0].enumerated() {
            let got = try RemoveAndDebias.impute(x, height: 36, width: 36, removed: Array(order.prefix(Int(36 * 36 * p / 100))), start: x.map(Double.init))
            #expect(relativeL2(got.map(Float.init), imputed[k]) < 1e-5, "\(arch) imputation at \(p)%")
        }
        for b in backends() {
            let model = try c.model(on: b), input = try c.input(on: b)
            let road = try RemoveAndDebias(percentages: [10, 30, 50, 70, 90], noise: 0, batch: 2).evaluate(model, image: input, target: c.target, map: map)
            close(road.curve, scores["road"]!, floor: floors["road"]!, relative: 1e-3, scale: 0, "\(b.name) \(arch) road")
        }
    }

    /// Drawn subsets, noise and perturbations: the same seed gives the same score, another
    /// seed another; bad settings are refused with the metric's name.
    @Test func drawsFollowTheSeedAndBadSettingsAreRefused() throws {
        let c = Case("resnet18", in: Self.file)
        let model = try c.model(on: cpu), x = try c.input(on: cpu)
        let map = try c.expected("map")[...]
        let a = try FaithfulnessCorrelation(runs: 4, subsetSize: 50, seed: 3).evaluate(model, image: x, target: c.target, map: map)
        let again = try FaithfulnessCorrelation(runs: 4, subsetSize: 50, seed: 3).evaluate(model, image: x, target: c.target, map: map)
        let other = try FaithfulnessCorrelation(runs: 4, subsetSize: 50, seed: 4).evaluate(model, image: x, target: c.target, map: map)
        #expect(a == again && a != other && abs(a) <= 1)
        let s = try Sensitivity(.max, samples: 2, batch: 2, seed: 1).evaluate(model, image: x, target: c.target, method: VanillaGradient(), map: map)
        let t = try Sensitivity(.average, samples: 2, batch: 2, seed: 1).evaluate(model, image: x, target: c.target, method: VanillaGradient(), map: map)
        #expect(s >= t && t > 0, "max \(s), average \(t)")
        let i1 = try Infidelity(samples: 2, seed: 2).evaluate(model, image: x, target: c.target, attributions: map)
        let i2 = try Infidelity(samples: 2, seed: 2).evaluate(model, image: x, target: c.target, attributions: map)
        #expect(i1 == i2 && i1 >= 0)
        let refusals: [(String, () throws -> Void)] = [
            ("faithfulness correlation", { _ = try FaithfulnessCorrelation(subsetSize: 3 * 36 * 36).evaluate(model, image: x, target: c.target, map: map) }),
            ("faithfulness correlation", { _ = try FaithfulnessCorrelation(subsets: [[-1]]).evaluate(model, image: x, target: c.target, map: map) }),
            ("pixel flipping", { _ = try PixelFlipping(step: 0).evaluate(model, image: x, target: c.target, map: map) }),
            ("pixel flipping", { _ = try PixelFlipping().evaluate(model, image: x, target: c.target, map: map.dropLast()) }),
            ("region perturbation", { _ = try RegionPerturbation(patch: 37).evaluate(model, image: x, target: c.target, map: map) }),
            ("sensitivity", { _ = try Sensitivity(.max, noise: [[1]]).evaluate(model, image: x, target: c.target, method: VanillaGradient(), map: map) }),
            ("infidelity", { _ = try Infidelity(stdev: 0).evaluate(model, image: x, target: c.target, attributions: map) }),
            ("target class", { _ = try RegionPerturbation(patch: 18, regions: 1).evaluate(model, image: x, target: 5000, map: map) }),
        ]
        for (name, call) in refusals {
            #expect { try call() } throws: { "\($0)".contains(name) }
        }
    }
}
