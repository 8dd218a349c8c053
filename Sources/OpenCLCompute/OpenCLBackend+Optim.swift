import BackendCore
import Device

// The Adam step on the device (optim.cl).
extension OpenCLBackend {
    public func adamStep(_ p: Tensor, gradient g: Tensor, m: Tensor, v: Tensor, _ s: AdamSettings, step t: Int) throws -> (p: Tensor, m: Tensor, v: Tensor) {
        for other in [g, m, v] { try ShapeRules.same("adam", p.shape, other.shape) }
        let bufs = try [p, g, m, v].map { try buffer($0, "adam") }
        let (np, npb) = try empty(p.shape, "adam"), (nm, nmb) = try empty(p.shape, "adam"), (nv, nvb) = try empty(p.shape, "adam")
        let (c1, c2) = s.corrections(step: t)
        try kernel(["optim"], "adam").launch(global: [quads(p.shape.count)],
            bufs.map { .buffer($0) } + [.buffer(npb), .buffer(nmb), .buffer(nvb), .int(p.shape.count),
             .float(s.learningRate), .float(s.beta1), .float(s.beta2), .float(s.epsilon), .float(c1), .float(c2)])
        return (np, nm, nv)
    }
}
