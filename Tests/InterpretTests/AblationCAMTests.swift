import Backend
import Foundation
import Interpret
import Models
import Testing
import TestSupport
import WeightFiles

/// pytorch-grad-cam's AblationCAM on random-weight ResNet18 (layer1), VGG16 (features.3) and
/// MobileNetV2 (features.1.conv.0), layers after a ReLU (an ablated channel is 0), both backends
/// (tools/make_ablation_fixtures.py).
@Suite(.timed) struct AblationCAMTests {
    static let fixtures = try! SafeTensorsFile(url: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/ablation.safetensors"))

    @Test(arguments: ["resnet18", "vgg16", "mobilenet_v2"])
    func matchesPytorchGradCAM(_ arch: String) throws {
        let c = Case(arch, in: Self.fixtures)
        let floor = Float(c.settings["float64_error"] as! Double)
        for b in backends() {
            let model = try c.model(on: b), x = try c.input(on: b)
            let result = try CAM(.ablationCAM, layer: c.layer, batch: 64).attribute(model, input: x, targets: [c.target])
            let error = relativeL2(result.map, try c.expected("ablationcam"))
            print("\(b.name) \(arch) ablationcam: \(error)")
            #expect(error < Swift.max(1e-3, 4 * floor), "\(b.name) \(arch): relative L2 \(error)")
        }
    }
}
