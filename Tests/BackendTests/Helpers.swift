import Backend
import Testing
import TestSupport

/// The OpenCL backend, or nil (skipped, or a recorded failure when OpenCL is required).
func openCL() -> OpenCLBackend? {
    TestDevice.backend { Issue.record(Comment(rawValue: $0)) }
}

let cpu = CPUBackend()

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
