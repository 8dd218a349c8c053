import Backend
import Foundation
import Graph

/// How an optimized image is parameterized (Olah et al., Distill 2017; Lucid's `param`):
/// the optimizer updates a tensor of `shape`; `image` turns it into a batch [N, 3, H, W] with
/// values in [0, 1] on the graph, so gradients flow back to the parameters.
public struct ImageParameterization: Sendable {
    /// What the parameters are.
    public enum Basis: String, Sendable, CaseIterable {
        /// The pixels themselves.
        case pixel
        /// The real 2-D spectrum, scaled by 1 / max(|f|, 1/max(H, W))^decay * sqrt(H W), through
        /// an inverse real FFT and divided by 4 (Lucid's `fft_image`).
        case fourier
    }
    /// Pixels or the Fourier basis.
    public var basis: Basis
    /// Images, and their height and width.
    public var batch: Int, height: Int, width: Int
    /// Fourier: the exponent of the 1/f scaling.
    public var decay: Float
    /// Multiply colours by the square root of ImageNet's colour covariance (Lucid's
    /// `_linear_decorelate_color`), so the optimizer works in decorrelated colour.
    public var decorrelate: Bool
    /// Standard deviation of the initial parameters (Lucid: 0.01).
    public var initialScale: Float

    /// A parameterization; the defaults are Lucid's `image()`: Fourier basis, 1/f, decorrelated
    /// colour, initial standard deviation 0.01.
    public init(_ basis: Basis = .fourier, batch: Int = 1, height: Int, width: Int, decay: Float = 1, decorrelate: Bool = true,
                initialScale: Float = 0.01) {
        self.basis = basis; self.batch = batch; self.height = height; self.width = width
        self.decay = decay; self.decorrelate = decorrelate; self.initialScale = initialScale
    }

    /// Lucid's `color_correlation_svd_sqrt`, divided by the largest norm of its columns.
    public static let colorCorrelation: [Float] = {
        let m: [Float] = [0.26, 0.09, 0.02, 0.27, 0.00, -0.05, 0.27, -0.09, 0.03]
        let norms = (0..<3).map { c in (0..<3).map { m[$0 * 3 + c] * m[$0 * 3 + c] }.reduce(0, +).squareRoot() }
        return m.map { $0 / norms.max()! }
    }()

    /// Columns of the half spectrum of a width-`width` real signal (numpy's rfft).
    var spectrumWidth: Int { width / 2 + 1 }

    /// Pixel: [N, 3, H, W]. Fourier: [N * 3, H, 2 * (W / 2 + 1)], each row the real parts of
    /// the kx = 0 ... W/2 coefficients, then their imaginary parts.
    public var shape: Shape {
        basis == .pixel ? [batch, 3, height, width] : [batch * 3, height, 2 * spectrumWidth]
    }

    /// Normal(0, initialScale) parameters from `seed`.
    public func initial(seed: UInt64) -> [Float] {
        var noise = SplitMix64(noiseSeed: seed)
        return noise.normal(shape.count, sigma: initialScale)
    }

    /// |f| of the rfft2 coefficient (ky, kx) in cycles per pixel (numpy's fftfreq).
    func frequency(_ ky: Int, _ kx: Int) -> Float {
        // fftfreq: k / n for k < (n + 1) / 2, (k - n) / n above.
        let fy = Float(ky < (height + 1) / 2 ? ky : ky - height) / Float(height)
        let fx = Float(kx) / Float(width)
        return (fy * fy + fx * fx).squareRoot()
    }

    /// The per-coefficient scale of the Fourier basis, laid out as `shape` for one image.
    func spectrumScale() -> [Float] {
        let wf = spectrumWidth
        let floor = 1 / Float(Swift.max(width, height))
        let norm = Float(width * height).squareRoot()
        var s = [Float](repeating: 0, count: height * 2 * wf)
        for ky in 0..<height { for kx in 0..<wf {
            let v = norm / Foundation.pow(Swift.max(frequency(ky, kx), floor), decay)
            s[ky * 2 * wf + kx] = v
            s[ky * 2 * wf + wf + kx] = v
        } }
        return s
    }

    /// The constant tensors of this parameterization on one backend (the spectrum scale, the two
    /// DFT matrices, the colour matrix): built once per run, not in every step.
    public final class Constants: @unchecked Sendable {
        let scale: Tensor?, inverseX: Tensor?, inverseY: Tensor?, colour: Tensor?
        init(scale: Tensor?, inverseX: Tensor?, inverseY: Tensor?, colour: Tensor?) {
            self.scale = scale; self.inverseX = inverseX; self.inverseY = inverseY; self.colour = colour
        }
    }

    /// Builds the constants on backend `b`.
    public func constants(on b: any Backend) throws -> Constants {
        let (h, w, wf) = (height, width, spectrumWidth)
        guard basis == .fourier else {
            return Constants(scale: nil, inverseX: nil, inverseY: nil, colour: decorrelate ? try b.tensor(Self.colorCorrelation, [3, 3, 1, 1]) : nil)
        }
        // Along x: U[x] = sum_kx c_kx (A cos - B sin) / W, U_im[x] = sum_kx c_kx (A sin + B cos) / W,
        // c = 1 for kx = 0 and the Nyquist column, else 2.
        var mx = [Float](repeating: 0, count: 2 * w * 2 * wf)
        for x in 0..<w { for kx in 0..<wf {
            let c: Double = (kx == 0 || (w % 2 == 0 && kx == w / 2)) ? 1 : 2
            let angle = 2 * Double.pi * Double(kx * x % w) / Double(w)
            let (cs, sn) = (Float(c * cos(angle) / Double(w)), Float(c * sin(angle) / Double(w)))
            mx[x * 2 * wf + kx] = cs; mx[x * 2 * wf + wf + kx] = -sn
            mx[(w + x) * 2 * wf + kx] = sn; mx[(w + x) * 2 * wf + wf + kx] = cs
        } }
        // Along y, channels (ky, real/imaginary) -> rows y.
        var my = [Float](repeating: 0, count: h * 2 * h)
        for y in 0..<h { for ky in 0..<h {
            let angle = 2 * Double.pi * Double(ky * y % h) / Double(h)
            my[y * 2 * h + 2 * ky] = Float(cos(angle) / Double(h))
            my[y * 2 * h + 2 * ky + 1] = Float(-sin(angle) / Double(h))
        } }
        return Constants(scale: try b.tensor([Float]((0..<(batch * 3)).map { _ in spectrumScale() }.joined()), shape),
                         inverseX: try b.tensor(mx, [2 * w, 2 * wf]), inverseY: try b.tensor(my, [h, 2 * h, 1, 1]),
                         colour: decorrelate ? try b.tensor(Self.colorCorrelation, [3, 3, 1, 1]) : nil)
    }

    /// The image [N, 3, H, W] in [0, 1]: basis, then colour decorrelation, then a sigmoid.
    /// `constants` from `constants(on:)` (built here when nil).
    public func image(_ g: Graph, _ p: Graph.Value, constants: Constants? = nil) throws -> Graph.Value {
        guard g.shape(p) == shape else { throw InterpretError("image parameters are \(g.shape(p)), expected \(shape)") }
        let k = try constants ?? self.constants(on: g.backend)
        var x = p
        if basis == .fourier, let scale = k.scale, let mx = k.inverseX, let my = k.inverseY {
            x = try inverseRealFFT2(g, try g.mul(x, g.constant(scale)), mx, my)
            x = try g.scale(x, 0.25)
        }
        if decorrelate, let colour = k.colour {
            x = try g.conv2d(x, weight: g.constant(colour), bias: nil, Conv2DParams())
        }
        return try g.pointwise(x, .sigmoid)
    }

    /// numpy's irfft2(s=(H, W)) of the spectra [N * 3, H, 2 * Wf] (real parts then imaginary
    /// parts per row) as two matrix products on the device: the inverse real DFT along x as a
    /// linear layer (`mx`), then the inverse complex DFT along y as a 1x1 convolution whose
    /// channels are (ky, real/imaginary) (`my`). Imaginary parts of the kx = 0 and Nyquist
    /// columns drop out, as in numpy. Returns [N, 3, H, W].
    func inverseRealFFT2(_ g: Graph, _ spectrum: Graph.Value, _ mx: Tensor, _ my: Tensor) throws -> Graph.Value {
        let (h, w, wf) = (height, width, spectrumWidth)
        let planes = batch * 3
        let rows = try g.reshape(spectrum, [planes * h, 2 * wf])
        let u = try g.linear(rows, weight: g.constant(mx), bias: nil)
        // [planes * H, (re | im) x W] is [planes, (ky, part), 1, W]: mix channels with the y DFT.
        let channels = try g.reshape(u, [planes, 2 * h, 1, w])
        let image = try g.conv2d(channels, weight: g.constant(my), bias: nil, Conv2DParams())
        return try g.reshape(image, [batch, 3, h, w])
    }
}
