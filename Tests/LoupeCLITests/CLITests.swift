import ArgumentParser
import Foundation
import Backend
import LoupeCLI
import Models
import Testing
import TestSupport

@Suite(.timed) struct CLITests {
    @Test func deviceChoicesParse() {
        #expect(DeviceChoice(argument: "auto") == .auto)
        #expect(DeviceChoice(argument: "cpu") == .cpu)
        #expect(DeviceChoice(argument: "opencl:1") == .opencl(1))
        #expect(DeviceChoice(argument: "opencl:x") == nil)
        #expect(DeviceChoice(argument: "gpu") == nil)
        #expect(throws: (any Error).self) { try Loupe.parseAsRoot(["bench", "--device", "gpu"]) }
    }

    @Test func devicesTableListsTheDefaultDevice() throws {
        guard let backend = TestDevice.backend(fail: { Issue.record(Comment(rawValue: $0)) }) else { return }
        let table = try DevicesCommand.table()
        #expect(table.contains("opencl:0"))
        #expect(table.contains(backend.context.device.name))
        #expect(table.split(separator: "\n").contains { $0.hasPrefix("*") && $0.contains(backend.context.device.name) })
    }

    @Test func benchRunsAFilteredShapeAndRefusesBadOptions() throws {
        guard TestDevice.backend(fail: { Issue.record(Comment(rawValue: $0)) }) != nil else { return }
        let out = try run(["bench", "--filter", "softmax", "--shapes", "mobilenet_v2", "--batch", "1", "--runs", "1", "--json"])
        #expect(out.contains("\"op\" : \"softmax\"") && out.contains("\"percentOfPeak\""))
        for bad in [["bench", "--shapes", "lenet"], ["bench", "--filter", "no-such-op"], ["bench", "--batch", "0"], ["bench", "--device", "opencl:99"]] {
            var c = try Loupe.parseAsRoot(bad)
            #expect(throws: (any Error).self, "\(bad)") { try c.run() }
        }
        var cpuBench = try Loupe.parseAsRoot(["bench", "--device", "cpu"])
        #expect(throws: UserError.self) { try cpuBench.run() }
    }

    /// `--launches` lists every launch of one forward pass in order: as many as `--kernels`
    /// counts for that pass, numbered from 1, each with a global size, a time and a kernel.
    @Test func benchListsEveryLaunchOfEachPass() throws {
        guard TestDevice.backend(fail: { Issue.record(Comment(rawValue: $0)) }) != nil else { return }
        let out = try run(["bench", "--model", "mobilenet_v2", "--batch", "1", "--runs", "1", "--kernels", "--launches", "--quiet"])
        let lines = out.split(separator: "\n").map(String.init)
        let kernelsAt = try #require(lines.firstIndex { $0.hasPrefix("kernels over one forward pass") })
        let counted = try #require(lines[kernelsAt...].first { $0.hasSuffix(" total") }.flatMap { Int($0.split(separator: " ")[1]) })
        let launchesAt = try #require(lines.firstIndex { $0.hasPrefix("launches of one forward pass, batch 1") })
        let rows = lines[(launchesAt + 2)...].prefix { !$0.hasSuffix(" total") }.map { $0.split(separator: " ").map(String.init) }
        #expect(rows.count == counted && counted > 20)
        for (i, row) in rows.enumerated() {
            #expect(row.count >= 5 && row[0] == "\(i + 1)" && Double(row[1]).map { $0 >= 0 } == true, "\(row)")
            #expect(row.count >= 5 && Double(row[2]).map { $0 >= 0 } == true && (i > 0 || row[2] == "0.000"), "\(row)")
            #expect(row.count >= 5 && row[3].split(separator: "x").allSatisfy { Int($0).map { $0 > 0 } == true }, "\(row)")
        }
        #expect(rows.contains { $0.count >= 5 && $0[4] == "depthwise_rows" })
        // The forward + backward pass follows, longer, with the backward's kernels.
        let backwardAt = try #require(lines.firstIndex { $0.hasPrefix("launches of one forward + backward pass, batch 1") })
        let backward = lines[(backwardAt + 2)...].prefix { !$0.hasSuffix(" total") }.map { $0.split(separator: " ").map(String.init) }
        #expect(backward.count > rows.count && backward.contains { $0.count >= 6 && $0[4] == "depthwise_rows" && $0[5] == "STORE_MASK" })
    }

    @Test func tuneStoresTheFastestCandidateAndBackendsUseIt() throws {
        guard let backend = TestDevice.backend(fail: { Issue.record(Comment(rawValue: $0)) }) else { return }
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cache = dir.appendingPathComponent("sub/tuning.json")
        let out = try run(["tune", "--quick", "--runs", "1", "--cache", cache.path])
        #expect(out.contains("best: ") && out.contains("saved to"))
        let device = backend.context.device
        let entry = try #require(TuningCache.entry(for: device, at: cache))
        let family = KernelFamily.preferred(for: device.kind)
        // The stored winner is the fastest measured candidate, and it is a valid parameter set.
        let best = try #require(entry.measured?.min { $0.value < $1.value })
        switch family {
        case .registerBlocked:
            let p = try #require(entry.packedTiling)
            #expect("\(p.mr)x\(p.vw)x\(p.nv)" == best.key)
        case .tiled:
            #expect(entry.gemmTiling?.description == best.key)
        }
        // A changed driver or kernel source is another key: the entry is not used for it.
        #expect(TuningCache.entries(at: cache).keys.allSatisfy { $0 == TuningCache.key(device) })
        // A corrupt cache is ignored, not fatal.
        try Data("{not json".utf8).write(to: cache)
        #expect(TuningCache.entry(for: device, at: cache) == nil)
        var bad = try Loupe.parseAsRoot(["tune", "--device", "cpu"])
        #expect(throws: UserError.self) { try bad.run() }
    }
}

@Suite(.timed) struct VersionTests {
    /// `loupe --version` names the version and the commit the binary was built from: HEAD's,
    /// or, for a test binary built before the last commit and run without rebuilding, one of
    /// its ancestors (a real commit of this history, never a made-up string).
    @Test func versionNamesTheBuildsCommit() throws {
        #expect(Loupe.configuration.version == "\(LoupeVersion.number) (commit \(LoupeVersion.commit))")
        #expect(LoupeVersion.number.split(separator: ".").count == 3 && LoupeVersion.number.split(separator: ".").allSatisfy { Int($0) != nil })
        func git(_ arguments: [String]) -> (status: Int32, output: String)? {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/git")
            process.arguments = ["-C", repo.path] + arguments
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            guard (try? process.run()) != nil else { return nil }
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, output.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        guard FileManager.default.fileExists(atPath: repo.appendingPathComponent(".git").path), let head = git(["rev-parse", "HEAD"]), head.status == 0 else {
            #expect(LoupeVersion.commit == "unknown")
            return
        }
        #expect(LoupeVersion.commit.count == 12 && LoupeVersion.commit.allSatisfy(\.isHexDigit))
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            // A fresh clone built and tested in one go: exactly HEAD.
            #expect(head.output.hasPrefix(LoupeVersion.commit), "built from \(LoupeVersion.commit), HEAD is \(head.output)")
        } else if !head.output.hasPrefix(LoupeVersion.commit) {
            #expect(git(["merge-base", "--is-ancestor", LoupeVersion.commit, "HEAD"])?.status == 0,
                    "built from \(LoupeVersion.commit), which is not HEAD (\(head.output)) nor one of its ancestors")
        }
    }
}

@Suite(.timed) struct MethodListTests {
    /// `all` leaves out the methods of hundreds of passes; `all+slow` and names run them.
    @Test func allLeavesOutTheSlowMethods() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let text = try run(["saliency", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, "--no-resize", "--method", "all",
                            "--samples", "2", "--ig-steps", "2", "--out", out.path])
        for name in ["gradient", "gradient_x_input", "guided_backprop", "deconvnet", "gradcam", "gradcam++", "guided_gradcam", "layercam",
                     "hirescam", "xgradcam", "smoothgrad", "smoothgrad_sq", "vargrad", "integrated_gradients", "fullgrad",
                     "layer_gradient_x_activation", "layer_conductance", "layer_integrated_gradients", "concept_relevance"] {
            #expect(text.contains("  \(name) "), "\(name) missing from all")
        }
        #expect(!text.contains("scorecam") && !text.contains("ablationcam") && !text.contains("occlusion"))
        let help = SaliencyCommand.helpMessage()
        #expect(help.contains("all+slow") && help.contains("Examples:"))
        for command in [SanityCommand.helpMessage(), VisualizeCommand.helpMessage(), InvertCommand.helpMessage(), ClassifyCommand.helpMessage(),
                        CompareCommand.helpMessage(), LayersCommand.helpMessage(), BenchCommand.helpMessage()] {
            #expect(command.contains("Example"))
        }
        // The old spellings are accepted but not shown.
        #expect(!help.contains("--steps") && help.contains("--ig-steps") && !VisualizeCommand.helpMessage().contains("--class"))
    }
}
