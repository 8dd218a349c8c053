import Backend
import Foundation
import Interpret
import Models
import Testing
import TestSupport
import WeightFiles

/// The model-randomization sanity check against tools/make_sanity_fixtures.py (scipy's
/// spearmanr, skimage's SSIM, Captum's Saliency and pytorch-grad-cam's GradCAM on a cascade
/// re-drawn with the same seeded generator).
@Suite(.timed) struct SanityCheckTests {
    static let file = try! SafeTensorsFile(url: fixtureURL.deletingLastPathComponent().appendingPathComponent("sanity.safetensors"))
    nonisolated(unsafe) static let info = try! JSONSerialization.jsonObject(with: Data(file.metadata["sanity"]!.utf8)) as! [String: Any]

    @Test func spearmanAndSSIMMatchScipyAndSkimage() throws {
        let pairs = Self.info["pairs"] as! [[String: Double]]
        for (k, pair) in pairs.enumerated() {
            let a = try Self.file.tensor("pair\(k).a"), b = try Self.file.tensor("pair\(k).b")
            let (h, w) = (a.shape[0], a.shape[1])
            #expect(abs(Double(spearmanCorrelation(a.values, b.values)) - pair["spearman"]!) < 1e-5, "pair \(k) spearman")
            let s = try structuralSimilarity(a.values, b.values, width: w, height: h)
            #expect(abs(Double(s) - pair["ssim"]!) < 1e-5, "pair \(k) SSIM \(s) vs \(pair["ssim"]!)")
            #expect(spearmanCorrelation(a.values, a.values) == 1)
            #expect(abs(try structuralSimilarity(a.values, a.values, width: w, height: h) - 1) < 1e-6)
        }
        #expect(spearmanCorrelation([1, 1, 1], [1, 2, 3]).isNaN)
        #expect(throws: InterpretError.self) { try structuralSimilarity([Float](repeating: 0, count: 100), [Float](repeating: 0, count: 100), width: 10, height: 10) }
    }

    @Test func blocksRunFromTheClassifierDown() throws {
        #expect(ModelRandomization.blocks(of: try Architectures.make("resnet18")).prefix(4) == ["fc", "layer4.1", "layer4.0", "layer3.1"])
        #expect(ModelRandomization.blocks(of: try Architectures.make("resnet18")).suffix(2) == ["bn1", "conv1"])
        let mobile = ModelRandomization.blocks(of: try Architectures.make("mobilenet_v2"))
        #expect(mobile.first == "classifier.1" && mobile[1] == "features.18" && mobile.last == "features.0" && mobile.count == 20)
        #expect(ModelRandomization.blocks(of: try Architectures.make("googlenet")).first == "fc")
    }

    @Test func cascadeMatchesPyTorch() throws {
        let c = Case("resnet18")
        let stages = Self.info["stages"] as! [String]
        let wantSpearman = try Self.file.tensor("cascade.spearman").values, wantSSIM = try Self.file.tensor("cascade.ssim").values
        for b in backends() {
            let model = try c.model(on: b)
            let check = try SanityCheck(model: model, image: try c.input(on: b), target: c.target,
                                        methods: [VanillaGradient(), CAM(.gradCAM, layer: "layer4")],
                                        randomization: ModelRandomization(seed: UInt64(Self.info["random_seed"] as! Int)), stageCount: stages.count)
            #expect(check.stages.map(\.name) == ["original"] + stages)
            for (s, stage) in check.stages.dropFirst().enumerated() {
                for m in 0..<2 {
                    let (want, got) = (wantSpearman[s * 2 + m], stage.spearman[m])
                    #expect(want.isNaN == got.isNaN && (want.isNaN || abs(want - got) < 2e-3), "\(b.name) \(stage.name) \(check.methods[m]) spearman \(got) vs \(want)")
                    #expect(abs(wantSSIM[s * 2 + m] - stage.ssim[m]) < 2e-3, "\(b.name) \(stage.name) \(check.methods[m]) SSIM \(stage.ssim[m]) vs \(wantSSIM[s * 2 + m])")
                }
            }
            // The maps themselves at every stage, as PyTorch draws them; the fixture must hold maps
            // that are not constant (a fully random network's Grad-CAM map is all zeros, which
            // a backend that drew nothing would match).
            let gradients = try Self.file.tensor("cascade.gradient"), cams = try Self.file.tensor("cascade.gradcam")
            let plane = gradients.shape.count / stages.count
            var drawn = 0
            for (s, stage) in check.stages.dropFirst().enumerated() {
                let wantGradient = Array(gradients.values[(s * plane)..<((s + 1) * plane)])
                let wantCAM = Array(cams.values[(s * plane)..<((s + 1) * plane)])
                if (wantCAM.max() ?? 0) > (wantCAM.min() ?? 0) { drawn += 1 }
                #expect(normalizedError(stage.maps[0], wantGradient) < 1e-3, "\(b.name) \(stage.name) gradient map")
                #expect(normalizedError(stage.maps[1], wantCAM) < 1e-3, "\(b.name) \(stage.name) Grad-CAM map")
            }
            #expect(drawn >= 2, "the fixture's Grad-CAM maps are constant at all but \(drawn) stages")
            // Randomizing leaves the weights below the cascade alone.
            let randomized = try ModelRandomization(seed: 1).randomizing(["fc"], of: model)
            #expect(try b.values(randomized.parameters("layer4.1.conv2.weight")) == b.values(model.parameters("layer4.1.conv2.weight")))
            #expect(try b.values(randomized.parameters("fc.weight")) != b.values(model.parameters("fc.weight")))
        }
    }
}
