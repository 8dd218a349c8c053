import ArgumentParser
import Foundation
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
}
