import Backend
import Foundation
import Graph
import Interpret
import Models
import Testing
import TestSupport
import WeightFiles

let relevanceFixtures = try! SafeTensorsFile(url: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Fixtures/lrp.safetensors"))

/// zennit's LRP on random-weight ResNet18, VGG16 and MobileNetV2 (tools/make_lrp_fixtures.py):
/// its five composites and one assembled from other rules and parameters, on both backends.
@Suite(.timed) struct RelevanceTests {
    /// max(1e-3, 4 x zennit's own float32-vs-float64 distance) for `key`.
    func bound(_ c: Case, _ key: String) -> Float {
        let errors = c.settings["float64_error"] as! [String: Double]
        return Swift.max(1e-3, 4 * Float(errors[key]!))
    }

    @Test(arguments: ["resnet18", "vgg16", "mobilenet_v2"])
    func compositesMatchZennit(_ arch: String) throws {
        let c = Case(arch, in: relevanceFixtures)
        for b in backends() {
            let model = try c.model(on: b), x = try c.input(on: b)
            for key in LRP.compositeNames + ["custom"] {
                let method = try LRP(composite: key == "custom" ? c.settings["custom"] as! String : key)
                let result = try method.attribute(model, input: x, targets: [c.target])
                let want = try c.expected(key)
                let error = relativeL2(result.raw!, want)
                #expect(error < bound(c, key), "\(b.name) \(arch) \(key): relative L2 \(error)")
                // Conservation as zennit has it: the same total relevance.
                let (got, expected) = (result.raw!.reduce(0, +), want.reduce(0, +))
                #expect(abs(got - expected) < 1e-3 * Swift.max(1, abs(expected)), "\(b.name) \(arch) \(key): sum \(got), zennit \(expected)")
            }
        }
    }

    /// LRP-0 on a ReLU network is gradient x input divided by the target's logit (Ancona et
    /// al. 2018; the one-hot seed divides by the logit): through ResNet18's additions (split by
    /// contribution), max pool (the gradient), average pool and folded batch norms. A check
    /// that needs no reference library.
    @Test func lrpZeroIsGradientTimesInputOverTheLogit() throws {
        let c = Case("resnet18")
        for b in backends() {
            let model = try c.model(on: b), x = try c.input(on: b)
            let lrp = try LRP(composite: "conv=epsilon:0,linear=epsilon:0").attribute(model, input: x, targets: [c.target])
            let gxi = try GradientTimesInput().attribute(model, input: x, targets: [c.target]).raw!
            let g = Graph(backend: b)
            g.keptLayers = []
            let logit = try b.values(g.tensor(try model.forward(g, g.input(x))))[c.target]
            let error = relativeL2(lrp.raw!, gxi.map { $0 / logit })
            #expect(error < 1e-4, "\(b.name): relative L2 \(error) between LRP-0 and gradient x input / logit \(logit)")
        }
    }

    @Test func compositesAndRulesParse() throws {
        let box = try LRP(composite: "epsilon_gamma_box", gamma: 0.5).resolved(for: .imagenet)
        #expect(box.convolution == .gamma(0.5) && box.linear == .epsilon(1e-6))
        guard case .zBox(let low, let high)? = box.first else { Issue.record("no z_box first rule"); return }
        #expect(abs(low[0] + 0.485 / 0.229) < 1e-6 && abs(high[2] - (1 - 0.406) / 0.225) < 1e-6)
        let custom = try LRP(composite: "conv=alpha_beta:3:2, linear=epsilon:0.25, first=w_square").resolved(for: .imagenet)
        #expect(custom.convolution == .alphaBeta(alpha: 3, beta: 2) && custom.linear == .epsilon(0.25) && custom.first == .wSquare)
        #expect(try LRP(composite: "conv=z_plus,linear=epsilon").resolved(for: .imagenet).first == nil)
        #expect(try LRP(composite: "conv=z_plus,linear=epsilon,first=z_box:-3:3").resolved(for: .imagenet).first
                == .zBox(low: [-3, -3, -3], high: [3, 3, 3]))
        #expect(try LRP(composite: "conv=z_plus,linear=epsilon,first=z_box:-1:-2:-3:1:2:3").resolved(for: .imagenet).first
                == .zBox(low: [-1, -2, -3], high: [1, 2, 3]))
        for (spec, message) in [("epsilon", "unknown LRP composite"), ("conv=gamma", "needs both"),
                                ("conv=alpha_beta:2:2,linear=epsilon", "alpha - beta must be 1"),
                                ("conv=z_plus,conv=flat,linear=epsilon", "twice"), ("conv=z_plus:1,linear=epsilon", "at most 0"),
                                ("conv=gamma:-1,linear=epsilon", "at least 0"), ("conv=sharp,linear=epsilon", "unknown LRP rule"),
                                ("layer=flat,linear=epsilon", "is not conv=RULE"),
                                ("conv=z_plus,linear=epsilon,first=z_box:1", "z_box takes"), ("conv=z_plus,linear=epsilon,first=z_box:3:-3", "below its high"),
                                ("conv=epsilon:inf,linear=epsilon", "not a finite number")] {
            #expect { _ = try LRP(composite: spec) } throws: { "\($0)".contains(message) }
        }
        #expect { _ = try LRP(epsilon: .nan) } throws: { "\($0)".contains("--epsilon") }
    }
}
