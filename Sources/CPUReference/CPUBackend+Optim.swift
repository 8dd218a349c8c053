import BackendCore
import Foundation

// The Adam step on the CPU reference backend (the twin of OpenCLBackend+Optim.swift: optim.cl).
extension CPUBackend {
    public func adamStep(_ p: Tensor, gradient g: Tensor, m: Tensor, v: Tensor, _ s: AdamSettings, step t: Int) throws -> (p: Tensor, m: Tensor, v: Tensor) {
        for other in [g, m, v] { try ShapeRules.same("adam", p.shape, other.shape) }
        let (pv, gv, mv, vv) = (try host(p, "adam"), try host(g, "adam"), try host(m, "adam"), try host(v, "adam"))
        let (c1, c2) = s.corrections(step: t)
        var (np, nm, nv) = (pv, mv, vv)
        for i in pv.indices {
            nm[i] = s.beta1 * mv[i] + (1 - s.beta1) * gv[i]
            nv[i] = s.beta2 * vv[i] + (1 - s.beta2) * gv[i] * gv[i]
            np[i] = pv[i] - s.learningRate * (nm[i] / c1) / ((nv[i] / c2).squareRoot() + s.epsilon)
        }
        return (make(np, p.shape), make(nm, p.shape), make(nv, p.shape))
    }
}
