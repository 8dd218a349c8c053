import Foundation
import ImageIO
import LoupeCLI
import Testing
import TestSupport

/// `loupe visualize` and `loupe invert` as a user runs them (random-weight ResNet18, tiny sizes).
@Suite(.serialized, .timed) struct RenderCommandTests {
    @Test func visualizeWritesEachImageASpriteAndSettings() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let text = try run(["visualize", "--model", "resnet18", "--random-weights", "2", "--layer", "layer2", "--batch-channels", "0..3",
                            "--size", "32", "--steps", "2", "--tv", "0.1", "--freq", "1", "--out", out.path])
        #expect(text.contains("layer2_c3.png  layer2:3  objective"), "\(text)")
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: out.path))
        #expect(files == Set((0...3).flatMap { ["layer2_c\($0).png", "layer2_c\($0).npy"] } + ["sprite.png", "visualize.json", "index.html", ".loupe.manifest.json"]))
        // The .npy holds the picture before rounding: [3, 32, 32] in [0, 1], within half a level of the PNG.
        let npy = try Data(contentsOf: out.appendingPathComponent("layer2_c1.npy"))
        #expect(String(decoding: npy.prefix(128), as: UTF8.self).contains("'shape': (3, 32, 32)"))
        let values = npy[128...].withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        let png = try RGBImage(contentsOf: out.appendingPathComponent("layer2_c1.png"))
        #expect(values.count == 3 * 32 * 32 && (0..<(32 * 32)).allSatisfy { p in
            (0..<3).allSatisfy { c in abs(values[c * 1024 + p] * 255 - Float(png.pixels[3 * p + c])) <= 0.5 + 1e-3 }
        })
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("visualize.json"))) as! [String: Any]
        let settings = json["settings"] as! [String: Any]
        #expect(settings["steps"] as? Int == 2 && settings["param"] as? String == "fourier" && settings["tv"] as? Double == 0.1)
        #expect((json["images"] as! [[String: Any]]).count == 4)

        let single = try run(["visualize", "--model", "resnet18", "--random-weights", "2", "--objective", "0.5*layer3:1 + class:7",
                              "--size", "32", "--steps", "1", "--param", "pixel", "--no-decorrelate", "--transforms", "none", "--optimizer", "sgd",
                              "--out", out.path, "--force"])
        #expect(single.contains("objective.png"))

        let diverse = try run(["visualize", "--model", "resnet18", "--random-weights", "2", "--layer", "layer3", "--channel", "2", "--count", "3",
                               "--diversity", "100", "--size", "32", "--steps", "2", "--out", out.path, "--force"])
        #expect(diverse.contains("layer3_c2_0.png") && diverse.contains("layer3_c2_2.png"), "\(diverse)")
        #expect(throws: (any Error).self) { try run(["visualize", "--model", "resnet18", "--random-weights", "2", "--layer", "layer3", "--channel", "2",
                                                     "--diversity", "100", "--size", "32", "--steps", "1", "--out", out.path]) }
    }

    @Test func invertWritesReconstructionsAStripAndErrors() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let text = try run(["invert", "--model", "resnet18", "--random-weights", "2", "--image", smallImage, "--no-resize",
                            "--layer", "layer1,layer2", "--steps", "2", "--out", out.path])
        #expect(text.contains("layer1") && text.contains("relative feature error"), "\(text)")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: out.path)) == ["layer1.png", "layer2.png", "strip.png", "invert.json", "index.html", ".loupe.manifest.json"])
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("invert.json"))) as! [String: Any]
        let layers = json["layers"] as! [[String: Any]]
        #expect(layers.map { $0["layer"] as! String } == ["layer1", "layer2"])
        // The default TV weight grows with the layer's stride (4 -> 0.625, 8 -> 2.5).
        #expect(layers.map { $0["tv"] as! Double } == [0.625, 2.5])
    }

    @Test func compareCoversVisualizeAndInvert() throws {
        guard device() else { return }
        let vis = try run(["compare", "--model", "resnet18", "--random-weights", "2", "--visualize", "layer2:3 + 0.1*class:5", "--steps", "2", "--size", "32"])
        #expect(vis.contains("visualize") && vis.contains("image") && vis.contains("OK: worst relative L2 error"), "\(vis)")
        let inv = try run(["compare", "--model", "resnet18", "--random-weights", "2", "--invert", "layer1", "--image", smallImage, "--no-resize", "--steps", "2"])
        #expect(inv.contains("relative feature error") && inv.contains("OK:"), "\(inv)")
        #expect(throws: (any Error).self) { try run(["compare", "--model", "resnet18", "--random-weights", "2", "--invert", "layer1"]) }
    }

    @Test func badObjectivesAndSizesAreClearErrorsAndLeaveNothing() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let base = ["visualize", "--model", "resnet18", "--random-weights", "2", "--size", "32", "--steps", "1", "--out", out.path]
        let cases: [([String], String)] = [
            (["--channel", "3"], "needs --layer"),
            (["--layer", "layer9", "--channel", "0"], "unknown layer layer9"),
            (["--layer", "layer2", "--channel", "500"], "channel 500 does not exist"),
            (["--layer", "layer2", "--channel", "1", "--target", "3"], "give one of"),
            (["--objective", "0.5*"], "--objective"),
            (["--class", "5000"], "out of range"),  // the old spelling still works, for one release
            (["--target", "2", "--class", "3"], "give --target once"),
            (["--target", "cat"], "classes match: 281 tabby, 282 tiger cat"),
            (["--objective", "class:cat + layer2:1"], "classes match"),
            (["--objective", "class:tabbby"], "no such class; nearest: tabby"),
            (["--layer", "layer2", "--param", "wavelet"], "--param wavelet"),
            (["--layer", "layer2", "--size", "8"], "--size 8"),
        ]
        // Class names in objectives and --target, with WordNet synonyms.
        for (extra, objective) in [(["--objective", "0.5*class:Granny Smith + layer2:1"], "0.5*class:948 + 1.0*layer2:1"),
                                   (["--target", "tabby cat"], "class:281")] {
            let folder = out.appendingPathComponent("named")
            _ = try run(Array(base.dropLast(2)) + extra + ["--out", folder.path])
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("visualize.json"))) as! [String: Any]
            #expect(((json["images"] as! [[String: Any]])[0]["objective"] as? String) == objective)
            try FileManager.default.removeItem(at: folder)
        }
        for (extra, message) in cases {
            do {
                _ = try run(base + extra)
                Issue.record("\(extra) should fail")
            } catch {
                #expect("\(error)".contains(message), "\(extra): \(error)")
            }
        }
        do {
            _ = try run(["invert", "--model", "resnet18", "--random-weights", "2", "--image", smallImage, "--layer", "nope", "--out", out.path])
            Issue.record("an unknown layer should fail")
        } catch { #expect("\(error)".contains("unknown layer nope")) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path).isEmpty)
    }
}

/// Every command on an ONNX file (torchvision's ResNet18 exported by torch.onnx.export, seeded
/// weights): classify, layers, compare, saliency, sanity, visualize, invert.
@Suite(.serialized, .timed) struct ONNXCommandTests {
    let onnx = repo.appendingPathComponent("Tests/ModelsTests/Fixtures/onnx/resnet18.onnx").path
    var model: [String] { ["--model", onnx, "--random-weights", "20261126"] }

    @Test func everyCommandTakesAnONNXModel() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let layer = "/layer4/layer4.1/relu_1/Relu_output_0"
        #expect(try run(["classify"] + model + ["--image", smallImage, "--no-resize", "--top", "2"]).contains(" 1. "))
        #expect(try run(["layers"] + model).contains(layer))
        #expect(try run(["compare"] + model + ["--image", smallImage, "--no-resize"]).contains("OK:"))
        let saliency = try run(["saliency"] + model + ["--image", smallImage, "--no-resize", "--method", "gradient,gradcam", "--out", out.path])
        #expect(saliency.contains("gradcam"), "\(saliency)")
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("rgb/summary.json"))) as! [String: Any]
        #expect(summary["layer"] as? String == "layer4", "the default CAM layer is the last output before global pooling, named by its module")
        #expect(try run(["sanity"] + model + ["--image", smallImage, "--no-resize", "--stages", "2", "--out", out.appendingPathComponent("sanity").path]).contains("randomized through"))
        // MPRT by layers in the graph's order; the default exporter's folded parameters
        // (onnx::Conv_N) belong to the layers that read them.
        for (file, names) in [(onnx, ["fc", "layer4.1.bn2", "layer4.1.conv2"]),
                              (onnx.replacingOccurrences(of: "resnet18.onnx", with: "resnet18_default.onnx"),
                               ["fc", "/layer4/layer4.1/conv2/Conv_output_0", "/layer4/layer4.1/conv1/Conv_output_0"])] {
            let mprtOut = out.appendingPathComponent("mprt")
            let text = try run(["sanity", "--model", file, "--random-weights", "20261126", "--image", smallImage, "--no-resize", "--test", "mprt",
                                "--stages", "3", "--method", "gradient", "--out", mprtOut.path, "--force"])
            let mprt = try JSONSerialization.jsonObject(with: Data(contentsOf: mprtOut.appendingPathComponent("rgb/sanity.json"))) as! [String: Any]
            let stages = mprt["stages"] as! [[String: Any]]
            #expect(stages.map { $0["randomized_through"] as! String } == ["original"] + names, "\(text)")
            #expect(stages.dropFirst().contains { ($0["spearman"] as! [Double])[0] < 0.999 }, "re-drawn layers change the map: \(text)")
        }
        #expect(throws: (any Error).self, "the weights' own seed re-draws nothing") {
            try run(["sanity", "--model", onnx, "--random-weights", "1", "--image", smallImage, "--no-resize", "--out", out.appendingPathComponent("same").path])
        }
        #expect(try run(["visualize"] + model + ["--layer", layer, "--channel", "3", "--size", "32", "--steps", "1", "--out", out.appendingPathComponent("visualize").path]).contains("objective"))
        #expect(try run(["invert"] + model + ["--image", smallImage, "--no-resize", "--layer", "/layer1/layer1.0/relu/Relu_output_0", "--steps", "1", "--out", out.appendingPathComponent("invert").path])
            .contains("relative feature error"))
    }
}

/// An exported graph's own module names and declared input, and the warnings of a run whose
/// maps say nothing.
@Suite(.serialized, .timed) struct ONNXNamesCommandTests {
    let folder = repo.appendingPathComponent("Tests/ModelsTests/Fixtures/onnx")

    /// `loupe layers` prints the module tree of a default export (the TorchScript exporter's
    /// scoped node names); `--layer layer4` reads the same output as its node's own name;
    /// `--nodes` lists the node outputs.
    @Test func layersAreNamedAsTorchNamesTheModules() throws {
        guard device() else { return }
        let model = ["--model", folder.appendingPathComponent("resnet18_default.onnx").path, "--random-weights", "20261126"]
        let tree = try run(["layers"] + model)
        let rows = tree.split(separator: "\n").map(String.init)
        #expect(rows.contains { $0.hasPrefix("layer4 ") && $0.hasSuffix("/layer4/layer4.1/relu_1/Relu_output_0") }, "\(tree)")
        #expect(rows.contains { $0.hasPrefix("  layer4.1 ") } && rows.contains { $0.hasPrefix("    layer4.1.conv2 ") }, "\(tree)")
        #expect(rows.contains { $0.hasPrefix("    layer2.0.downsample ") } && rows.contains { $0.hasPrefix("      layer2.0.downsample.0 ") }, "\(tree)")
        #expect(try run(["layers", "--nodes"] + model).contains("/layer4/layer4.1/Add_output_0"))
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        var maps: [Data] = []
        for (k, layer) in ["layer4", "/layer4/layer4.1/relu_1/Relu_output_0"].enumerated() {
            _ = try run(["saliency"] + model + ["--image", smallImage, "--no-resize", "--method", "gradcam", "--layer", layer,
                                                "--out", out.appendingPathComponent("\(k)").path])
            maps.append(try Data(contentsOf: out.appendingPathComponent("\(k)/rgb/gradcam.npy")))
        }
        #expect(maps[0] == maps[1], "a module's name reads its output node")
        do {
            _ = try run(["saliency"] + model + ["--image", smallImage, "--no-resize", "--method", "gradcam", "--layer", "layer4.7",
                                                "--out", out.appendingPathComponent("bad").path])
            Issue.record("an unknown module ran")
        } catch { #expect("\(error)".contains("unknown layer layer4.7") && "\(error)".contains("layer4.1"), "\(error)") }
    }

    /// flat.onnx declares [1, 3, 32, 32] inputs and its classifier is zeros: a photo is cropped to
    /// 32x32 by default, and the run says that its output is flat and its maps all zero, on the
    /// terminal's stderr, in summary.json and in the report. ShuffleNet, whose reshapes fix its
    /// export size (64x64), refuses another crop with one line naming the size it takes.
    @Test func theDeclaredInputIsTheDefaultAndEmptyResultsAreSaid() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let flat = ["--model", folder.appendingPathComponent("flat.onnx").path]
        _ = try run(["saliency"] + flat + ["--image", chelsea, "--method", "gradcam,gradient", "--out", out.path])
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("chelsea/summary.json"))) as! [String: Any]
        #expect(summary["input_size"] as? [Int] == [32, 32])
        let warnings = summary["warnings"] as? [String] ?? []
        #expect(warnings.count == 3 && warnings[0].contains("flat") && warnings[1] == "gradcam: the map is all zero", "\(warnings)")
        #expect(try String(contentsOf: out.appendingPathComponent("index.html"), encoding: .utf8).contains("Warning: the model&#39;s output is flat")
                || (try String(contentsOf: out.appendingPathComponent("index.html"), encoding: .utf8)).contains("Warning: the model's output is flat"))
        #expect(try run(["classify"] + flat + ["--image", chelsea, "--crop", "48"]).contains("input 48x48"), "global pooling runs at any size")
        // classify and sanity say it too: in classify's JSON, and in sanity.json and its report.
        let classified = try run(["classify"] + flat + ["--image", chelsea, "--json"])
        #expect(classified.contains("\"warnings\":[\"the model's output is flat"), "\(classified)")
        _ = try run(["sanity"] + flat + ["--image", chelsea, "--method", "gradient,gradcam", "--stages", "2", "--out", out.appendingPathComponent("sanity").path])
        let sanity = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("sanity/chelsea/sanity.json"))) as! [String: Any]
        let sanityWarnings = sanity["warnings"] as? [String] ?? []
        #expect(sanityWarnings.first?.contains("flat") == true && sanityWarnings.contains("gradcam: the map is all zero"), "\(sanityWarnings)")
        #expect(try String(contentsOf: out.appendingPathComponent("sanity/index.html"), encoding: .utf8).contains("Warning: the model"))
        let shufflenet = ["--model", folder.appendingPathComponent("shufflenet_v2_x1_0_default.onnx").path, "--random-weights", "1"]
        #expect(try run(["classify"] + shufflenet + ["--image", chelsea]).contains("input 64x64"))
        do {
            _ = try run(["classify"] + shufflenet + ["--image", chelsea, "--crop", "224"])
            Issue.record("ran at 224x224")
        } catch {
            let text = "\(error)"
            #expect(!text.contains("\n") && text.contains("the file declares 64x64 inputs") && text.contains("--crop 64"), "\(text)")
        }
        // A run whose maps do say something has no warnings (at 224: at the 32x32 the file
        // declares, layer4's map is one pixel, which Grad-CAM's normalization makes zero).
        _ = try run(["saliency", "--model", folder.appendingPathComponent("resnet18_default.onnx").path, "--random-weights", "20261126",
                     "--image", chelsea, "--crop", "224", "--method", "gradcam", "--out", out.appendingPathComponent("ok").path])
        let ok = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("ok/chelsea/summary.json"))) as! [String: Any]
        #expect((ok["warnings"] as? [String]) == [], "\(ok["warnings"] ?? "none")")
    }
}

/// A segmentation model (torchvision's LR-ASPP from torch.onnx.export, seeded weights, 64x64
/// inputs as its file declares): the target is a class summed over a region, by default the
/// pixels predicted as the class predicted most, background aside; figures outline the region.
@Suite(.serialized, .timed) struct SegmentationCommandTests {
    let model = ["--model", repo.appendingPathComponent("Tests/ModelsTests/Fixtures/onnx/segmentation_dynamo.onnx").path, "--random-weights", "20261126"]
    let small = repo.appendingPathComponent("Tests/ModelsTests/Fixtures/onnx/chelsea32.png").path

    @Test func aSegmentationsTargetIsAClassOverARegion() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let ranked = try run(["classify"] + model + ["--image", chelsea, "--top", "3"])
        #expect(ranked.contains("share of the predicted pixels") && ranked.contains("__background__") && ranked.contains(" px"), "\(ranked)")
        // Two images in one run (one at a time, each with its own region), a batched method too.
        let printed = try run(["saliency"] + model + ["--image", chelsea, small, "--method", "gradient,gradcam,smoothgrad", "--samples", "2",
                                                      "--out", out.appendingPathComponent("predicted").path])
        for stem in ["chelsea", "chelsea32"] {
            let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("predicted/\(stem)/summary.json"))) as! [String: Any]
            let target = try #require(summary["target"] as? [String: Any]), region = try #require(target["region"] as? [String: Any])
            #expect(region["kind"] as? String == "predicted" && (region["pixels"] as? Int ?? 0) > 0 && region["grid"] as? [Int] == [64, 64], "\(region)")
            #expect(target["index"] as? Int != 0, "the background is not the default target: \(target)")
            #expect(printed.contains("\(stem): target \(target["index"] as? Int ?? -1) \(target["label"] as? String ?? "") over \(region["pixels"] as? Int ?? -1) px (predicted)"), "\(printed)")
            #expect((summary["warnings"] as? [String]) == [], "\(summary["warnings"] ?? "none")")
        }
        #expect(printed.contains("chelsea32: target"), "\(printed)")
        // A box of the prepared input and a named class.
        _ = try run(["saliency"] + model + ["--image", chelsea, "--method", "gradcam", "--region", "box:0,0,32,64", "--target", "cat",
                                           "--out", out.appendingPathComponent("box").path])
        let box = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("box/chelsea/summary.json"))) as! [String: Any]
        let target = try #require(box["target"] as? [String: Any]), region = try #require(target["region"] as? [String: Any])
        #expect(target["index"] as? Int == 8 && region["pixels"] as? Int == 2048 && region["box"] as? [Int] == [0, 0, 32, 64], "\(target)")
        _ = try run(["sanity"] + model + ["--image", chelsea, "--method", "gradient", "--out", out.appendingPathComponent("sanity").path])
        // What a region cannot be, each refused with one line.
        let refusals: [([String], String)] = [
            (model + ["--region", "box:0,0,65,10"], "does not fit the 64x64 input"),
            (model + ["--metrics"], "a segmentation's region target has none"),
            (["--model", repo.appendingPathComponent("Tests/ModelsTests/Fixtures/onnx/resnet18_default.onnx").path, "--random-weights", "1", "--region", "predicted"],
             "a classifier's"),
        ]
        for (k, (arguments, message)) in refusals.enumerated() {
            do {
                _ = try run(["saliency"] + arguments + ["--image", chelsea, "--method", "gradient", "--out", out.appendingPathComponent("bad\(k)").path])
                Issue.record("ran: \(arguments)")
            } catch { #expect("\(error)".contains(message), "\(error)") }
        }
    }
}

/// A vision transformer from torch.onnx.export (a reduced torchvision ViT, 32x32 inputs,
/// exported at batch 1: its attention reshapes hold that batch): saliency with the batched
/// methods passes one image at a time, and Grad-CAM reads the last block's tokens.
@Suite(.serialized, .timed) struct TransformerCommandTests {
    let vit = repo.appendingPathComponent("Tests/ModelsTests/Fixtures/onnx/vit_default.onnx").path
    let image = repo.appendingPathComponent("Tests/ModelsTests/Fixtures/onnx/chelsea32.png").path

    @Test func saliencyRunsOnAViTExportedAtBatchOne() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let model = ["--model", vit, "--random-weights", "20261126"]
        #expect(try run(["classify"] + model + ["--image", image, "--no-resize", "--top", "2"]).contains(" 1. "))
        let printed = try run(["saliency"] + model + ["--image", image, "--no-resize", "--method", "gradient,gradcam,smoothgrad,integrated_gradients,attention_rollout",
                                                      "--samples", "3", "--steps", "4", "--batch", "8", "--out", out.path])
        #expect(printed.contains("integrated_gradients") && printed.contains("attention_rollout"), "\(printed)")
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("chelsea32/summary.json"))) as! [String: Any]
        #expect(summary["layer"] as? String == "encoder.layers.encoder_layer_1.ln_1")
    }
}
