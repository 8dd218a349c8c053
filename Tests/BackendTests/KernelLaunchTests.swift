import Backend
import Device
import Foundation
import Testing
import TestSupport

/// The launch factories generated from the kernels' signatures (KernelLaunches.swift).
@Suite(.timed) struct KernelLaunchTests {
    @Test func argumentsFollowTheSignature() throws {
        guard let backend = openCL() else { return }
        let a = try Buffer<Float>(context: backend.context, values: [1, 2, 3, 4])
        // add(__global const float* a, __global const float* b, __global float* y, int n)
        let call = try KernelCall.add(a: a, b: a, y: a, n: 4)
        #expect(call.name == "add" && call.file == "elementwise")
        #expect(call.arguments.count == 4)
        guard case .int(let n) = call.arguments[3] else { Issue.record("n is not an int argument"); return }
        #expect(n == 4)
        let gemm = try GemmCall.LINEAR_BACKWARD_WEIGHT(gy: a, x: a, gw: a, M: 1, N: 2, K: 3)
        #expect(gemm.mode == "LINEAR_BACKWARD_WEIGHT" && gemm.file == "linear" && gemm.arguments.count == 6)
    }

    /// A size past the kernels' 32-bit ints is refused by name, not wrapped.
    @Test func oversizedIntsAreRefused() throws {
        guard let backend = openCL() else { return }
        let a = try Buffer<Float>(context: backend.context, values: [1])
        #expect {
            _ = try KernelCall.add(a: a, b: a, y: a, n: 1 << 31)
        } throws: { error in
            "\(error)".contains("argument n = 2147483648 does not fit")
        }
        #expect(throws: BackendError.self) { _ = try KernelCall.scale(a: a, s: 1, y: a, n: -(1 << 40)) }
    }
}
