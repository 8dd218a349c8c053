import Backend
import Graph
import Models

/// FullGrad (Srinivas and Fleuret 2019) as pytorch-grad-cam computes it: |gradient x input|,
/// each colour channel scaled to [0, 1], plus for every layer that adds a bias per channel
/// (a convolution with a bias, a batch norm with its shift beta - mean gamma / sqrt(var + eps))
/// |bias x the gradient at its output|, each channel scaled to [0, 1] and resized to the input
/// (bilinear), summed over channels; the sum over all of them scaled to [0, 1]. One unfused
/// forward and backward pass (every bias layer's own output), the rest on the device too.
/// Class-specific; reads no `--layer` (pytorch-grad-cam ignores its target layers). An ONNX
/// export folds each batch norm into the convolution before it, whose bias and output are the
/// batch norm's: the same sum.
public struct FullGrad: AttributionMethod {
    public var name: String { "fullgrad" }
    /// FullGrad; it has no settings.
    public init() {}

    public func attribute(_ model: Model, input: Tensor, targets: [Int]) throws -> Attribution {
        let (n, h, w) = try checkBatch(input, targets)
        let b = model.backend
        try MemoryBudget.requirePass(model, batch: n, height: h, width: w, what: "fullgrad's unfused pass")
        let g = Graph(backend: b)
        g.recordsBiases = true
        let x = g.input(input)
        let logits = try model.forward(g, x)
        let grads = try g.backward(from: logits, seed: try oneHot(b, targets: targets, classes: g.shape(logits)[1]))
        guard let inputGradient = grads.of(x) else { throw InterpretError("the model's output does not depend on its input") }
        let ones = { (c: Int) in try b.tensor([Float](repeating: 1, count: n * c), [n, 1, c]) }
        /// [N, C, H, W] planes, each scaled to [0, 1], summed over C: [N, 1, H, W].
        func channelSum(_ planes: Tensor) throws -> Tensor {
            let c = planes.shape[1]
            let sums = try b.matmul(try ones(c), Tensor(shape: [n, c, h * w], storage: planes.storage), transposeA: false, transposeB: false)
            return Tensor(shape: [n, 1, h, w], storage: sums.storage)
        }
        var total = try channelSum(try b.normalizePlanes(try b.pointwise(try b.mul(inputGradient, input), .absPower(1))))
        var seen = Set<Int>(), layers = 0
        for name in g.tapNames {
            let value = g.tapped(name)!
            guard seen.insert(value.id).inserted, let bias = g.bias(of: value), let gradient = grads.of(value),
                  let (_, c, _, _) = gradient.shape.nchw, bias.shape.count == c else { continue }
            let zeros = try b.tensor([Float](repeating: 0, count: c), [c]), unit = try b.tensor([Float](repeating: 1, count: c), [c])
            let scaled = try b.batchNorm2d(gradient, BatchNormParams(gamma: bias, beta: zeros, mean: zeros, variance: unit, eps: 0))
            let planes = try b.normalizePlanes(try b.pointwise(scaled, .absPower(1)))
            total = try b.add(total, try channelSum(try b.resizeBilinear(planes, height: h, width: w)))
            layers += 1
        }
        guard layers > 0 else { throw InterpretError("fullgrad: \(model.architecture.name) has no layer that adds a bias per channel (a convolution with a bias or a batch norm)") }
        return Attribution(method: name, count: n, height: h, width: w, map: try b.values(b.normalizePlanes(total)), raw: nil)
    }
}
