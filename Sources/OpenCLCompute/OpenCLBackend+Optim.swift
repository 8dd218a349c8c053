import BackendCore
import Device

// The Adam step on the device (optim.cl).
extension OpenCLBackend {
    public func adamStep(_ p: Tensor, gradient g: Tensor, m: Tensor, v: Tensor, _ s: AdamSettings, step t: Int) throws -> (p: Tensor, m: Tensor, v: Tensor) {
        for other in [g, m, v] { try ShapeRules.same("adam", p.shape, other.shape) }
        let bufs = try [p, g, m, v].map { try buffer($0, "adam") }
        let (np, npb) = try empty(p.shape, "adam"), (nm, nmb) = try empty(p.shape, "adam"), (nv, nvb) = try empty(p.shape, "adam")
        let (c1, c2) = s.corrections(step: t)
        try launch(.adam(p: bufs[0], g: bufs[1], m: bufs[2], v: bufs[3], p2: npb, m2: nmb, v2: nvb, n: p.shape.count,
                         lr: s.learningRate, b1: s.beta1, b2: s.beta2, eps: s.epsilon, c1: c1, c2: c2),
                   global: [quads(p.shape.count)])
        return (np, nm, nv)
    }
}
