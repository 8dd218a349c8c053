import Backend

/// One benchmarked op at one layer shape (batch excluded).
public enum BenchOp: Hashable, Sendable {
    /// conv2d: input channels, output channels, input size, kernel, stride, padding, groups.
    case conv(cin: Int, cout: Int, size: Int, k: Int, stride: Int, pad: Int, groups: Int)
    /// An activation over channels x size x size.
    case activation(Activation, channels: Int, size: Int)
    /// Eval-mode batch normalization over channels x size x size.
    case batchNorm(channels: Int, size: Int)
    /// Max pooling: channels, input size, window, stride, padding.
    case maxPool(channels: Int, size: Int, k: Int, stride: Int, pad: Int)
    /// Adaptive average pooling of channels x size x size to 1 x 1.
    case adaptiveAvgPool(channels: Int, size: Int)
    /// Elementwise sum of two channels x size x size tensors (a residual connection).
    case add(channels: Int, size: Int)
    /// A fully connected layer, inF -> outF.
    case linear(inF: Int, outF: Int)
    /// Softmax over a row of `classes` logits.
    case softmax(classes: Int)

    /// The op's family as `BenchResult.op` names it ("conv dw" for grouped convolutions).
    public var family: String {
        switch self {
        case .conv(_, _, _, _, _, _, let g): g > 1 ? "conv dw" : "conv"
        case .activation(let a, _, _): a == .relu ? "relu" : "relu6"
        case .batchNorm: "batchnorm"
        case .maxPool: "maxpool"
        case .adaptiveAvgPool: "avgpool"
        case .add: "add"
        case .linear: "linear"
        case .softmax: "softmax"
        }
    }

    /// The layer shape as `BenchResult.shape` names it.
    public var shapeDescription: String {
        switch self {
        case let .conv(cin, cout, size, k, stride, pad, groups):
            "\(k)x\(k) \(cin)->\(cout) \(size)x\(size) s\(stride) p\(pad)\(groups > 1 ? " g\(groups)" : "")"
        case let .activation(_, c, s), let .batchNorm(c, s), let .add(c, s): "\(c)x\(s)x\(s)"
        case let .maxPool(c, s, k, stride, pad): "\(c)x\(s)x\(s) k\(k) s\(stride) p\(pad)"
        case let .adaptiveAvgPool(c, s): "\(c)x\(s)x\(s) -> 1x1"
        case let .linear(i, o): "\(i)->\(o)"
        case let .softmax(n): "\(n)"
        }
    }
}

/// The layer shapes of the classic networks at 224x224, as torchvision builds them.
public enum LayerShapes {
    /// The networks whose layer shapes are listed.
    public static let models = ["vgg16", "resnet18", "mobilenet_v2"]

    /// The distinct layer shapes of `model` (one of `models`), in network order; empty for others.
    public static func ops(model: String) -> [BenchOp] {
        switch model {
        case "vgg16": vgg16
        case "resnet18": resnet18
        case "mobilenet_v2": mobilenetV2
        default: []
        }
    }

    static var vgg16: [BenchOp] {
        var ops: [BenchOp] = []
        var cin = 3, size = 224
        for (width, count) in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)] {
            for _ in 0..<count {
                ops.append(.conv(cin: cin, cout: width, size: size, k: 3, stride: 1, pad: 1, groups: 1))
                cin = width
            }
            ops.append(.maxPool(channels: width, size: size, k: 2, stride: 2, pad: 0))
            size /= 2
        }
        return ops + [.activation(.relu, channels: 64, size: 224), .linear(inF: 25088, outF: 4096),
                      .linear(inF: 4096, outF: 4096), .linear(inF: 4096, outF: 1000)]
    }

    static var resnet18: [BenchOp] {
        var ops: [BenchOp] = [.conv(cin: 3, cout: 64, size: 224, k: 7, stride: 2, pad: 3, groups: 1),
                              .batchNorm(channels: 64, size: 112), .activation(.relu, channels: 64, size: 112),
                              .maxPool(channels: 64, size: 112, k: 3, stride: 2, pad: 1)]
        var cin = 64, size = 56
        for width in [64, 128, 256, 512] {
            let stride = width == 64 ? 1 : 2
            ops.append(.conv(cin: cin, cout: width, size: size, k: 3, stride: stride, pad: 1, groups: 1))
            if stride == 2 { ops.append(.conv(cin: cin, cout: width, size: size, k: 1, stride: 2, pad: 0, groups: 1)) }
            size /= stride
            ops.append(.conv(cin: width, cout: width, size: size, k: 3, stride: 1, pad: 1, groups: 1))
            cin = width
        }
        return ops + [.add(channels: 64, size: 56), .adaptiveAvgPool(channels: 512, size: 7), .linear(inF: 512, outF: 1000)]
    }

    static var mobilenetV2: [BenchOp] {
        var ops: [BenchOp] = [.conv(cin: 3, cout: 32, size: 224, k: 3, stride: 2, pad: 1, groups: 1)]
        var cin = 32, size = 112
        for (t, c, n, s) in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)] {
            for i in 0..<n {
                let stride = i == 0 ? s : 1, hidden = cin * t
                if t != 1 { ops.append(.conv(cin: cin, cout: hidden, size: size, k: 1, stride: 1, pad: 0, groups: 1)) }
                ops.append(.conv(cin: hidden, cout: hidden, size: size, k: 3, stride: stride, pad: 1, groups: hidden))
                size /= stride
                ops.append(.conv(cin: hidden, cout: c, size: size, k: 1, stride: 1, pad: 0, groups: 1))
                cin = c
            }
        }
        ops.append(.conv(cin: 320, cout: 1280, size: 7, k: 1, stride: 1, pad: 0, groups: 1))
        return ops + [.batchNorm(channels: 96, size: 112), .activation(.relu6, channels: 96, size: 112),
                      .add(channels: 24, size: 56), .adaptiveAvgPool(channels: 1280, size: 7),
                      .linear(inF: 1280, outF: 1000), .softmax(classes: 1000)]
    }
}
