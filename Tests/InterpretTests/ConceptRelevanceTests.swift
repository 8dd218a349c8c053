import Backend
import Foundation
import Interpret
import Models
import Testing
import TestSupport
import WeightFiles

/// zennit-crp's conditional heatmaps (CondAttribution, epsilon_plus_flat with zennit's
/// canonizers) on random-weight ResNet18 (layer3), VGG16 (features.22) and MobileNetV2
/// (features.13), one channel and two together, both backends (tools/make_crp_fixtures.py).
@Suite(.timed) struct ConceptRelevanceTests {
    static let fixtures = try! SafeTensorsFile(url: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/crp.safetensors"))

    @Test(arguments: ["resnet18", "vgg16", "mobilenet_v2"])
    func matchesZennitCRP(_ arch: String) throws {
        let c = Case(arch, in: Self.fixtures)
        let floors = c.settings["float64_error"] as! [String: Double]
        let concepts = c.settings["concepts"] as! [String: [Int]]
        let lrp = try LRP(composite: c.settings["composite"] as! String)
        for b in backends() {
            let model = try c.model(on: b), x = try c.input(on: b)
            for (key, channels) in concepts {
                let result = try ConceptRelevance(layer: c.layer, channels: channels, lrp: lrp).attribute(model, input: x, targets: [c.target])
                let error = relativeL2(result.map, try c.expected(key))
                #expect(error < Swift.max(1e-3, 4 * Float(floors[key]!)), "\(b.name) \(arch) \(key): relative L2 \(error)")
                #expect(result.concepts == [channels])
            }
            // Without channels: the most relevant one, which the fixture's first concept is.
            let top = try ConceptRelevance(layer: c.layer, lrp: lrp).attribute(model, input: x, targets: [c.target])
            let one = try c.expected("one")
            #expect(top.concepts == [concepts["one"]!] && relativeL2(top.map, one) < 1e-3, "\(b.name) \(arch)")
        }
    }
}
