import Backend
import Foundation
import Interpret
import Models
import Testing
import TestSupport
import WeightFiles

/// Captum's layer and neuron methods on random-weight ResNet18 (layer3), VGG16 (features.22)
/// and MobileNetV2 (features.13), 4 x 4 layers, both backends (tools/make_layer_fixtures.py):
/// LayerGradientXActivation, LayerConductance and LayerIntegratedGradients for the target
/// class; NeuronGradient and NeuronIntegratedGradients as the gradient and Integrated Gradients
/// of a model that `targeting` points at the layer's most active unit.
@Suite(.timed) struct LayerAttributionTests {
    static let fixtures = try! SafeTensorsFile(url: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/layer.safetensors"))

    @Test(arguments: ["resnet18", "vgg16", "mobilenet_v2"])
    func matchesCaptum(_ arch: String) throws {
        let c = Case(arch, in: Self.fixtures)
        let floors = c.settings["float64_error"] as! [String: Double]
        let steps = c.settings["steps"] as! Int
        let neuron = c.settings["neuron"] as! [Int]
        for b in backends() {
            let model = try c.model(on: b), x = try c.input(on: b)
            // The path methods' points pass within float32 rounding of ReLU kinks, where one
            // backend may flip a gradient (tools/make_layer_fixtures.py): 1e-2, as IG's 5e-3.
            func check(_ name: String, _ got: [Float]?) throws {
                let bound = Swift.max(["layer_gradient_x_activation", "neuron_gradient"].contains(name) ? 1e-3 : 1e-2, 4 * Float(floors[name]!))
                let error = relativeL2(try #require(got), try c.expected(name))
                #expect(error < bound, "\(b.name) \(arch) \(name): relative L2 \(error) (bound \(bound))")
            }
            for kind in LayerAttribution.Kind.allCases {
                let result = try LayerAttribution(kind, layer: c.layer, steps: steps, baseline: .black, batch: 5)
                    .attribute(model, input: x, targets: [c.target])
                try check(kind.rawValue, result.layerValues)
                #expect(result.layerShape?.count == 3 && result.layerShape?[1] == 4, "\(kind): \(result.layerShape ?? [])")
                #expect(result.map.count == x.shape.count / 3 && result.map.allSatisfy(\.isFinite))
            }
            let unit = model.targeting(.neuron(layer: c.layer, channel: neuron[0], x: neuron[2], y: neuron[1]))
            try check("neuron_gradient", try VanillaGradient().attribute(unit, input: x, targets: [0]).raw)
            try check("neuron_integrated_gradients",
                      try IntegratedGradients(steps: steps, baseline: .black, batch: 7).attribute(unit, input: x, targets: [0]).raw)
        }
    }

    /// The layer's channel sum, resized to the input, is the map; a target that is a class
    /// objective gives the class target's attributions.
    @Test func mapIsTheChannelSumAndAClassObjectiveIsTheClass() throws {
        let c = Case("resnet18", in: Self.fixtures)
        let b = cpu
        let model = try c.model(on: b), x = try c.input(on: b)
        let method = LayerAttribution(.gradientXActivation, layer: c.layer)
        let result = try method.attribute(model, input: x, targets: [c.target])
        let shape = try #require(result.layerShape)
        let (ch, lh, lw) = (shape[0], shape[1], shape[2])
        var sums = [Float](repeating: 0, count: lh * lw)
        for k in 0..<ch { for p in 0..<(lh * lw) { sums[p] += result.layerValues![k * lh * lw + p] } }
        let resized = try b.values(b.resizeBilinear(try b.tensor(sums, [1, 1, lh, lw]), height: result.height, width: result.width))
        #expect(relativeL2(result.map, resized) < 1e-6)
        let viaObjective = try method.attribute(model.targeting(.classLogit(c.target)), input: x, targets: [0])
        #expect(relativeL2(try #require(viaObjective.layerValues), result.layerValues!) < 1e-6)
    }
}
