import Backend

/// Deterministic random weights that the fixture script (tools/make_fixtures.py) draws
/// identically in numpy, so tests compare whole architectures with PyTorch without committing
/// their weights. Value i of parameter `name` is u = mix(fnv1a64(name) ^ seed, i) mapped to
/// [0, 1) with 24 bits, then scaled by the parameter's role:
///   conv / linear weight: (2u - 1) * sqrt(6 / fan_in)   (He-uniform: activations keep their scale)
///   bias: (2u - 1) * 0.1;  batchnorm gamma and running variance: 0.5 + u;  beta and running mean: (2u - 1) * 0.1
public enum SeededWeights {
    static func fnv1a64(_ text: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return h
    }

    /// SplitMix64's finalizer of base + (i + 1) * golden ratio.
    static func mix(_ base: UInt64, _ i: Int) -> UInt64 {
        SplitMix64.mix(base &+ UInt64(i + 1) &* SplitMix64.golden)
    }

    /// The values of parameter `spec` under `seed`, drawn as its role says (`ParameterSpec.Role`:
    /// uniform in [-1, 1] / sqrt(fan_in) for weights and biases, narrow uniform ranges for batch
    /// norm): the same numbers for the same name and seed on every run and backend.
    public static func values(for spec: ParameterSpec, seed: UInt64) -> [Float] {
        let base = fnv1a64(spec.name) ^ seed
        return (0..<spec.shape.count).map { i in
            let u = Float(mix(base, i) >> 40) / Float(1 << 24)
            switch spec.role {
            case .weight(let fanIn): return (2 * u - 1) * (6 / Float(fanIn)).squareRoot()
            case .bias, .bnShift: return (2 * u - 1) * 0.1
            case .bnWeight, .bnVariance: return 0.5 + u
            }
        }
    }

    /// Every parameter of `architecture`, drawn from `seed`, on `backend`.
    public static func parameters(for architecture: Architecture, seed: UInt64, on backend: any Backend) throws -> ParameterStore {
        var tensors: [String: Tensor] = [:]
        for spec in architecture.parameters {
            tensors[spec.name] = try backend.tensor(values(for: spec, seed: seed), spec.shape)
        }
        return ParameterStore(tensors)
    }
}
