import Backend
import Foundation
import Interpret
import Models
import Testing
import TestSupport
import WeightFiles

/// pytorch-grad-cam's FullGrad on random-weight ResNet18 and MobileNetV2 (batch norms) and VGG16
/// (convolutions with biases), both backends (tools/make_fullgrad_fixtures.py).
@Suite(.timed) struct FullGradTests {
    static let fixtures = try! SafeTensorsFile(url: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/fullgrad.safetensors"))

    @Test(arguments: ["resnet18", "vgg16", "mobilenet_v2"])
    func matchesPytorchGradCAM(_ arch: String) throws {
        let c = Case(arch, in: Self.fixtures)
        let floor = Float(c.settings["float64_error"] as! Double)
        for b in backends() {
            let model = try c.model(on: b), x = try c.input(on: b)
            let result = try FullGrad().attribute(model, input: x, targets: [c.target])
            let error = relativeL2(result.map, try c.expected("fullgrad"))
            print("\(b.name) \(arch) fullgrad: \(error)")
            #expect(error < Swift.max(1e-3, 4 * floor), "\(b.name) \(arch): relative L2 \(error)")
        }
    }
}
