import Device
import Foundation
import Testing
import TestSupport

func context() -> Context? {
    guard let backend = TestDevice.backend(fail: { Issue.record(Comment(rawValue: $0)) }) else { return nil }
    return backend.context
}

@Suite(.timed) struct DeviceTests {
    @Test func discoveryReportsWhatTheDeviceSays() throws {
        guard let ctx = context() else { return }
        let d = ctx.device
        #expect(!d.name.isEmpty && !d.platform.name.isEmpty)
        #expect(d.version.hasPrefix("OpenCL"))
        #expect(d.computeUnits >= 1 && d.maxWorkGroupSize >= 64 && d.globalMemory > 0 && d.localMemory > 0)
        #expect(try ComputeDevice.all().contains(d))
    }

    @Test func buffersRoundTripCopyAndFill() throws {
        guard let ctx = context() else { return }
        let a = try Buffer<Float>(context: ctx, values: [1, 2, 3, 4, 5])
        #expect(try a.read() == [1, 2, 3, 4, 5])
        let b = try Buffer<Float>(context: ctx, count: 5)
        try b.fill(7)
        try b.copy(from: a, sourceOffset: 1, offset: 0, count: 3)
        #expect(try b.read() == [2, 3, 4, 7, 7])
        #expect(throws: CLError.self) { try a.write([1, 2]) }
    }

    @Test func releasedMemoryIsReusedByBuffersOfTheSameSizeClass() throws {
        guard let shared = context() else { return }
        // LOUPE_BUFFER_POOL=0 turns the pool off: then nothing may be pooled.
        let pooling = ProcessInfo.processInfo.environment["LOUPE_BUFFER_POOL"] != "0"
        let ctx = try Context(device: shared.device)  // its own pool, untouched by other tests
        func pooled(_ bytes: Int) -> Int { pooling ? bytes : 0 }
        do { _ = try Buffer<Float>(context: ctx, values: [Float](repeating: 1, count: 100_000)) }
        #expect(ctx.pooledBytes == pooled(425_984))  // 400,000 bytes in the class 13/8 x 2^18
        _ = try Buffer<Float>(context: ctx, count: 120_000)  // 480,000 bytes: the next class, made anew
        #expect(ctx.pooledBytes == pooled(425_984 + 491_520))
        // A slightly different shape (a visualization step's new scale) takes the kept memory.
        let values = (0..<101_000).map(Float.init)
        let reused = try Buffer<Float>(context: ctx, values: values)
        #expect(ctx.pooledBytes == pooled(491_520))
        #expect(try reused.read() == values)
        do { _ = try Buffer<Float>(context: ctx, count: 1000) }
        #expect(ctx.pooledBytes == pooled(491_520 + 4096))
    }

    @Test func programsAreCachedAndKernelsTimed() throws {
        guard let ctx = context() else { return }
        let source = "__kernel void twice(__global float* x) { x[get_global_id(0)] *= 2.0f; }"
        let p1 = try ctx.program(name: "test-twice", sources: [source])
        let p2 = try ctx.program(name: "test-twice", sources: [source])
        #expect(p1 === p2)
        let p3 = try ctx.program(name: "test-twice", sources: [source], options: "-cl-fast-relaxed-math")
        #expect(p1 !== p3)
        let buffer = try Buffer<Float>(context: ctx, values: [1, 2, 3])
        let event = try p1.kernel("twice").launch(global: [3], [.buffer(buffer)])
        #expect(try event.deviceSeconds() >= 0)
        #expect(try buffer.read() == [2, 4, 6])
    }

    @Test func aFailedBuildThrowsItsLog() throws {
        guard let ctx = context() else { return }
        do {
            _ = try ctx.program(name: "test-broken", sources: ["__kernel void broken(__global float* x) { x[0] = undefined_name; }"])
            Issue.record("a broken kernel built")
        } catch {
            #expect(error.name == "CL_BUILD_PROGRAM_FAILURE")
            #expect(error.description.contains("undefined_name"), "build log missing: \(error)")
        }
    }

    @Test func anOversizedBufferThrowsOutOfMemory() throws {
        guard let ctx = context() else { return }
        let tooMany = Int(ctx.device.maxAllocation / 4) + 1
        do {
            _ = try Buffer<Float>(context: ctx, count: tooMany)
            Issue.record("allocated more than the device allows")
        } catch {
            #expect(error.description.contains("out of device memory"))
        }
    }

    @Test func errorCodesHaveNames() {
        #expect(CLError.name(of: -5) == "CL_OUT_OF_RESOURCES")
        #expect(CLError(code: -4, call: "clCreateBuffer").description.contains("CL_MEM_OBJECT_ALLOCATION_FAILURE"))
    }
}
