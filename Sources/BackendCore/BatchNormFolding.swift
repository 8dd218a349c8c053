/// Folds an inference-mode batchnorm into the convolution before it:
/// bn(conv(x, W, b)) = conv(x, W', b') with W'[co] = W[co] * s[co], b'[co] = (b[co] - mean[co]) * s[co] + beta[co],
/// s = gamma / sqrt(var + eps). Host arrays in, host arrays out; `weight` is [Cout, ...] row-major.
public func foldBatchNorm(weight: [Float], bias: [Float]?, outChannels: Int,
                          gamma: [Float], beta: [Float], mean: [Float], variance: [Float], eps: Float) throws
    -> (weight: [Float], bias: [Float]) {
    guard outChannels > 0, weight.count % outChannels == 0,
          [gamma.count, beta.count, mean.count, variance.count].allSatisfy({ $0 == outChannels }),
          bias.map({ $0.count == outChannels }) ?? true else {
        throw BackendError("fold batchnorm", "weight of \(weight.count) values and batchnorm vectors do not match \(outChannels) output channels")
    }
    let per = weight.count / outChannels
    var w = weight
    var b = [Float](repeating: 0, count: outChannels)
    for co in 0..<outChannels {
        let s = gamma[co] / (variance[co] + eps).squareRoot()
        for i in 0..<per { w[co * per + i] *= s }
        b[co] = ((bias?[co] ?? 0) - mean[co]) * s + beta[co]
    }
    return (w, b)
}
