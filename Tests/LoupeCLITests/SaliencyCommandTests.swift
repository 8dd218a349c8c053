import Foundation
import ImageIO
import Interpret
import LoupeCLI
import Models
import Testing
import TestSupport

@Suite(.serialized, .timed) struct SaliencyCommandTests {
    @Test func writesMapsOverlaysGridAndSummaryPerImage() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let text = try run(["saliency", "--model", "resnet18", "--random-weights", "2", "--image", smallImage, chelsea,
                            "--method", "gradient,gradcam,integrated_gradients", "--ig-steps", "4", "--target", "1,tabby", "--out", out.path])
        #expect(text.contains("rgb: target 1 goldfish") && text.contains("chelsea: target 281 tabby"), "\(text)")
        for stem in ["rgb", "chelsea"] {
            let dir = out.appendingPathComponent(stem)
            let files = Set(try FileManager.default.contentsOfDirectory(atPath: dir.path))
            for name in ["gradient.npy", "gradient_raw.npy", "gradient.png", "gradient_overlay.png", "gradcam.npy", "gradcam.png",
                         "gradcam_overlay.png", "integrated_gradients_raw.npy", "grid.png", "summary.json", "input.png"] {
                #expect(files.contains(name), "\(stem)/\(name)")
            }
            #expect(!files.contains("gradcam_raw.npy"))
            let npy = try Data(contentsOf: dir.appendingPathComponent("gradcam.npy"))
            let header = String(decoding: npy.prefix(128), as: UTF8.self)
            #expect(header.contains("'descr': '<f4'") && header.contains("'shape': (224, 224)"))
            #expect(npy.count == 128 + 224 * 224 * 4)
            let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("summary.json"))) as! [String: Any]
            #expect((summary["layer"] as? String) == "layer4" && (summary["model"] as? String) == "resnet18")
            let methods = summary["methods"] as! [[String: Any]]
            #expect(methods.map { $0["method"] as! String } == ["gradient", "gradcam", "integrated_gradients"])
            #expect(methods[2]["completeness_error"] != nil)
            // What made it: the command line, the version, the preprocessing; seeded weights have no file.
            let record = summary["run"] as! [String: Any]
            #expect((record["command_line"] as! [String]).starts(with: ["loupe", "saliency", "--model", "resnet18"]))
            #expect(record["loupe_version"] as? String == LoupeVersion.number && record["model_sha256"] is NSNull)
            let prep = record["preprocessing"] as! [String: Any]
            #expect(prep["resize_shorter_side"] as? Int == 256 && prep["center_crop"] as? Int == 224 && prep["no_resize"] as? Bool == false)
            #expect((summary["image_path"] as? String)?.hasSuffix(stem == "rgb" ? "rgb.png" : "chelsea.png") == true)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path).sorted() == [".loupe.manifest.json", "chelsea", "grid.png", "index.html", "rgb"])
        // The run's grid: a row per image, a column per method and the input, the overlays as
        // each image's folder holds them (drawn at 160 units a cell).
        let grid = try RGBImage(contentsOf: out.appendingPathComponent("grid.png"))
        #expect(grid.width >= 4 * 160 + 3 * 10 && grid.height >= 2 * 160 + 10, "\(grid.width)x\(grid.height)")
        #expect(try String(contentsOf: out.appendingPathComponent("index.html"), encoding: .utf8).contains("src=\"grid.png\""))
    }

    /// The map PNGs are the saved attributions through the chosen sign, clipping and colour map
    /// (recomputed here from the .npy files), and the figures come in every format asked for.
    /// `--baseline FILE`: the image, prepared as the inputs are, is where Integrated Gradients'
    /// path starts. From the input itself the path is empty: every attribution 0, completeness
    /// error 0; from another photo they are not. The file is named in the summary; a missing
    /// one or one of another size after preprocessing is one line.
    @Test func integratedGradientsStartFromABaselineImage() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        func attributions(_ baseline: String, into name: String) throws -> (text: String, values: [Float]) {
            let folder = out.appendingPathComponent(name)
            let text = try run(["saliency", "--model", "resnet18", "--random-weights", "1", "--image", chelsea, "--method", "integrated_gradients",
                                "--ig-steps", "4", "--baseline", baseline, "--out", folder.path])
            let npy = try Data(contentsOf: folder.appendingPathComponent("chelsea/integrated_gradients_raw.npy"))
            let values = npy.dropFirst(128).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            return (text, values)
        }
        let same = try attributions(chelsea, into: "same")
        #expect(same.values.count == 3 * 224 * 224 && same.values.allSatisfy { $0 == 0 }, "from the input itself")
        #expect(same.text.contains("completeness error 0\n") || same.text.contains("completeness error 0 "), "\(same.text)")
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("same/chelsea/summary.json"))) as! [String: Any]
        let recorded = (summary["methods"] as! [[String: Any]])[0]["parameters"] as? [String: Any]
        #expect(recorded?["baseline"] as? String == chelsea, "\(summary)")
        let photo = repo.appendingPathComponent("Assets/photos").path
        let other = try FileManager.default.contentsOfDirectory(atPath: photo).filter { $0.hasSuffix(".png") || $0.hasSuffix(".jpg") }.sorted().first
        if let other {
            let different = try attributions(photo + "/" + other, into: "other")
            #expect(different.values.contains { $0 != 0 }, "from another photo")
        }
        #expect(throws: (any Error).self) { _ = try attributions(out.appendingPathComponent("missing.png").path, into: "missing") }
        #expect(throws: (any Error).self) {
            _ = try run(["saliency", "--model", "resnet18", "--random-weights", "1", "--image", chelsea, "--no-resize", "--method", "integrated_gradients",
                         "--baseline", smallImage, "--out", out.appendingPathComponent("size").path])
        }
    }

    /// `--feature-mask FILE`: each colour of a segmentation image is one feature of LIME and
    /// KernelSHAP (here two halves of the image), so each map has one value per region; the
    /// summary says so. Without lime or kernel_shap, or of another size, it is one clear error.
    @Test func limeAndKernelShapTakeASegmentationImage() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let image = try RGBImage(contentsOf: URL(fileURLWithPath: smallImage))
        var pixels = [UInt8](repeating: 0, count: image.width * image.height * 3)
        for y in 0..<image.height { for x in 0..<image.width where x >= image.width / 2 { pixels[(y * image.width + x) * 3] = 200 } }
        let segments = out.appendingPathComponent("halves.png")
        try RGBImage(width: image.width, height: image.height, pixels: pixels).writePNG(to: segments)
        let folder = out.appendingPathComponent("lime")
        _ = try run(["saliency", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, "--no-resize", "--method", "lime,kernel_shap",
                     "--samples", "8", "--feature-mask", segments.path, "--out", folder.path])
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("rgb/summary.json"))) as! [String: Any]
        for m in summary["methods"] as! [[String: Any]] {
            #expect((m["parameters"] as? [String: Any])?["features"] as? String == "mask of 2", "\(m)")
            let npy = try Data(contentsOf: folder.appendingPathComponent("rgb/\(m["method"] as! String)_raw.npy"))
            let values = npy.dropFirst(128).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            let plane = image.width * image.height
            let left = Set((0..<plane).filter { $0 % image.width < image.width / 2 }.map { values[$0] })
            let right = Set((0..<plane).filter { $0 % image.width >= image.width / 2 }.map { values[$0] })
            #expect(left.count == 1 && right.count == 1, "\(m["method"]!): one value per region")
        }
        #expect(throws: (any Error).self) {
            _ = try run(["saliency", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, "--no-resize", "--method", "gradient",
                         "--feature-mask", segments.path, "--out", out.appendingPathComponent("gradient").path])
        }
        #expect(throws: (any Error).self) {
            _ = try run(["saliency", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, "--no-resize", "--method", "lime",
                         "--feature-mask", chelsea, "--out", out.appendingPathComponent("size").path])
        }
        // SLIC: each image's own superpixels (Superpixels.slic of the prepared image), so each map
        // is constant on each superpixel; the two images go one at a time.
        let slicFolder = out.appendingPathComponent("slic")
        _ = try run(["saliency", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, chelsea, "--resize", "40", "--crop", "32",
                     "--method", "lime", "--samples", "8", "--feature-mask", "slic:12", "--out", slicFolder.path])
        for stem in ["rgb", "chelsea"] {
            let input = try RGBImage(contentsOf: slicFolder.appendingPathComponent("\(stem)/input.png"))
            let cut = try Superpixels.slic(input, segments: 12)
            let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: slicFolder.appendingPathComponent("\(stem)/summary.json"))) as! [String: Any]
            let method = (summary["methods"] as! [[String: Any]])[0]
            #expect((method["parameters"] as? [String: Any])?["features"] as? String == "mask of \(cut.count)", "\(method)")
            let npy = try Data(contentsOf: slicFolder.appendingPathComponent("\(stem)/lime_raw.npy"))
            let values = npy.dropFirst(128).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            for label in 0..<cut.count {
                #expect(Set(cut.labels.indices.filter { cut.labels[$0] == label }.map { values[$0] }).count == 1, "\(stem): superpixel \(label)")
            }
        }
        // One segmentation image per image: halves for the first, a single region for the second.
        let whole = out.appendingPathComponent("whole.png")
        try RGBImage(width: image.width, height: image.height, pixels: [UInt8](repeating: 90, count: image.width * image.height * 3)).writePNG(to: whole)
        let perImage = out.appendingPathComponent("per-image")
        _ = try run(["saliency", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, smallImage.replacingOccurrences(of: "rgb.png", with: "rgba.png"),
                     "--no-resize", "--method", "lime", "--samples", "8", "--feature-mask", "\(segments.path),\(whole.path)", "--out", perImage.path])
        for (stem, regions) in [("rgb", 2), ("rgba", 1)] {
            let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: perImage.appendingPathComponent("\(stem)/summary.json"))) as! [String: Any]
            let method = (summary["methods"] as! [[String: Any]])[0]
            #expect((method["parameters"] as? [String: Any])?["features"] as? String == "mask of \(regions)", "\(stem): \(method)")
        }
        for bad in ["slic:0", "slic:12:0", "slic:x", "slic:1:2:3", "\(segments.path),\(segments.path),\(segments.path)"] {
            #expect(throws: (any Error).self, "\(bad)") {
                _ = try run(["saliency", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, chelsea, "--method", "lime",
                             "--feature-mask", bad, "--out", out.appendingPathComponent("bad").path])
            }
        }
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("bad").path))
    }

    /// `--objective`: the methods explain one unit of layer3 (its gradient is zero outside the
    /// unit's receptive field), the summary records the objective and its value, the layer
    /// methods write their attributions at the layer; --target and --metrics are refused with it.
    @Test func objectiveTargetsAUnitAndLayerMethodsWriteTheLayer() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let folder = out.appendingPathComponent("unit")
        let text = try run(["saliency", "--model", "resnet18", "--random-weights", "1", "--image", chelsea, "--method", "gradient,layer_integrated_gradients",
                            "--ig-steps", "4", "--layer", "layer2", "--objective", "layer3:5@3,4", "--out", folder.path])
        #expect(text.contains("chelsea: objective layer3:5@3,4 (value = "), "\(text)")
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("chelsea/summary.json"))) as! [String: Any]
        let target = summary["target"] as! [String: Any]
        #expect(target["objective"] as? String == "layer3:5@3,4" && (target["value"] as? Double)?.isFinite == true, "\(target)")
        let gradient = try Data(contentsOf: folder.appendingPathComponent("chelsea/gradient_raw.npy"))
        let values = gradient.dropFirst(128).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        // layer3's unit (x 3, y 4) is centred on pixel (48, 64) and sees 105 pixels each way
        // (ResNet18's receptive field there is 211): nothing right of x 153 or below y 169
        // reaches it (but rounding: the convolutions' transforms leave 1e-8 of the largest).
        let largest = values.map(abs).max() ?? 0
        let outside = (0..<3).flatMap { c in (0..<224).flatMap { y in (0..<224).filter { x in x > 155 || y > 171 }.map { x in values[(c * 224 + y) * 224 + x] } } }
        #expect(largest > 0 && outside.allSatisfy { abs($0) < 1e-6 * largest }, "\(outside.map(abs).max() ?? 0) of \(largest)")
        let layer = try Data(contentsOf: folder.appendingPathComponent("chelsea/layer_integrated_gradients_layer.npy"))
        #expect(String(decoding: layer.prefix(128), as: UTF8.self).contains("'shape': (128, 28, 28)"))
        for extra in [["--target", "1"], ["--metrics"]] {
            #expect(throws: (any Error).self) {
                _ = try run(["saliency", "--model", "resnet18", "--random-weights", "1", "--image", chelsea, "--method", "gradient",
                             "--objective", "layer3:5", "--out", out.appendingPathComponent("refused").path] + extra)
            }
        }
    }

    /// `concept_relevance` records the concept it followed (the most relevant channel by
    /// default, the given ones otherwise) and refuses a channel the layer does not have.
    @Test func conceptRelevanceRecordsItsConcept() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        func concept(_ extra: [String], _ name: String) throws -> [Int]? {
            _ = try run(["saliency", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, "--no-resize",
                         "--method", "concept_relevance", "--layer", "layer3", "--out", out.appendingPathComponent(name).path] + extra)
            let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("\(name)/rgb/summary.json"))) as! [String: Any]
            return (summary["methods"] as! [[String: Any]])[0]["concept"] as? [Int]
        }
        let top = try concept([], "top")
        #expect(top?.count == 1 && (0..<256).contains(top![0]), "\(top ?? [])")
        #expect(try concept(["--concept", "3,7"], "given") == [3, 7])
        #expect(throws: (any Error).self) { _ = try concept(["--concept", "256"], "missing") }
    }

    /// `--baseline` as a distribution: the SHAP methods take names and image files together and
    /// record them; Integrated Gradients refuses more than one reference, in one line.
    @Test func shapMethodsTakeADistributionOfBaselines() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let folder = out.appendingPathComponent("shap")
        let list = "black,\(smallImage),uniform"
        _ = try run(["saliency", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, "--no-resize",
                     "--method", "gradient_shap,deeplift_shap", "--samples", "3", "--stdevs", "0.1", "--baseline", list, "--out", folder.path])
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("rgb/summary.json"))) as! [String: Any]
        let methods = summary["methods"] as! [[String: Any]]
        for m in methods {
            #expect((m["parameters"] as? [String: Any])?["baselines"] as? String == list, "\(m)")
            let npy = try Data(contentsOf: folder.appendingPathComponent("rgb/\(m["method"] as! String)_raw.npy"))
            let values = npy.dropFirst(128).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            #expect(values.contains { $0 != 0 } && values.allSatisfy(\.isFinite))
        }
        #expect((methods.first { $0["method"] as? String == "gradient_shap" }?["parameters"] as? [String: Any])?["stdevs"] as? Double == 0.1)
        #expect(throws: (any Error).self) {
            _ = try run(["saliency", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, "--no-resize", "--method", "integrated_gradients",
                         "--baseline", "black,uniform", "--out", out.appendingPathComponent("ig").path])
        }
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("ig").path))
    }

    @Test func mapStyleAndFigureFormats() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        _ = try run(["saliency", "--model", "resnet18", "--random-weights", "2", "--image", chelsea, "--method", "gradient,gradcam,occlusion",
                     "--window", "56", "--stride", "56", "--sign", "all", "--colormap", "rdbu", "--clip-percentile", "5",
                     "--figure-format", "png,svg,pdf", "--out", out.path])
        let dir = out.appendingPathComponent("chelsea")
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: dir.path))
        #expect(files.isSuperset(of: ["grid.png", "grid.svg", "grid.pdf"]))
        func npy(_ name: String) throws -> [Float] {
            let data = try Data(contentsOf: dir.appendingPathComponent(name))
            let start = 10 + Int(data[8]) + Int(data[9]) * 256
            return data[start...].withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        let raw = try npy("gradient_raw.npy"), n = 224 * 224
        let summed = (0..<n).map { raw[$0] + raw[n + $0] + raw[2 * n + $0] }
        let expected = ScaledMap(summed, sign: .all, outlierPercent: 5).colorized(.rdbu, width: 224, height: 224)
        #expect(try RGBImage(contentsOf: dir.appendingPathComponent("gradient.png")) == expected)
        let cam = ScaledMap(try npy("gradcam.npy"), sign: .all, outlierPercent: 5).colorized(.rdbu, width: 224, height: 224)
        #expect(try RGBImage(contentsOf: dir.appendingPathComponent("gradcam.png")) == cam)
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("summary.json"))) as! [String: Any]
        for method in summary["methods"] as! [[String: Any]] {
            let display = method["display"] as! [String: Any]
            #expect(display["sign"] as? String == "all" && display["colormap"] as? String == "rdbu" && display["clip_percentile"] as? Double == 5)
        }
        // The grid: the input and three overlays side by side, with titles and colour bars around them.
        let grid = try RGBImage(contentsOf: dir.appendingPathComponent("grid.png"))
        #expect(grid.width >= 4 * 224 + 30 && grid.height >= 224 + 60)
        // Defaults: occlusion signed (diverging), gradient absolute (viridis).
        _ = try run(["saliency", "--model", "resnet18", "--random-weights", "2", "--image", chelsea, "--method", "gradient,occlusion",
                     "--window", "56", "--stride", "56", "--out", out.path, "--force"])
        let defaults = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("summary.json"))) as! [String: Any]
        let displays = (defaults["methods"] as! [[String: Any]]).map { $0["display"] as! [String: Any] }
        #expect(displays.map { $0["sign"] as! String } == ["absolute", "all"] && displays.map { $0["colormap"] as! String } == ["viridis", "rdbu"])
        // Overlays: opacity following the map by default, a blend at --alpha with --overlay blend;
        // both from the map PNG and the input as written.
        let input = try RGBImage(contentsOf: dir.appendingPathComponent("input.png")), heat = try RGBImage(contentsOf: dir.appendingPathComponent("gradient.png"))
        let strength = ScaledMap(try npy("gradient.npy"), sign: .absolute, outlierPercent: 2).values
        #expect(displays[0]["overlay"] as? String == "map")
        #expect(try RGBImage(contentsOf: dir.appendingPathComponent("gradient_overlay.png")) == MapImages.overlay(heat, on: input, alpha: 0.5, strength: strength))
        _ = try run(["saliency", "--model", "resnet18", "--random-weights", "2", "--image", chelsea, "--method", "gradient", "--overlay", "blend",
                     "--alpha", "0.3", "--figure-details", "--out", out.path, "--force"])
        #expect(try RGBImage(contentsOf: dir.appendingPathComponent("gradient_overlay.png"))
                == MapImages.overlay(try RGBImage(contentsOf: dir.appendingPathComponent("gradient.png")), on: input, alpha: 0.3))
        for bad in [["--colormap", "jet"], ["--sign", "both"], ["--clip-percentile", "100"], ["--alpha", "2"], ["--figure-format", "png,eps"],
                    ["--overlay", "multiply"]] {
            #expect(throws: (any Error).self, "\(bad)") {
                try run(["saliency", "--model", "resnet18", "--random-weights", "2", "--image", chelsea, "--out", out.appendingPathComponent("bad").path] + bad)
            }
        }
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("bad").path))
    }

    @Test func metricsAddDeletionAndInsertionCurves() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let text = try run(["saliency", "--model", "resnet18", "--random-weights", "2", "--image", smallImage, "--no-resize",
                            "--method", "gradient,gradcam", "--layer", "layer3", "--metrics", "--metric-step", "100", "--out", out.path])
        #expect(text.contains("deletion AUC") && text.contains("insertion AUC"))
        let dir = out.appendingPathComponent("rgb")
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("metrics.png").path))
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("summary.json"))) as! [String: Any]
        for method in summary["methods"] as! [[String: Any]] {
            let curve = method["deletion_curve"] as! [Double]
            #expect(curve.count == (23 * 37 + 99) / 100 + 1)  // ceil(pixels / step) + 1 points
            let auc = method["insertion_auc"] as! Double
            #expect(auc >= 0 && auc <= 1)
        }
    }

    /// --perturbation-metrics adds each metric's score (and pixel flipping's and region
    /// perturbation's curves, drawn in the metrics figure) to every method's entry; an unknown
    /// name or a bad setting is refused before anything is written.
    @Test func perturbationMetricsAddScoresAndCurves() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let base = ["saliency", "--model", "resnet18", "--random-weights", "2", "--image", smallImage, "--no-resize", "--method", "gradient,gradcam",
                    "--layer", "layer3", "--metric-step", "400", "--metric-runs", "3", "--metric-subset", "20", "--metric-regions", "3", "--metric-samples", "2"]
        let text = try run(base + ["--perturbation-metrics", "all", "--out", out.appendingPathComponent("run").path])
        for metric in PerturbationMetric.allCases { #expect(text.contains(metric.rawValue), "\(metric)") }
        let dir = out.appendingPathComponent("run/rgb")
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("metrics.png").path))
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("summary.json"))) as! [String: Any]
        let settings = (summary["metrics"] as! [String: Any])["perturbation_settings"] as! [String: Any]
        #expect(settings["runs"] as? Int == 3 && settings["samples"] as? Int == 2)
        for method in summary["methods"] as! [[String: Any]] {
            let flipping = method["pixel_flipping_curve"] as! [Double], regions = method["region_perturbation_curve"] as! [Double]
            #expect(flipping.count == 3 && regions.count == 3, "ceil(851 / 400) steps, 3 regions")
            let area = flipping.reduce(0, +) - flipping.first! / 2 - flipping.last! / 2
            #expect(abs(area - (method["pixel_flipping_auc"] as! Double)) < 1e-6)
            let correlation = method["faithfulness_correlation"] as? Double
            #expect(correlation.map { abs($0) <= 1 } ?? (method["faithfulness_correlation"] is NSNull))
            let (high, mean) = (method["max_sensitivity"] as! Double, method["avg_sensitivity"] as! Double)
            #expect(high >= mean && mean >= 0 && (method["infidelity"] as! Double) >= 0, "\(method)")
            let road = method["road_curve"] as! [Double]
            #expect(road.count == 50 && road.allSatisfy { (0...1).contains($0) }, "Quantus' 1, 3, ..., 99")
            #expect(abs(road.reduce(0, +) / 50 - (method["road"] as! Double)) < 1e-6)
            #expect(method["deletion_auc"] != nil, "the perturbation metrics come with --metrics")
        }
        for bad in [["--perturbation-metrics", "faithfulness"], ["--perturbation-metrics", "all", "--metric-runs", "1"],
                    ["--perturbation-metrics", "infidelity", "--metric-stdev", "0"], ["--perturbation-metrics", "road", "--metric-percentages", "10,150"]] {
            #expect(throws: (any Error).self, "\(bad)") { try run(base + bad + ["--out", out.appendingPathComponent("bad").path]) }
        }
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("bad").path))
    }

    /// --mask adds Quantus' localisation scores; every score in summary.json is MapQuality's
    /// of the saved map against the mask.
    @Test func masksAddLocalisationScores() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        // 37 x 23, white over the left 15 columns.
        let inside = (0..<(37 * 23)).map { $0 % 37 < 15 }
        let maskFile = out.appendingPathComponent("mask.png")
        try RGBImage(width: 37, height: 23, pixels: inside.flatMap { [UInt8](repeating: $0 ? 255 : 0, count: 3) }).writePNG(to: maskFile)
        let base = ["saliency", "--model", "resnet18", "--random-weights", "2", "--image", smallImage, "--no-resize", "--method", "gradient,lrp"]
        let folder = out.appendingPathComponent("run")
        let text = try run(base + ["--metrics", "--metric-step", "400", "--mask", maskFile.path, "--out", folder.path])
        #expect(text.contains("sparseness") && text.contains("relevance mass") && text.contains("pointing"), "\(text)")
        let dir = folder.appendingPathComponent("rgb")
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("summary.json"))) as! [String: Any]
        for method in summary["methods"] as! [[String: Any]] {
            let npy = try Data(contentsOf: dir.appendingPathComponent("\(method["method"] as! String).npy"))
            let start = 10 + Int(npy[8]) + Int(npy[9]) * 256
            let map = npy[start...].withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            let q = try MapQuality(map: map[...], mask: inside)
            // (JSON keeps 15 significant digits.)
            func same(_ key: String, _ v: Double?) -> Bool { (method[key] as? Double).map { abs($0 - v!) <= 1e-12 * Swift.max(1, abs(v!)) } ?? false }
            #expect(same("sparseness", q.sparseness) && same("complexity", q.complexity), "\(method)")
            #expect(same("relevance_mass_accuracy", q.massAccuracy) && same("relevance_rank_accuracy", q.rankAccuracy), "\(method)")
            #expect(method["pointing_game"] as? Bool == q.pointingGame)
        }
        #expect(throws: (any Error).self) { try run(base + ["--mask", maskFile.path, "--out", out.appendingPathComponent("b").path]) }
        #expect(throws: (any Error).self) { try run(base + ["--metrics", "--mask", "/nonexistent.png", "--out", out.appendingPathComponent("c").path]) }
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("b").path))
    }

    @Test func sanityCheckWritesTableCurvesAndMaps() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let text = try run(["sanity", "--model", "resnet18", "--random-weights", "2", "--image", smallImage, "--no-resize",
                            "--method", "gradient,guided_backprop,gradcam", "--layer", "layer3", "--stages", "3", "--out", out.path])
        #expect(text.contains("randomized through ") && text.contains("gradient") && text.contains("original") && text.contains("layer4.0"), "\(text)")
        let dir = out.appendingPathComponent("rgb")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path)) == ["sanity.json", "curves.png", "maps.png", "maps.npy"])
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("sanity.json"))) as! [String: Any]
        let stages = json["stages"] as! [[String: Any]]
        #expect(stages.map { $0["randomized_through"] as! String } == ["original", "fc", "layer4.1", "layer4.0"])
        #expect((stages[0]["spearman"] as! [Double]) == [1, 1, 1])
        let npy = try Data(contentsOf: dir.appendingPathComponent("maps.npy"))
        #expect(String(decoding: npy.prefix(128), as: UTF8.self).contains("'shape': (4, 3, 23, 37)"))
        #expect(throws: (any Error).self) { try run(["sanity", "--model", "resnet18", "--random-weights", "2", "--image", smallImage, "--stages", "0", "--out", out.path]) }
        #expect(throws: (any Error).self) { try run(["sanity", "--model", "resnet18", "--random-weights", "2", "--image", smallImage, "--method", "gradcam", "--layer", "fc", "--out", out.path]) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path).sorted() == [".loupe.manifest.json", "index.html", "rgb"])
    }

    /// Quantus' tests by name: MPRT's layers from the top down, smooth MPRT's from the bottom up
    /// with averaged maps, efficient MPRT's one fully random stage and its entropy rise.
    @Test func mprtTestsRunLayerByLayer() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let base = ["sanity", "--model", "resnet18", "--random-weights", "2", "--image", smallImage, "--no-resize", "--method", "gradient,gradcam",
                    "--layer", "layer3"]
        func json(_ name: String) throws -> [String: Any] {
            try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent(name).appendingPathComponent("rgb/sanity.json"))) as! [String: Any]
        }
        func names(_ j: [String: Any]) -> [String] { (j["stages"] as! [[String: Any]]).map { $0["randomized_through"] as! String } }
        let text = try run(base + ["--test", "mprt", "--stages", "3", "--out", out.appendingPathComponent("m").path])
        #expect(text.contains("layers re-drawn from the top down") && text.contains("layer4.1.bn2") && text.contains("mean ρ over the stages"), "\(text)")
        let mprt = try json("m")
        #expect(names(mprt) == ["original", "fc", "layer4.1.bn2", "layer4.1.conv2"])
        #expect(mprt["test"] as? String == "mprt" && mprt["granularity"] as? String == "layer" && mprt["order"] as? String == "top_down")
        let stages = mprt["stages"] as! [[String: Any]]
        let rho = stages.dropFirst().map { ($0["spearman"] as! [Double])[0] }
        let scores = mprt["scores"] as! [String: [String: Any]]
        #expect(abs((scores["gradient"]!["mean_spearman"] as! Double) - rho.reduce(0, +) / 3) < 1e-5)
        #expect(abs((scores["gradient"]!["last_spearman"] as! Double) - rho[2]) < 1e-6)

        _ = try run(base + ["--test", "smooth_mprt", "--smooth-samples", "3", "--smooth-noise", "0.2", "--stages", "2", "--batch", "2",
                            "--out", out.appendingPathComponent("s").path])
        let smooth = try json("s")
        #expect(names(smooth) == ["original", "conv1", "bn1"] && smooth["order"] as? String == "bottom_up")
        #expect((smooth["smoothing"] as? [String: Any])?["samples"] as? Int == 3)

        _ = try run(base + ["--test", "efficient_mprt", "--out", out.appendingPathComponent("e").path])
        let efficient = try json("e")
        #expect(names(efficient) == ["original", "fc"], "one stage: every layer random")
        let entropy = (efficient["stages"] as! [[String: Any]]).map { ($0["entropy"] as! [Double])[0] }
        let rise = (efficient["scores"] as! [String: [String: Any]])["gradient"]!["entropy_rise"] as! Double
        #expect(entropy[0] > 0 && abs(rise - (entropy[1] - entropy[0]) / entropy[0]) < 1e-5)

        for (args, why) in [(["--test", "mprt", "--smooth-samples", "3"], "smoothing outside smooth_mprt"), (["--test", "nope"], "unknown test"),
                            (["--order", "sideways"], "unknown order"), (["--granularity", "atom"], "unknown granularity"),
                            (["--test", "smooth_mprt", "--smooth-samples", "0"], "no samples")] {
            #expect(throws: (any Error).self, "\(why)") { try run(base + args + ["--out", out.appendingPathComponent("x").path]) }
        }
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("x").path))
    }

    /// A run never mixes its files with an earlier run's: refused without --force, replaced
    /// whole with it (the old methods' files are gone, nothing is left beside the folder).
    @Test func anEarlierRunIsRefusedOrReplacedWhole() throws {
        guard device() else { return }
        let parent = try tempDir()
        defer { try? FileManager.default.removeItem(at: parent) }
        let out = parent.appendingPathComponent("sal")
        let base = ["saliency", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, "--no-resize", "--out", out.path]
        _ = try run(base + ["--method", "gradient,gradcam"])
        #expect { _ = try run(base + ["--method", "gradcam"]) } throws: { "\($0)".contains("holds an earlier run's files (index.html, rgb)") }
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("rgb/gradient.png").path))
        _ = try run(base + ["--method", "gradcam", "--force"])
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("rgb").path))
        #expect(files.contains("gradcam.png") && !files.contains("gradient.png") && !files.contains("gradient.npy"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path) == ["sal"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path).sorted() == [".loupe.manifest.json", "index.html", "rgb"])
    }

    @Test func badInputsGetOneClearErrorAndLeaveNothing() throws {
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let blocker = out.appendingPathComponent("a-file")
        try Data("x".utf8).write(to: blocker)
        let base = ["saliency", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, "--no-resize"]
        let fresh = out.appendingPathComponent("new").path
        let cases: [([String], String)] = [
            (base + ["--method", "gradient,magic", "--out", out.path], "unknown method magic"),
            // A folder of other files: refused, with or without --force, and left as it was.
            (base + ["--out", out.path], "holds an earlier run's files (a-file)"),
            (base + ["--out", out.path, "--force"], "Loupe did not write"),
            (base + ["--method", "gradcam", "--layer", "fc", "--out", fresh], "4-D"),
            (base + ["--method", "gradcam", "--layer", "layer5", "--out", fresh], "nearest: layer"),
            (base + ["--target", "1000", "--out", fresh], "out of range"),
            (base + ["--target", "tabbycat", "--out", fresh], "nearest: tabby"),
            (base + ["--target", "1,2", "--out", fresh], "2 targets for 1 images"),
            (base + ["--out", blocker.appendingPathComponent("sub").path], "cannot create"),
            (["saliency", "--image", smallImage, chelsea, "--no-resize", "--out", fresh], "same size"),
        ]
        for (arguments, needle) in cases {
            do {
                _ = try run(arguments)
                Issue.record("no error for \(arguments)")
            } catch {
                #expect(Loupe.message(for: error).contains(needle), "\(arguments): \(Loupe.message(for: error))")
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path) == ["a-file"])
    }
}
