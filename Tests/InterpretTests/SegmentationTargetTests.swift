import Backend
import Foundation
import Interpret
import Models
import Testing
import TestSupport
import WeightFiles

/// A segmentation model's target: one model of each family of torchvision's segmentation
/// builders (LR-ASPP and DeepLabV3 on MobileNetV3-Large, FCN on ResNet50) exported by both
/// exporters (tools/make_onnx_fixtures.py --segmentation, seeded weights, 64x64). Its dense output
/// against PyTorch's, the input gradient of a class summed over its predicted pixels, and Grad-CAM
/// of that target at pytorch-grad-cam's tutorial layer against its `SemanticSegmentationTarget`,
/// on both backends.
@Suite(.timed) struct SegmentationTargetTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ModelsTests/Fixtures/onnx")

    @Test(arguments: ["segmentation", "fcn", "deeplabv3"], ["torchscript", "dynamo"])
    func regionGradCAMMatchesPytorchGradCam(family: String, exporter: String) throws {
        let reference = try SafeTensorsFile(url: Self.folder.appendingPathComponent("\(family).safetensors"))
        let (architecture, _) = try ModelLocator.onnx(Self.folder.appendingPathComponent("\(family)_\(exporter).onnx").path, weightsRequired: false)
        let layer = try #require(reference.metadata["layer"])
        #expect(architecture.modules.contains { $0.name == layer }, "\(family) \(exporter): the CAM layer \(layer) by its torch name")
        #expect(architecture.lastConvLayer == "model.backbone", "\(family) \(exporter): the default CAM layer is the backbone's output")
        // The gradient's bound: max(1e-3, 4 x PyTorch's own float32-vs-float64 error), as the
        // model tests bound theirs.
        let floor = try #require(Float(reference.metadata["\(exporter).grad_floor"] ?? ""))
        let x = try reference.tensor("\(exporter).input"), mask = try reference.tensor("\(exporter).mask").values.map { $0 > 0.5 }
        let targetText = try #require(reference.metadata["\(exporter).target"])
        let target = try #require(Int(targetText))
        for b in backends() {
            let model = Model(architecture: architecture, parameters: try SeededWeights.parameters(for: architecture, seed: 20261126, on: b), backend: b)
            let input = try b.tensor(x.values, x.shape)
            // The dense output, averaged over 4x4 blocks as the fixture keeps it; the predicted
            // pixels of the target class as PyTorch's.
            let scores = try ClassScores(model, input: input)
            let dense = try #require(scores.dense, "\(exporter): a [N, C, H, W] output is a segmentation's")
            #expect(dense.classes == 21 && dense.height == 64 && dense.width == 64)
            var pooled = [Float](repeating: 0, count: 21 * 16 * 16)
            for (p, v) in dense.logits.enumerated() { pooled[(p / 4096) * 256 + (p % 4096 / 64 / 4) * 16 + (p % 64) / 4] += v / 16 }
            let want = try reference.tensor("\(exporter).pooled_output").values
            #expect(normalizedError(pooled, want) < 1e-4, "\(b.name) \(family) \(exporter): output error \(normalizedError(pooled, want))")
            let mismatched = zip(dense.predictedMask(0, target), mask).filter { $0 != $1 }.count
            #expect(mismatched <= 4, "\(b.name) \(family) \(exporter): \(mismatched) pixels predicted otherwise than in PyTorch")
            // The class summed over PyTorch's predicted pixels.
            let region = try model.summed(over: mask)
            let gradient = try VanillaGradient().attribute(region, input: input, targets: [target])
            let grad = try #require(gradient.raw(0)), wantGrad = try reference.tensor("\(exporter).input_grad").values
            let gradError = normalizedError(Array(grad), wantGrad)
            #expect(gradError < max(1e-3, 4 * floor), "\(b.name) \(family) \(exporter): input gradient error \(gradError) (PyTorch's float32 error \(floor))")
            let cam = try CAM(.gradCAM, layer: layer).attribute(region, input: input, targets: [target])
            let wantCAM = try reference.tensor("\(exporter).gradcam").values
            let worst = maxAbsDifference(cam.map, wantCAM)
            #expect(cam.map.count == wantCAM.count && worst < 2e-3, "\(b.name) \(family) \(exporter) Grad-CAM: max abs error \(worst)")
        }
    }

    /// Regions: a box sampled onto the output's grid; empty boxes, boxes outside the input and
    /// empty masks refused.
    @Test func regionsAreCheckedAndResampled() throws {
        let logits = (0..<(2 * 4 * 4)).map { Float($0 % 16 < 8 ? ($0 < 16 ? 1 : -1) : ($0 < 16 ? -1 : 1)) }
        let dense = try DenseScores(logits: logits, shape: [1, 2, 4, 4])
        #expect(dense.pixelCounts(0) == [8, 8])
        #expect(dense.predictedMask(0, 0) == (0..<16).map { $0 < 8 })
        // A box of an 8x8 input covering its left half: the output's left two columns.
        let box = try Region.parse("box:0,0,4,8")
        #expect(try box.outputMask(0, target: 0, scores: dense, height: 8, width: 8) == (0..<16).map { $0 % 4 < 2 })
        #expect(throws: InterpretError.self) { try Region.parse("box:4,0,4,8") }
        #expect(throws: InterpretError.self) { try Region.parse("box:1,2,3") }
        #expect(throws: InterpretError.self) { try Region.box(x0: 0, y0: 0, x1: 9, y1: 8).outputMask(0, target: 0, scores: dense, height: 8, width: 8) }
        #expect(throws: InterpretError.self) { try Region.mask([Bool](repeating: false, count: 64)).outputMask(0, target: 0, scores: dense, height: 8, width: 8) }
        // Class 0's probability where it is predicted: the softmax of (1, -1).
        let p = dense.meanProbability(0, 0, over: dense.predictedMask(0, 0))
        #expect(abs(p - 1 / (1 + Float(exp(-2.0)))) < 1e-6)
        // Flat: equal scores at every pixel (here each pixel's own level), not when one pixel's differ.
        #expect(!dense.isFlat(0))
        var level = (0..<(2 * 16)).map { Float($0 % 16) }
        #expect(try DenseScores(logits: level, shape: [1, 2, 4, 4]).isFlat(0))
        level[16 + 5] += 1e-3
        #expect(try !DenseScores(logits: level, shape: [1, 2, 4, 4]).isFlat(0))
    }
}
