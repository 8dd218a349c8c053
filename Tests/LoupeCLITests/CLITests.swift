import ArgumentParser
import Foundation
import Backend
import LoupeCLI
import Testing
import TestSupport

@Suite struct CLITests {
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
