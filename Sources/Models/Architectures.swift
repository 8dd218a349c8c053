import Backend
import Graph

/// A network: its modules in forward order (with any glue between them, such as flatten or a
/// residual add, inside the modules' own forward passes), as torchvision builds it.
/// Input normalization: (x - mean[c]) / std[c] per colour channel, x in [0, 1].
public struct Normalization: Sendable, Equatable {
    /// Per colour channel (R, G, B), in [0, 1] pixel units.
    public var mean: [Float]
    /// Per colour channel (R, G, B).
    public var std: [Float]
    /// Normalization with these per-channel statistics (R, G, B).
    public init(mean: [Float], std: [Float]) { self.mean = mean; self.std = std }
    /// torchvision's ImageNet statistics, which its pretrained classifiers expect.
    public static let imagenet = Normalization(mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])
}

/// A network's structure without weights: its modules (named as torchvision names them), the
/// layer Grad-CAM reads by default and the input normalization it expects.
public struct Architecture: Sendable {
    /// The architecture's name (`resnet18`), or an imported file's.
    public let name: String
    /// The root modules, in order.
    public let body: [any Module]
    /// Applied to the (ImageNet-normalized) input before `body`: GoogLeNet's transform_input.
    public let inputTransform: (@Sendable (Graph, Graph.Value) throws -> Graph.Value)?
    /// The last convolutional block, the default layer for Grad-CAM.
    public let lastConvLayer: String
    /// The largest batch the network runs at (nil: any). An imported graph whose reshapes hold
    /// the batch it was traced at inside other dimensions (ViT's attention heads: [197, 12, 64]
    /// for batch 1) runs only at that batch; batched methods then pass one image at a time.
    public var maxBatch: Int? = nil
    /// The per-channel mean and standard deviation the network's inputs are normalized with
    /// (ImageNet's unless `--mean` / `--std` or a preset say otherwise): what feature
    /// visualization and inversion normalize their images with, and what a black baseline is.
    public var normalization = Normalization.imagenet
    /// Applied to the output of `body`: what the network's output stands for when a method's
    /// target is not a class (an objective: `Model.targeting` in Interpret).
    public var head: Head? = nil
    /// An imported graph's parameters by the layer (node output) that first reads each; empty
    /// for the built-in architectures, whose parameter names carry their module's.
    public var parameterLayers: [String: String] = [:]
    /// An imported graph's layers named as torch names its modules, in the order the pass
    /// reaches them (outermost first): each name is an alias of its node output's tap, so
    /// `--layer layer4` reads that output. Empty for the built-in architectures, whose taps
    /// are module names already.
    public var modules: [ModuleLayer] = []
    /// The square input size an imported graph declares (`[1, 3, 224, 224]`: 224), the default
    /// crop of its inputs; nil where the file leaves it free or declares a non-square one.
    public var inputSize: Int? = nil
    /// Whether the output is a segmentation's, [N, classes, H, W], as an imported graph declares
    /// (a method's target is then a class over a region: `Model.summed(over:)` in Interpret).
    public var isDense = false

    /// A function of the output and of the layers it names (which fused passes then keep).
    public struct Head: Sendable {
        /// The layers `apply` reads through `Graph.tapped`.
        public var layers: Set<String>
        /// The new output from the body's output.
        public var apply: @Sendable (Graph, Graph.Value) throws -> Graph.Value
        /// A head reading `layers`.
        public init(layers: Set<String>, apply: @escaping @Sendable (Graph, Graph.Value) throws -> Graph.Value) {
            self.layers = layers; self.apply = apply
        }
    }

    /// Every parameter the weights must hold, with its torchvision name and shape.
    public var parameters: [ParameterSpec] { body.flatMap(\.parameters) }

    /// Logits [N, 1000] for a normalized input [N, 3, H, W] (or what `head` makes of them);
    /// every module's output is tapped.
    public func forward(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore) throws -> Graph.Value {
        guard let head else { return try runInOrder(body, g, try inputTransform?(g, x) ?? x, p) }
        if let kept = g.keptLayers { g.keptLayers = kept.union(head.layers) }
        return try head.apply(g, try runInOrder(body, g, try inputTransform?(g, x) ?? x, p))
    }
}

/// Flattens [N, C, H, W] to [N, C*H*W] (torch.flatten(x, 1)); not a torchvision module, so
/// not tapped.
struct Flatten: Module {
    var name: String { "" }
    var kind: String { "Flatten" }
    var parameters: [ParameterSpec] { [] }
    func callAsFunction(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore) throws -> Graph.Value { try g.flatten(x) }
}

/// Every architecture Loupe knows, by the name torchvision gives its builder.
public enum Architectures {
    /// The architectures `--model` accepts by name (torchvision builder names).
    public static let names = ["alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "resnet18", "resnet34", "resnet50",
                               "mobilenet_v2", "googlenet"]

    /// torchvision's file name for the ImageNet weights of each architecture (IMAGENET1K_V1).
    public static let torchvisionFiles: [String: String] = [
        "alexnet": "alexnet-owt-7be5be79.pth", "vgg11": "vgg11-8a719046.pth", "vgg13": "vgg13-19584684.pth",
        "vgg16": "vgg16-397923af.pth", "vgg19": "vgg19-dcbb9e9d.pth", "resnet18": "resnet18-f37072fd.pth",
        "resnet34": "resnet34-b627a593.pth", "resnet50": "resnet50-0676ba61.pth",
        "mobilenet_v2": "mobilenet_v2-b0353104.pth", "googlenet": "googlenet-1378be20.pth",
    ]

    /// The built-in architecture `name` (one of `names`) with `classes` outputs; a `ModelError`
    /// listing the known names otherwise.
    public static func make(_ name: String, classes: Int = 1000) throws -> Architecture {
        switch name {
        case "alexnet": return alexnet(classes: classes)
        case "vgg11": return vgg(name, [64, -1, 128, -1, 256, 256, -1, 512, 512, -1, 512, 512, -1], classes: classes)
        case "vgg13": return vgg(name, [64, 64, -1, 128, 128, -1, 256, 256, -1, 512, 512, -1, 512, 512, -1], classes: classes)
        case "vgg16": return vgg(name, [64, 64, -1, 128, 128, -1, 256, 256, 256, -1, 512, 512, 512, -1, 512, 512, 512, -1], classes: classes)
        case "vgg19": return vgg(name, [64, 64, -1, 128, 128, -1, 256, 256, 256, 256, -1, 512, 512, 512, 512, -1, 512, 512, 512, 512, -1], classes: classes)
        case "resnet18": return resnet(name, blocks: [2, 2, 2, 2], bottleneck: false, classes: classes)
        case "resnet34": return resnet(name, blocks: [3, 4, 6, 3], bottleneck: false, classes: classes)
        case "resnet50": return resnet(name, blocks: [3, 4, 6, 3], bottleneck: true, classes: classes)
        case "mobilenet_v2": return mobilenetV2(classes: classes)
        case "googlenet": return googlenet(classes: classes)
        default:
            throw ModelError("unknown architecture \(name); known: \(names.joined(separator: ", "))")
        }
    }

    // MARK: AlexNet and VGG

    static func alexnet(classes: Int) -> Architecture {
        let features = Sequential("features", [
            Conv2d("features.0", 3, 64, kernel: 11, stride: 4, padding: 2), ActivationLayer("features.1", .relu),
            MaxPool2d("features.2", kernel: 3, stride: 2),
            Conv2d("features.3", 64, 192, kernel: 5, padding: 2), ActivationLayer("features.4", .relu),
            MaxPool2d("features.5", kernel: 3, stride: 2),
            Conv2d("features.6", 192, 384, kernel: 3, padding: 1), ActivationLayer("features.7", .relu),
            Conv2d("features.8", 384, 256, kernel: 3, padding: 1), ActivationLayer("features.9", .relu),
            Conv2d("features.10", 256, 256, kernel: 3, padding: 1), ActivationLayer("features.11", .relu),
            MaxPool2d("features.12", kernel: 3, stride: 2),
        ])
        let classifier = Sequential("classifier", [
            Dropout("classifier.0"), Linear("classifier.1", 256 * 36, 4096), ActivationLayer("classifier.2", .relu),
            Dropout("classifier.3"), Linear("classifier.4", 4096, 4096), ActivationLayer("classifier.5", .relu),
            Linear("classifier.6", 4096, classes),
        ])
        return Architecture(name: "alexnet", body: [features, AdaptiveAvgPool2d("avgpool", 6, 6), Flatten(), classifier],
                            inputTransform: nil, lastConvLayer: "features.11")
    }

    /// `config`: output channels of each 3x3 conv, -1 for a 2x2 max pool.
    static func vgg(_ name: String, _ config: [Int], classes: Int) -> Architecture {
        var layers: [any Module] = []
        var cin = 3
        for width in config {
            let i = layers.count
            if width < 0 {
                layers.append(MaxPool2d("features.\(i)", kernel: 2, stride: 2))
            } else {
                layers.append(Conv2d("features.\(i)", cin, width, kernel: 3, padding: 1))
                layers.append(ActivationLayer("features.\(i + 1)", .relu))
                cin = width
            }
        }
        let classifier = Sequential("classifier", [
            Linear("classifier.0", 512 * 49, 4096), ActivationLayer("classifier.1", .relu), Dropout("classifier.2"),
            Linear("classifier.3", 4096, 4096), ActivationLayer("classifier.4", .relu), Dropout("classifier.5"),
            Linear("classifier.6", 4096, classes),
        ])
        // The last ReLU before the final pool: features.29 for VGG16.
        let lastReLU = layers.count - 2
        return Architecture(name: name, body: [Sequential("features", layers), AdaptiveAvgPool2d("avgpool", 7, 7), Flatten(), classifier],
                            inputTransform: nil, lastConvLayer: "features.\(lastReLU)")
    }

    // MARK: ResNet

    static func resnet(_ name: String, blocks: [Int], bottleneck: Bool, classes: Int) -> Architecture {
        var body: [any Module] = [Conv2d("conv1", 3, 64, kernel: 7, stride: 2, padding: 3, bias: false), BatchNorm2d("bn1", 64),
                                  ActivationLayer("relu", .relu), MaxPool2d("maxpool", kernel: 3, stride: 2, padding: 1)]
        let expansion = bottleneck ? 4 : 1
        var cin = 64
        for (stage, count) in blocks.enumerated() {
            let width = 64 << stage
            var stageBlocks: [any Module] = []
            for i in 0..<count {
                let stride = stage > 0 && i == 0 ? 2 : 1
                let blockName = "layer\(stage + 1).\(i)"
                let downsample: Sequential? = stride != 1 || cin != width * expansion
                    ? Sequential(join(blockName, "downsample"), [
                        Conv2d(join(blockName, "downsample.0"), cin, width * expansion, kernel: 1, stride: stride, bias: false),
                        BatchNorm2d(join(blockName, "downsample.1"), width * expansion)])
                    : nil
                stageBlocks.append(ResidualBlock(name: blockName, inChannels: cin, width: width, stride: stride,
                                                 bottleneck: bottleneck, downsample: downsample))
                cin = width * expansion
            }
            body.append(Sequential("layer\(stage + 1)", stageBlocks))
        }
        body += [AdaptiveAvgPool2d("avgpool", 1, 1), Flatten(), Linear("fc", 512 * expansion, classes)]
        return Architecture(name: name, body: body, inputTransform: nil, lastConvLayer: "layer4")
    }
}

/// torchvision's BasicBlock (two 3x3 convs) or Bottleneck (1x1, 3x3 with the stride, 1x1 x4),
/// with the identity or `downsample` added before the last ReLU.
struct ResidualBlock: Module {
    let name: String
    let convs: [Conv2d]
    let norms: [BatchNorm2d]
    let downsample: Sequential?
    var kind: String { convs.count == 3 ? "Bottleneck" : "BasicBlock" }

    init(name: String, inChannels: Int, width: Int, stride: Int, bottleneck: Bool, downsample: Sequential?) {
        self.name = name
        self.downsample = downsample
        if bottleneck {
            convs = [Conv2d(join(name, "conv1"), inChannels, width, kernel: 1, bias: false),
                     Conv2d(join(name, "conv2"), width, width, kernel: 3, stride: stride, padding: 1, bias: false),
                     Conv2d(join(name, "conv3"), width, width * 4, kernel: 1, bias: false)]
            norms = [BatchNorm2d(join(name, "bn1"), width), BatchNorm2d(join(name, "bn2"), width), BatchNorm2d(join(name, "bn3"), width * 4)]
        } else {
            convs = [Conv2d(join(name, "conv1"), inChannels, width, kernel: 3, stride: stride, padding: 1, bias: false),
                     Conv2d(join(name, "conv2"), width, width, kernel: 3, padding: 1, bias: false)]
            norms = [BatchNorm2d(join(name, "bn1"), width), BatchNorm2d(join(name, "bn2"), width)]
        }
    }

    var parameters: [ParameterSpec] {
        zip(convs, norms).flatMap { $0.parameters + $1.parameters } + (downsample?.parameters ?? [])
    }

    func callAsFunction(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore) throws -> Graph.Value {
        // The last convolution, its batchnorm, the sum and the ReLU as one op, where the pass
        // reads neither the convolution's nor the batchnorm's output (the shortcut first).
        if let conv = convs.last, let norm = norms.last, g.mayFuseResidual([conv.name, norm.name]) {
            let identity = try downsample?(g, x, p) ?? x
            var h = x
            for (conv, norm) in zip(convs, norms).dropLast() { h = try convNorm(g, h, p, conv, norm, activation: .relu) }
            let y = try g.tap(join(name, "relu"), try residualConvolution(g, h, p, conv, norm, activation: .relu, residual: identity),
                              kind: "ReLU")
            return try tapped(g, y)
        }
        var h = x
        for (i, (conv, norm)) in zip(convs, norms).enumerated() {
            h = try convNorm(g, h, p, conv, norm, activation: i < convs.count - 1 ? .relu : nil)
        }
        let identity = try downsample?(g, x, p) ?? x
        let y = try g.tap(join(name, "relu"), try g.activation(try g.add(h, identity), .relu), kind: "ReLU")
        return try tapped(g, y)
    }
}
