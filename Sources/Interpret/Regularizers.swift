import Backend
import Foundation
import Graph

/// Penalties on the image x (values in [0, 1], [N, 3, H, W]), one value per image, each a mean
/// over pixels so a weight means the same at every size. Added to the loss times `weight`.
public struct Regularizer: Sendable, Equatable, CustomStringConvertible {
    /// Which penalty.
    public enum Kind: Sendable, Equatable {
        /// mean (x - 0.5)^2.
        case l2
        /// mean |x - 0.5|.
        case l1
        /// mean |x - 0.5|^alpha (Mahendran & Vedaldi's alpha-norm; alpha = 6 in the paper).
        case alphaNorm(Float)
        /// mean over (H-1)(W-1) positions and channels of ((dx^2 + dy^2) + 1e-8)^(beta/2),
        /// dx and dy forward differences (Mahendran & Vedaldi's TV^beta; beta = 2 in the paper).
        case totalVariation(Float)
        /// The spectrum's energy weighted by frequency: sum_k c_k |f_k| |F(x)_k|^2 / (H W)^2 over
        /// the real 2-D DFT (c_k = 2 for the columns the half spectrum stands for twice), |f| in
        /// cycles per pixel: high frequencies cost more.
        case frequency
        /// mean (x - blur(x))^2, blur the 3x3 binomial filter [1 2 1]^T [1 2 1] / 16 (zero padding).
        case blur
    }
    /// The penalty.
    public var kind: Kind
    /// Its weight in the loss.
    public var weight: Float
    /// A penalty of `kind` weighted by `weight`.
    public init(_ kind: Kind, weight: Float) { self.kind = kind; self.weight = weight }

    /// A short name for reports: l2, l1, alpha, tv, freq or blur (`loupe visualize` takes the
    /// weights as `--l2`, `--tv`, `--freq`, `--blur`).
    public var name: String {
        switch kind {
        case .l2: "l2"
        case .l1: "l1"
        case .alphaNorm: "alpha"
        case .totalVariation: "tv"
        case .frequency: "freq"
        case .blur: "blur"
        }
    }
    /// "weight * name".
    public var description: String { "\(weight) * \(name)" }

    /// The penalty of each image, [N], on the graph (unweighted).
    public func value(_ g: Graph, _ x: Graph.Value) throws -> Graph.Value {
        let b = g.backend
        let shape = g.shape(x)
        guard let (n, c, h, w) = shape.nchw else { throw InterpretError("regularizer \(name): expected an image batch, got \(shape)") }
        func constant(_ v: Float, _ s: Shape) throws -> Graph.Value { g.constant(try b.tensor([Float](repeating: v, count: s.count), s)) }
        func centred() throws -> Graph.Value { try g.add(x, try constant(-0.5, shape)) }
        switch kind {
        case .l2:
            return try g.scale(try g.reduce(try centred(), .sumOfSquares, axis: 1), 1 / Float(c * h * w))
        case .l1:
            return try g.reduce(try g.pointwise(try centred(), .absPower(1)), .mean, axis: 1)
        case .alphaNorm(let alpha):
            return try g.reduce(try g.pointwise(try centred(), .absPower(alpha)), .mean, axis: 1)
        case .totalVariation(let beta):
            guard h >= 2, w >= 2 else { throw InterpretError("total variation needs an image of at least 2x2") }
            let dx = try depthwise(g, x, [-1, 1, 0, 0], size: 2, channels: c, padding: 0)
            let dy = try depthwise(g, x, [-1, 0, 1, 0], size: 2, channels: c, padding: 0)
            let squares = try g.add(try g.add(try g.mul(dx, dx), try g.mul(dy, dy)), try constant(1e-8, g.shape(dx)))
            return try g.reduce(try g.pointwise(squares, .absPower(beta / 2)), .mean, axis: 1)
        case .frequency:
            let spectrum = try forwardRealFFT2(g, x)  // [N * 3, 2H, 1, Wf]
            let wf = w / 2 + 1
            var weights = [Float](repeating: 0, count: 2 * h * wf)
            for ky in 0..<h { for kx in 0..<wf {
                let fy = Float(ky < (h + 1) / 2 ? ky : ky - h) / Float(h), fx = Float(kx) / Float(w)
                let twice: Float = (kx == 0 || (w % 2 == 0 && kx == w / 2)) ? 1 : 2
                let v = twice * (fy * fy + fx * fx).squareRoot() / Float(h * w) / Float(h * w)
                weights[(2 * ky) * wf + kx] = v; weights[(2 * ky + 1) * wf + kx] = v
            } }
            let all = [Float]((0..<(n * c)).map { _ in weights }.joined())
            let energy = try g.mul(try g.mul(spectrum, spectrum), g.constant(try b.tensor(all, g.shape(spectrum))))
            return try g.reduce(try g.reshape(energy, [n, c * 2 * h * wf]), .sum, axis: 1)
        case .blur:
            let k: [Float] = [1, 2, 1, 2, 4, 2, 1, 2, 1].map { $0 / 16 }
            let blurred = try depthwise(g, x, k, size: 3, channels: c, padding: 1)
            let diff = try g.add(x, try g.scale(blurred, -1))
            return try g.scale(try g.reduce(diff, .sumOfSquares, axis: 1), 1 / Float(c * h * w))
        }
    }
}

/// The same size x size filter on every channel.
func depthwise(_ g: Graph, _ x: Graph.Value, _ kernel: [Float], size: Int, channels: Int, padding: Int) throws -> Graph.Value {
    let weight = try g.backend.tensor([Float]((0..<channels).map { _ in kernel }.joined()), [channels, 1, size, size])
    return try g.conv2d(x, weight: g.constant(weight), bias: nil, Conv2DParams(padding: padding, groups: channels))
}

/// The real 2-D DFT of images [N, C, H, W] as two matrix products on the device:
/// [N * C, 2H, 1, W/2 + 1], channel 2 ky the real parts of row ky of numpy's rfft2, channel
/// 2 ky + 1 the imaginary parts.
func forwardRealFFT2(_ g: Graph, _ x: Graph.Value) throws -> Graph.Value {
    let (n, c, h, w) = g.shape(x).nchw!
    let wf = w / 2 + 1
    // Along x: V_re[kx] = sum_x x cos(2 pi kx x / W), V_im[kx] = -sum_x x sin(...).
    var mx = [Float](repeating: 0, count: 2 * wf * w)
    for kx in 0..<wf { for px in 0..<w {
        let angle = 2 * Double.pi * Double(kx * px % w) / Double(w)
        mx[kx * w + px] = Float(cos(angle)); mx[(wf + kx) * w + px] = Float(-sin(angle))
    } }
    let rows = try g.reshape(x, [n * c * h, w])
    let v = try g.linear(rows, weight: g.constant(try g.backend.tensor(mx, [2 * wf, w])), bias: nil)
    // [planes, (y, part), 1, Wf]; along y: Re = sum_y cos V_re + sin V_im, Im = sum_y cos V_im - sin V_re.
    var my = [Float](repeating: 0, count: 2 * h * 2 * h)
    for ky in 0..<h { for py in 0..<h {
        let angle = 2 * Double.pi * Double(ky * py % h) / Double(h)
        let (cs, sn) = (Float(cos(angle)), Float(sin(angle)))
        my[(2 * ky) * 2 * h + 2 * py] = cs; my[(2 * ky) * 2 * h + 2 * py + 1] = sn
        my[(2 * ky + 1) * 2 * h + 2 * py] = -sn; my[(2 * ky + 1) * 2 * h + 2 * py + 1] = cs
    } }
    let channels = try g.reshape(v, [n * c, 2 * h, 1, wf])
    return try g.conv2d(channels, weight: g.constant(try g.backend.tensor(my, [2 * h, 2 * h, 1, 1])), bias: nil, Conv2DParams())
}
