import BackendCore
import Foundation

// linear on the CPU reference backend (the twin of OpenCLBackend+Linear.swift).
extension CPUBackend {
    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) throws -> Tensor {
        let (n, inF, outF) = try ShapeRules.linear("linear", x: x.shape, weight: weight.shape)
        try ShapeRules.channelVector("linear", bias, channels: outF, what: "bias")
        let xv = try host(x, "linear"), wv = try host(weight, "linear"), bv = try bias.map { try host($0, "linear") }
        var y = [Float](repeating: 0, count: n * outF)
        for b in 0..<n { for o in 0..<outF {
            var s = bv?[o] ?? 0
            for i in 0..<inF { s += xv[b * inF + i] * wv[o * inF + i] }
            y[b * outF + o] = s
        } }
        return make(y, [n, outF])
    }

    public func linearBackwardInput(_ gy: Tensor, weight: Tensor) throws -> Tensor {
        let (n, outF, inF) = try ShapeRules.linearBackwardInput("linear backward input", gradient: gy.shape, weight: weight.shape)
        let gv = try host(gy, "linear backward input"), wv = try host(weight, "linear backward input")
        var gx = [Float](repeating: 0, count: n * inF)
        for b in 0..<n { for i in 0..<inF { for o in 0..<outF { gx[b * inF + i] += gv[b * outF + o] * wv[o * inF + i] } } }
        return make(gx, [n, inF])
    }

    public func linearBackwardWeight(_ gy: Tensor, input: Tensor) throws -> Tensor {
        let (n, outF, inF) = try ShapeRules.linearBackwardWeight("linear backward weight", gradient: gy.shape, input: input.shape)
        let gv = try host(gy, "linear backward weight"), xv = try host(input, "linear backward weight")
        var gw = [Float](repeating: 0, count: outF * inF)
        for b in 0..<n { for o in 0..<outF { for i in 0..<inF { gw[o * inF + i] += gv[b * outF + o] * xv[b * inF + i] } } }
        return make(gw, [outF, inF])
    }

    public func linearBackwardBias(_ gy: Tensor) throws -> Tensor {
        let (n, outF) = try ShapeRules.linearBackwardBias("linear backward bias", gradient: gy.shape)
        let gv = try host(gy, "linear backward bias")
        var gb = [Float](repeating: 0, count: outF)
        for b in 0..<n { for o in 0..<outF { gb[o] += gv[b * outF + o] } }
        return make(gb, [outF])
    }
}
