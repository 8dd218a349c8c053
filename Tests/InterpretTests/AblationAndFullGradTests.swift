import Backend
import Foundation
import Interpret
import Models
import Testing
import TestSupport
import WeightFiles

/// pytorch-grad-cam's AblationCAM and FullGrad on random-weight ResNet18, VGG16 and
/// MobileNetV2, both backends. AblationCAM at ResNet18's layer1, VGG16's features.3 and
/// MobileNetV2's features.1.conv.0, layers after a ReLU (an ablated channel is 0;
/// tools/make_ablation_fixtures.py); FullGrad over every batch norm (ResNet18, MobileNetV2) or
/// convolution with a bias (VGG16) (tools/make_fullgrad_fixtures.py).
@Suite(.timed) struct AblationAndFullGradTests {
    static let archs = ["resnet18", "vgg16", "mobilenet_v2"]
    static func fixtures(_ name: String) -> SafeTensorsFile {
        try! SafeTensorsFile(url: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name).safetensors"))
    }
    static let ablation = fixtures("ablation"), fullGrad = fixtures("fullgrad")

    /// The method's map on both backends within max(1e-3, 4 x the reference's float32-vs-float64
    /// distance) of the fixture's `key`.
    func check(_ file: SafeTensorsFile, _ arch: String, key: String, _ method: (Case) -> any AttributionMethod) throws {
        let c = Case(arch, in: file)
        let floor = Float(c.settings["float64_error"] as! Double)
        for b in backends() {
            let model = try c.model(on: b), x = try c.input(on: b)
            let result = try method(c).attribute(model, input: x, targets: [c.target])
            let error = relativeL2(result.map, try c.expected(key))
            #expect(error < Swift.max(1e-3, 4 * floor), "\(b.name) \(arch) \(key): relative L2 \(error)")
        }
    }

    @Test(arguments: archs)
    func ablationCAMMatchesPytorchGradCAM(_ arch: String) throws {
        try check(Self.ablation, arch, key: "ablationcam") { CAM(.ablationCAM, layer: $0.layer, batch: 64) }
    }

    @Test(arguments: archs)
    func fullGradMatchesPytorchGradCAM(_ arch: String) throws {
        try check(Self.fullGrad, arch, key: "fullgrad") { _ in FullGrad() }
    }
}
