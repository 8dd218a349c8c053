import BackendCore

// How the kernels spell the core enums: build flags and integer codes.

extension Activation {
    /// The kernel flag that fuses this activation into a convolution's store (conv_geometry.cl).
    var fusedFlag: String { self == .relu ? "ACT_RELU" : "ACT_RELU6" }
}

extension Pointwise {
    /// The op's number in pointwise.cl.
    var code: Int {
        switch self {
        case .sigmoid: 0; case .absPower: 1; case .hardSigmoid: 2; case .hardSwish: 3; case .erf: 4; case .offset: 5; case .gelu: 6; case .tanh: 7
        case .stabilizedReciprocal: 8
        }
    }
    /// The op's number: the exponent of absPower, the constant of offset, the stabilizer.
    var parameter: Float {
        switch self { case .absPower(let p), .offset(let p), .stabilizedReciprocal(let p): p; default: 0 }
    }
}
