import Backend
import Testing
import TestSupport

/// The OpenCL backend, or nil (skipped, or a recorded failure when OpenCL is required).
func openCL() -> OpenCLBackend? {
    TestDevice.backend { Issue.record(Comment(rawValue: $0)) }
}

let cpu = CPUBackend()

/// The OpenCL device once per kernel family (both run on any device: the register-blocked one
/// for CPUs, the tiled one for GPUs), or none (skipped, or a recorded failure).
func openCLFamilies() -> [OpenCLBackend] {
    guard let device = openCL() else { return [] }
    return KernelFamily.allCases.compactMap { family in
        family == device.family ? device : OpenCLBackend(context: device.context, convTiling: device.convTiling, family: family, packing: device.packing)
    }
}

/// The tiled family aiming at more work-groups than any test shape has tiles, so that every
/// product deep enough (K >= 128) splits K into slices and sums them (gemm.cl's GEMM_SPLIT_K),
/// with GPUs' default tile (products too shallow to split run it unsplit).
func openCLSplitK() -> [OpenCLBackend] {
    guard let device = openCL() else { return [] }
    return [OpenCLBackend(context: device.context, convTiling: .gpu, family: .tiled, splitKGroups: 1 << 20)]
}

/// Expects `actual` to match `expected` within `tolerance` relative to the magnitude of `expected`.
func expectClose(_ actual: [Float], _ expected: [Float], tolerance: Float = 1e-4, _ what: @autoclosure () -> String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    guard actual.count == expected.count else {
        Issue.record("\(what()): \(actual.count) values, expected \(expected.count)", sourceLocation: sourceLocation)
        return
    }
    let error = normalizedError(actual, expected)
    #expect(error <= tolerance, "\(what()): normalized error \(error) > \(tolerance)", sourceLocation: sourceLocation)
}

/// The same tensor on another backend.
func moved(_ t: Tensor, from: any Backend, to: any Backend) throws -> Tensor {
    try to.tensor(try from.values(t), t.shape)
}

/// Runs `op` on the CPU reference and on the device with the same inputs and compares every
/// result tensor (shape and values).
func expectDeviceMatchesReference(_ what: String, inputs: [([Float], Shape)], tolerance: Float = 1e-4,
                                  on backends: [OpenCLBackend]? = nil, sourceLocation: SourceLocation = #_sourceLocation,
                                  _ op: (any Backend, [Tensor]) throws -> [Tensor]) throws {
    let expected = try op(cpu, inputs.map { try cpu.tensor($0.0, $0.1) })
    for gpu in backends ?? openCLFamilies() {
        let actual = try op(gpu, inputs.map { try gpu.tensor($0.0, $0.1) })
        #expect(actual.count == expected.count, sourceLocation: sourceLocation)
        for (i, (a, e)) in zip(actual, expected).enumerated() {
            #expect(a.shape == e.shape, "\(what) result \(i) (\(gpu.family)): shape \(a.shape) vs \(e.shape)", sourceLocation: sourceLocation)
            expectClose(try gpu.values(a), try cpu.values(e), tolerance: tolerance, "\(what) result \(i) (\(gpu.family))",
                        sourceLocation: sourceLocation)
        }
    }
}

/// Finite-difference check on the CPU reference; `forward` and `backward` get host values.
func expectFiniteDifferences(_ what: String, inputs: [[Float]], eps: Float = 1e-2, tolerance: Float = 2e-2,
                             sourceLocation: SourceLocation = #_sourceLocation,
                             forward: ([[Float]]) throws -> [Float], backward: ([[Float]], [Float]) throws -> [[Float]?]) throws {
    let problems = try finiteDifferenceMismatches(inputs: inputs, eps: eps, tolerance: tolerance, forward: forward, backward: backward)
    #expect(problems.isEmpty, "\(what): \(problems.prefix(5))", sourceLocation: sourceLocation)
}
