import Backend
import Foundation
import Interpret
import Models
import Testing
import TestSupport
import WeightFiles

/// pytorch-grad-cam's EigenCAM on random-weight ResNet18, VGG16 and MobileNetV2
/// (tools/make_eigencam_fixtures.py), 8 x 8 layers, both backends. numpy's SVD leaves the
/// component's sign to LAPACK; Loupe takes Seg-Eigen-CAM's sign rule, and the reference is
/// EigenCAM with pytorch-grad-cam's own sign-corrected projection (on two of the three networks
/// numpy's sign was the other one).
@Suite(.timed) struct EigenCAMTests {
    static let fixtures = try! SafeTensorsFile(url: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/eigencam.safetensors"))

    @Test(arguments: ["resnet18", "vgg16", "mobilenet_v2"])
    func matchesPytorchGradCAM(_ arch: String) throws {
        let c = Case(arch, in: Self.fixtures)
        let floor = Float(c.settings["float64_error"] as! Double)
        for b in backends() {
            let model = try c.model(on: b)
            let x = try Self.fixtures.tensor("\(arch).input")
            let input = try b.tensor(x.values, Shape([1] + x.shape.dims))
            // The target does not matter: EigenCAM is class-agnostic.
            let result = try CAM(.eigenCAM, layer: c.layer).attribute(model, input: input, targets: [1])
            let other = try CAM(.eigenCAM, layer: c.layer).attribute(model, input: input, targets: [700])
            #expect(result.map == other.map)
            let error = relativeL2(result.map, try c.expected("eigencam"))
            #expect(error < Swift.max(1e-3, 4 * floor), "\(b.name) \(arch): relative L2 \(error)")
        }
    }

    /// The projection is the first principal component's: on activations that are one pattern
    /// times a channel profile, it is the pattern (centred) times the profile's length, with the
    /// sign that makes its largest magnitude positive, whatever the input's sign.
    @Test func projectionIsTheFirstComponentWithSegEigenCAMsSign() throws {
        let b = cpu
        let positions = 16, channels = 5
        let first: [Float] = (0..<positions).map { $0 == 3 ? 4 : ($0 % 4 == 0 ? 1 : 0) }
        let profile: [Float] = [1, -2, 0.5, 1, 3]
        for sign: Float in [1, -1] {
            var a = [Float](repeating: 0, count: channels * positions)
            for ch in 0..<channels { for p in 0..<positions {
                a[ch * positions + p] = sign * first[p] * profile[ch]
            } }
            let projection = try CAM.eigenProjection(try b.tensor(a, [1, channels, 4, 4]), on: b)
            let mean = first.reduce(0, +) / Float(positions)
            let centred = first.map { $0 - mean }
            let norm = profile.reduce(0) { $0 + $1 * $1 }.squareRoot()
            // Centred pattern times |profile|: the largest value (position 3) positive.
            for p in 0..<positions { #expect(abs(projection[p] - centred[p] * norm) < 1e-4, "sign \(sign) position \(p): \(projection[p])") }
        }
    }
}
