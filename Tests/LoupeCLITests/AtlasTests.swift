import Atlas
import Backend
import Foundation
import Graph
import ImageIO
import Interpret
import Models
import Testing
import TestSupport

/// `loupe atlas`: one process and three shard processes (one of them killed mid-unit and run
/// again) make the same site; a channel's picture does not depend on its block; merge lists
/// what is missing; the pages load whole in a headless browser.
@Suite(.serialized, .timed) struct AtlasTests {
    /// Five images (two photos, three seeded noise pictures) in a fresh folder.
    func dataset() throws -> URL {
        let dir = try tempDir()
        try FileManager.default.copyItem(atPath: chelsea, toPath: dir.appendingPathComponent("a-chelsea.png").path)
        try FileManager.default.copyItem(atPath: smallImage, toPath: dir.appendingPathComponent("b-small.png").path)
        var random = SeededRandom(seed: 11)
        for name in ["c", "d", "e"] {
            let pixels = (0..<(96 * 80 * 3)).map { _ in UInt8.random(in: 0...255, using: &random) }
            try RGBImage(width: 96, height: 80, pixels: pixels).writePNG(to: dir.appendingPathComponent("\(name)-noise.png"))
        }
        return dir
    }

    func arguments(_ images: URL, block: Int = 4) -> [String] {
        ["atlas", "--layer", "features.4", "--channels", "0..7", "--channel-block", "\(block)", "--images", images.path, "--image-block", "2",
         "--top", "3", "--steps", "4", "--size", "64"]
    }

    /// Every file under `root` (relative path -> bytes), without run-dependent ones.
    func files(_ root: URL, under: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let base = root.appendingPathComponent(under)
        guard let walk = FileManager.default.enumerator(at: base, includingPropertiesForKeys: nil) else { return out }
        for case let url as URL in walk where !url.hasDirectoryPath && !["unit.json", "index.html"].contains(url.lastPathComponent) {
            out[String(url.path.dropFirst(base.path.count))] = try Data(contentsOf: url)
        }
        return out
    }

    @Test func shardsKilledAndRerunMakeTheSameAtlasAsOneProcess() throws {
        guard weights(), device(), let binary = loupeBinary() else { return }
        let images = try dataset()
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: images); try? FileManager.default.removeItem(at: out) }
        let (one, sharded) = (out.appendingPathComponent("one"), out.appendingPathComponent("sharded"))

        let text = try run(arguments(images) + ["--out", one.path])
        #expect(text.contains("8 channels, 5 images, 5 units"), "\(text)")
        #expect(text.contains("all 5 units are done") && text.contains("channels/min") && text.contains("images/s") && text.contains("projected: the whole atlas"), "\(text)")

        func shard(_ k: Int, kill: Bool = false) throws -> String {
            let process = Process()
            process.executableURL = binary
            process.arguments = arguments(images) + ["--out", sharded.path, "--shard", "\(k)/3"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            try process.run()
            if kill {
                // SIGKILL as soon as its first unit is being written: a staging folder is left.
                let units = sharded.appendingPathComponent("units")
                let deadline = Date().addingTimeInterval(120)
                while Date() < deadline, process.isRunning,
                      !((try? FileManager.default.contentsOfDirectory(atPath: units.path)) ?? []).contains(where: { $0.hasPrefix(".staging-") }) {
                    Thread.sleep(forTimeInterval: 0.005)
                }
                Foundation.kill(process.processIdentifier, SIGKILL)
            }
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            if !kill { #expect(process.terminationStatus == 0, "shard \(k): \(output)") }
            return output
        }
        _ = try shard(1, kill: true)
        let left = try FileManager.default.contentsOfDirectory(atPath: sharded.appendingPathComponent("units").path)
        #expect(left.contains { $0.hasPrefix(".staging-") }, "the killed shard left no staging folder: \(left)")
        let first = try shard(0)
        #expect(first.contains("shard 0/3 has 2") && first.contains("of 5 units done; the other shards' units are missing"), "\(first)")
        _ = try shard(2)
        let last = try shard(1)
        #expect(last.contains("all 5 units are done: building the pages"), "\(last)")
        let units = try FileManager.default.contentsOfDirectory(atPath: sharded.appendingPathComponent("units").path)
        #expect(!units.contains { $0.hasPrefix(".") }, "a staging folder is left: \(units)")
        // A rerun does nothing.
        let again = try shard(0)
        #expect(again.contains("2 of 2 units already done, 0 to do"), "\(again)")

        let (a, b) = (try files(one, under: "units"), try files(sharded, under: "units"))
        #expect(a.count == 2 * 4 + 3 * 1 && Set(a.keys) == Set(b.keys), "\(a.keys.sorted()) vs \(b.keys.sorted())")
        for (path, data) in a { #expect(b[path] == data, "units\(path) differs between one process and three shards") }
        let (pa, pb) = (try files(one, under: "layers"), try files(sharded, under: "layers"))
        #expect(pa.count >= 8 * (1 + 1 + 3 + 3) && Set(pa.keys) == Set(pb.keys))
        for (path, data) in pa { #expect(pb[path] == data, "layers\(path) differs") }

        // Each channel's picture depends on the atlas seed, the layer and the channel only: one
        // block of 8 gives the pictures of two blocks of 4.
        let wide = out.appendingPathComponent("wide")
        _ = try run(arguments(images, block: 8) + ["--out", wide.path])
        for c in 0..<8 {
            let x = try RGBImage(contentsOf: one.appendingPathComponent("units/channels-features.4-0000\(c / 4 * 4)-0000\(c / 4 * 4 + 3)/c\(c).png"))
            let y = try RGBImage(contentsOf: wide.appendingPathComponent("units/channels-features.4-00000-00007/c\(c).png"))
            let worst = zip(x.pixels, y.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 255
            #expect(worst <= 1, "channel \(c): pictures differ by up to \(worst) with another block size")
        }

        // Another setting into the same folder is refused, naming it.
        #expect { _ = try run(arguments(images) + ["--out", one.path, "--steps", "5"]) } throws: {
            "\($0)".contains("other settings (steps: 4 there, 5 now)")
        }

        // The pages in a real browser: every image loaded (a tall window, so lazy ones load too).
        if let chromium = browser() {
            for (page, count) in [("index.html", 0), ("layers/features.4/index.html", 8), ("layers/features.4/c5.html", 1 + 3 + 3)] {
                let dom = try headless(chromium, sharded.appendingPathComponent(page), ["--window-size=1200,6000", "--virtual-time-budget=10000", "--dump-dom"])
                let loaded = dom.firstMatch(of: /data-images="(\d+)\/(\d+)"/)
                #expect(loaded.map { $0.1 == $0.2 && Int($0.2) == count } == true, "\(page): \(loaded.map { "\($0.1)/\($0.2)" } ?? "no count"), \(count) expected")
            }
        }
    }

    @Test func mergeListsTheMissingUnitsAndRefusesACorruptOne() throws {
        guard weights(), device() else { return }
        let images = try dataset()
        let site = try tempDir().appendingPathComponent("site")
        defer { try? FileManager.default.removeItem(at: images); try? FileManager.default.removeItem(at: site.deletingLastPathComponent()) }
        _ = try run(arguments(images) + ["--out", site.path, "--shard", "0/3"])
        let text = try run(["atlas", "--merge", site.path])
        #expect(text.contains("2 of 5 units done"), "\(text)")
        #expect(text.contains("missing 3: features.4 channels 4..7; images 0..1; images 4..4"), "\(text)")
        let index = try String(contentsOf: site.appendingPathComponent("index.html"), encoding: .utf8)
        #expect(index.contains("Missing: 3 of 5 units") && index.contains("<li>images 4..4</li>"))
        let layer = try String(contentsOf: site.appendingPathComponent("layers/features.4/index.html"), encoding: .utf8)
        #expect(layer.components(separatedBy: "not made yet").count - 1 == 4 && layer.contains("4 of 8"))
        // A truncated statistics file: a clear error, not a trap.
        let stats = site.appendingPathComponent("units/images-00002-00003/features.4.stats")
        let data = try Data(contentsOf: stats)
        try data.prefix(data.count / 2).write(to: stats)
        #expect { _ = try run(["atlas", "--merge", site.path]) } throws: { "\($0)".contains("features.4.stats is truncated") }
        #expect { _ = try run(["atlas", "--merge", images.path]) } throws: { "\($0)".contains("is not an atlas (no atlas.json)") }

        // --diversity 2: two pictures per channel, made together, both on the channel's page.
        let diverse = site.deletingLastPathComponent().appendingPathComponent("diverse")
        _ = try run(["atlas", "--layer", "features.4", "--channels", "0..1", "--diversity", "2", "--steps", "2", "--size", "48", "--out", diverse.path])
        let pictures = try FileManager.default.contentsOfDirectory(atPath: diverse.appendingPathComponent("units/channels-features.4-00000-00001").path)
        #expect(Set(pictures) == ["c0.png", "c0-1.png", "c1.png", "c1-1.png", "unit.json"], "\(pictures)")
        let page = try String(contentsOf: diverse.appendingPathComponent("layers/features.4/c1.html"), encoding: .utf8)
        #expect(page.contains("c1-1.png") && page.contains("variant 1") && page.contains("The atlas has no --images."))
        let a = try RGBImage(contentsOf: diverse.appendingPathComponent("units/channels-features.4-00000-00001/c0.png"))
        let b = try RGBImage(contentsOf: diverse.appendingPathComponent("units/channels-features.4-00000-00001/c0-1.png"))
        #expect(a.pixels != b.pixels, "the two variants are the same picture")
        #expect { _ = try run(arguments(images) + ["--out", site.path, "--shard", "3/3"]) } throws: { "\($0)".contains("expected k/n with 0 <= k < n") }
    }

    /// `--relevance`: each image unit keeps relevance statistics beside the activation ones,
    /// whose means (times the layer's area) are zennit-crp's scores as `RelevanceMaximization`
    /// computes them on the CPU reference (the image's top-1 class, the sum normalized over the
    /// layer's channels); the channel page ranks its images by them, largest first.
    @Test func relevanceMaximizationRanksTheImagesAsTheLibraryDoes() throws {
        guard device() else { return }
        let images = try dataset()
        let site = try tempDir().appendingPathComponent("site")
        defer { try? FileManager.default.removeItem(at: images); try? FileManager.default.removeItem(at: site.deletingLastPathComponent()) }
        _ = try run(["atlas", "--model", "resnet18", "--random-weights", "1", "--resize", "64", "--crop", "64", "--layer", "layer1",
                     "--channels", "0..3", "--images", images.path, "--image-block", "2", "--top", "3", "--steps", "1", "--size", "32",
                     "--relevance", "epsilon_plus_flat", "--out", site.path])
        let files = try FileManager.default.contentsOfDirectory(atPath: images.path).sorted()
        let architecture = try Architectures.make("resnet18")
        let model = Model(architecture: architecture, parameters: try SeededWeights.parameters(for: architecture, seed: 1, on: CPUBackend()),
                          backend: CPUBackend())
        let prepare = Preprocessing(resizeShorter: 64, crop: 64)
        let x = try files.flatMap { try prepare.normalize(prepare.prepare(RGBImage(contentsOf: images.appendingPathComponent($0)))) }
        let input = try model.backend.tensor(x, [files.count, 3, 64, 64])
        let g = Graph(backend: model.backend)
        let logits = try model.backend.values(g.tensor(model.forward(g, g.input(input))))
        let top1 = (0..<files.count).map { i in (0..<1000).max { logits[i * 1000 + $0] < logits[i * 1000 + $1] }! }
        let expected = try RelevanceMaximization(layer: "layer1", lrp: LRP(composite: "epsilon_plus_flat")).scores(model, input: input, targets: top1)
        var got = [Float]()
        for unit in [0..<2, 2..<4, 4..<5] {
            let url = site.appendingPathComponent(String(format: "units/images-%05d-%05d/layer1.relevance.stats", unit.lowerBound, unit.upperBound - 1))
            let stats = try LayerStats(data: Data(contentsOf: url), name: url.path)
            got += stats.mean.map { $0 * Float(stats.height * stats.width) }
        }
        #expect(got.count == expected.scores.count)
        for i in 0..<files.count {
            let row = Array(expected.scores[(i * 64)..<((i + 1) * 64)])
            let scale = row.map(abs).max()!
            let error = zip(got[(i * 64)..<((i + 1) * 64)], row).map { abs($0 - $1) }.max()! / scale
            #expect(error < 1e-3, "\(files[i]): relevance scores off by \(error) of the largest")
            #expect(abs(row.map(abs).reduce(0, +) - 1) < 1e-4)
        }
        let page = try String(contentsOf: site.appendingPathComponent("layers/layer1/c2.html"), encoding: .utf8)
        #expect(page.contains("Relevance maximization (epsilon_plus_flat"))
        let ranked = (0..<files.count).sorted { expected.scores[$0 * 64 + 2] > expected.scores[$1 * 64 + 2] }.prefix(3)
        let shown = page.components(separatedBy: "c2-relevance-").dropFirst().compactMap { part in files.first { part.contains("\($0) · relevance") } }
        #expect(shown == ranked.map { files[$0] }, "\(shown) against \(ranked.map { files[$0] })")
        // Each one's reference heatmap beside its photo, made by its unit: the library's
        // heatmap of the top image, drawn the same way, to within the device's rounding.
        let references = page.components(separatedBy: "src=\"../../units/").dropFirst().compactMap { part -> String? in
            let path = String(part.prefix { $0 != "\"" })
            return path.contains(".relevance/") ? path : nil
        }
        #expect(references.count == 3, "\(references)")
        let first = ranked.first!, unit = [0..<2, 2..<4, 4..<5].first { $0.contains(first) }!
        let drawn = try RGBImage(contentsOf: site.appendingPathComponent("units").appendingPathComponent(references[0]))
        #expect(references[0].hasSuffix("layer1.relevance/c2-\(first - unit.lowerBound).png"))
        let one = try model.backend.tensor(Array(x[(first * 3 * 64 * 64)..<((first + 1) * 3 * 64 * 64)]), [1, 3, 64, 64])
        let heat = try RelevanceMaximization(layer: "layer1", lrp: LRP(composite: "epsilon_plus_flat"))
            .referenceHeatmaps(model, input: one, channel: 2, neurons: [expected.neurons[first * 64 + 2]])[0]
        let want = try AtlasRunner.referencePicture(photo: prepare.prepare(RGBImage(contentsOf: images.appendingPathComponent(files[first]))), heatmap: heat)
        #expect(drawn.width == want.width && drawn.height == want.height, "\(drawn.width)x\(drawn.height) against \(want.width)x\(want.height)")
        if drawn.pixels.count == want.pixels.count {
            let off = zip(drawn.pixels, want.pixels).filter { abs(Int($0) - Int($1)) > 8 }.count
            #expect(off * 100 < want.pixels.count, "\(off) of \(want.pixels.count) values differ by more than 8")
        }
        #expect { _ = try run(["atlas", "--layer", "features.4", "--relevance", "no_such_rule", "--images", images.path, "--out", site.path + "2"]) }
            throws: { "\($0)".contains("--relevance: unknown") }
    }

    /// Units made with other settings (another seed), copied into a site or left after its
    /// atlas.json was deleted, are refused by the merge and by a run, never adopted; a channel
    /// range no layer has, and shard options a command would ignore, are refused.
    @Test func foreignUnitsAndIgnoredOptionsAreRefused() throws {
        guard device() else { return }
        let parent = try tempDir()
        defer { try? FileManager.default.removeItem(at: parent) }
        let base = ["atlas", "--model", "resnet18", "--random-weights", "1", "--layer", "layer1", "--channels", "0..1", "--steps", "1", "--size", "32"]
        let (a, b) = (parent.appendingPathComponent("a"), parent.appendingPathComponent("b"))
        _ = try run(base + ["--out", a.path])
        _ = try run(base + ["--seed", "7", "--out", b.path])
        let unit = "channels-layer1-00000-00001"
        try FileManager.default.removeItem(at: a.appendingPathComponent("units/\(unit)"))
        try FileManager.default.copyItem(at: b.appendingPathComponent("units/\(unit)"), to: a.appendingPathComponent("units/\(unit)"))
        #expect { _ = try run(["atlas", "--merge", a.path]) } throws: { "\($0)".contains("unit \(unit)") && "\($0)".contains("other settings") }
        for name in try FileManager.default.contentsOfDirectory(atPath: b.path) where name != "units" {
            try FileManager.default.removeItem(at: b.appendingPathComponent(name))  // atlas.json and the pages: only units/ is left
        }
        #expect { _ = try run(base + ["--out", b.path]) } throws: { "\($0)".contains("other settings") }
        _ = try run(base + ["--seed", "7", "--out", b.path])  // its own settings: its units are adopted
        #expect { _ = try run(base.dropLast(6) + ["--channels", "0..99999", "--steps", "1", "--size", "32", "--out", parent.appendingPathComponent("c").path]) } throws: {
            "\($0)".contains("no layer has channel 99999 (the widest, layer1, has 64: 0...63)")
        }
        #expect { _ = try run(["atlas", "--merge", a.path, "--shard", "1/2"]) } throws: { "\($0)".contains("takes no --shard") }
        #expect { _ = try run(base + ["--shard-count", "3", "--out", a.path]) } throws: { "\($0)".contains("--shard-count is the number of shards for --shard auto") }
    }

    /// deploy/slurm/atlas.sbatch run as three array tasks, and deploy/k8s/atlas-job.yaml's
    /// container arguments run as three pods of the Indexed Job (its volumes pointed at temporary
    /// folders, fewer channels and steps), each make a whole atlas.
    @Test func theSlurmAndKubernetesExamplesRunTheirShards() throws {
        guard weights(), device(), let binary = loupeBinary() else { return }
        let images = try dataset()
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: images); try? FileManager.default.removeItem(at: out) }
        func execute(_ executable: String, _ arguments: [String], _ environment: [String: String]) throws -> String {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "\(arguments): \(output)")
            return output
        }
        let small = ["--channels", "0..7", "--channel-block", "4", "--image-block", "2", "--top", "3", "--steps", "2", "--size", "64"]
        let slurm = out.appendingPathComponent("slurm")
        for task in 4...6 {
            _ = try execute("/bin/bash", [repo.appendingPathComponent("deploy/slurm/atlas.sbatch").path], [
                "LOUPE": binary.path, "SITE": slurm.path, "IMAGES": images.path, "LAYERS": "features.4", "ATLAS_ARGS": small.joined(separator: " "),
                "SLURM_ARRAY_TASK_ID": "\(task)", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_COUNT": "3"])
        }
        #expect(try AtlasSite(AtlasFolder(slurm)).status().complete)
        #expect(FileManager.default.fileExists(atPath: slurm.appendingPathComponent("layers/features.4/c7.html").path))

        let yaml = try String(contentsOf: repo.appendingPathComponent("deploy/k8s/atlas-job.yaml"), encoding: .utf8)
        #expect(yaml.contains("completionMode: Indexed") && yaml.contains("mountPath: /site") && yaml.contains("mountPath: /data/images"))
        let completions = yaml.firstMatch(of: /completions: (\d+)/).map { String($0.1) }
        let argsLine = try #require(yaml.firstMatch(of: /args: (\[.*\])/).map { String($0.1) })
        var args = try #require(try JSONSerialization.jsonObject(with: Data(argsLine.utf8)) as? [String])
        #expect(args.first == "atlas" && args.contains("auto"))
        let count = try #require(args.firstIndex(of: "--shard-count"))
        #expect(args[count + 1] == completions, "--shard-count \(args[count + 1]) but completions \(completions ?? "none")")
        let k8s = out.appendingPathComponent("k8s")
        args = args.map { $0.replacingOccurrences(of: "/site/", with: k8s.path + "/").replacingOccurrences(of: "/data/images", with: images.path) }
        args[args.firstIndex(of: "--layer")! + 1] = "features.4"
        args[count + 1] = "3"
        for index in 0..<3 { _ = try execute(binary.path, args + small, ["JOB_COMPLETION_INDEX": "\(index)"]) }
        let site = k8s.appendingPathComponent("atlas")
        #expect(try AtlasSite(AtlasFolder(site)).status().complete)
        #expect(FileManager.default.fileExists(atPath: site.appendingPathComponent("index.html").path))
    }

    @Test func shardsComeFromSlurmAndKubernetes() throws {
        #expect(try AtlasShard.parse("auto", environment: ["SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "8"])
                == AtlasShard(index: 4, count: 8))
        #expect(try AtlasShard.parse("auto", count: 32, environment: ["JOB_COMPLETION_INDEX": "31"]) == AtlasShard(index: 31, count: 32))
        #expect(throws: AtlasError.self) { try AtlasShard.parse("auto", environment: ["JOB_COMPLETION_INDEX": "3"]) }
        #expect(throws: AtlasError.self) { try AtlasShard.parse("auto", environment: [:]) }
        #expect(try AtlasShard.parse("2/4") == AtlasShard(index: 2, count: 4))
        // Round robin: every unit belongs to exactly one shard.
        let shards = try (0..<3).map { try AtlasShard(index: $0, count: 3) }
        for unit in 0..<10 { #expect(shards.filter { $0.owns(unit) }.count == 1) }
    }
}
