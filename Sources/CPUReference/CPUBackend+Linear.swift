import BackendCore
import Foundation

// linear on the CPU reference backend (the twin of OpenCLBackend+Linear.swift).
extension CPUBackend {
    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) throws -> Tensor {
        let (n, inF, outF) = try ShapeRules.linear("linear", x: x.shape, weight: weight.shape)
        try ShapeRules.channelVector("linear", bias, channels: outF, what: "bias")
        let xv = try host(x, "linear"), wv = try host(weight, "linear"), bv = try bias.map { try host($0, "linear") }
        var y = [Float](repeating: 0, count: n * outF)
        // Four outputs at a time, each summing its terms in input order as the plain loop does
        // (four independent chains of additions instead of one).
        xv.withUnsafeBufferPointer { xp in wv.withUnsafeBufferPointer { wp in
            for b in 0..<n {
                let row = b * inF
                var o = 0
                while o + 4 <= outF {
                    var (s0, s1, s2, s3) = (bv?[o] ?? 0, bv?[o + 1] ?? 0, bv?[o + 2] ?? 0, bv?[o + 3] ?? 0)
                    let v = xp.baseAddress! + row, w0 = wp.baseAddress! + o * inF
                    let (w1, w2, w3) = (w0 + inF, w0 + 2 * inF, w0 + 3 * inF)
                    for i in 0..<inF {
                        s0 += v[i] * w0[i]; s1 += v[i] * w1[i]; s2 += v[i] * w2[i]; s3 += v[i] * w3[i]
                    }
                    (y[b * outF + o], y[b * outF + o + 1], y[b * outF + o + 2], y[b * outF + o + 3]) = (s0, s1, s2, s3)
                    o += 4
                }
                for o in o..<outF {
                    var s = bv?[o] ?? 0
                    for i in 0..<inF { s += xp[row + i] * wp[o * inF + i] }
                    y[b * outF + o] = s
                }
            }
        } }
        return make(y, [n, outF])
    }

    public func linearBackwardInput(_ gy: Tensor, weight: Tensor) throws -> Tensor {
        let (n, outF, inF) = try ShapeRules.linearBackwardInput("linear backward input", gradient: gy.shape, weight: weight.shape)
        let gv = try host(gy, "linear backward input"), wv = try host(weight, "linear backward input")
        var gx = [Float](repeating: 0, count: n * inF)
        // Row by row of the weight (each input's terms still summed in output order).
        gv.withUnsafeBufferPointer { gp in wv.withUnsafeBufferPointer { wp in gx.withUnsafeMutableBufferPointer { xp in
            for b in 0..<n { for o in 0..<outF {
                let g = gp[b * outF + o], d = xp.baseAddress! + b * inF, r = wp.baseAddress! + o * inF
                for i in 0..<inF { d[i] += g * r[i] }
            } }
        } } }
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
