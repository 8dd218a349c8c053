import Backend
import Graph

extension Architectures {
    /// torchvision's googlenet in inference mode (no auxiliary classifiers). With
    /// `transform_input` (on for torchvision's ImageNet weights) the ImageNet-normalized input
    /// is re-normalized per channel to mean 0.5, std 0.5, as the original Inception weights expect.
    static func googlenet(classes: Int, transformInput: Bool = true) -> Architecture {
        let body: [any Module] = [
            basicConv("conv1", 3, 64, kernel: 7, stride: 2, padding: 3),
            MaxPool2d("maxpool1", kernel: 3, stride: 2, ceilMode: true),
            basicConv("conv2", 64, 64, kernel: 1),
            basicConv("conv3", 64, 192, kernel: 3, padding: 1),
            MaxPool2d("maxpool2", kernel: 3, stride: 2, ceilMode: true),
            Inception("inception3a", 192, 64, 96, 128, 16, 32, 32),
            Inception("inception3b", 256, 128, 128, 192, 32, 96, 64),
            MaxPool2d("maxpool3", kernel: 3, stride: 2, ceilMode: true),
            Inception("inception4a", 480, 192, 96, 208, 16, 48, 64),
            Inception("inception4b", 512, 160, 112, 224, 24, 64, 64),
            Inception("inception4c", 512, 128, 128, 256, 24, 64, 64),
            Inception("inception4d", 512, 112, 144, 288, 32, 64, 64),
            Inception("inception4e", 528, 256, 160, 320, 32, 128, 128),
            MaxPool2d("maxpool4", kernel: 2, stride: 2, ceilMode: true),
            Inception("inception5a", 832, 256, 160, 320, 32, 128, 128),
            Inception("inception5b", 832, 384, 192, 384, 48, 128, 128),
            AdaptiveAvgPool2d("avgpool", 1, 1), Flatten(), Dropout("dropout"), Linear("fc", 1024, classes),
        ]
        let transform: (@Sendable (Graph, Graph.Value) throws -> Graph.Value)? = transformInput ? googlenetTransformInput : nil
        return Architecture(name: "googlenet", body: body, inputTransform: transform, lastConvLayer: "inception5b")
    }

    /// x_c * (std_c / 0.5) + (mean_c - 0.5) / 0.5 for ImageNet's mean and std.
    @Sendable static func googlenetTransformInput(_ g: Graph, _ x: Graph.Value) throws -> Graph.Value {
        let mean: [Float] = [0.485, 0.456, 0.406]
        let std: [Float] = [0.229, 0.224, 0.225]
        let scale: [Float] = std.map { $0 / 0.5 }
        let shift: [Float] = mean.map { ($0 - 0.5) / 0.5 }
        return try g.channelAffine(x, scale: scale, shift: shift)
    }

    /// torchvision's BasicConv2d: conv (no bias), batchnorm (eps 0.001), ReLU.
    static func basicConv(_ name: String, _ cin: Int, _ cout: Int, kernel: Int, stride: Int = 1, padding: Int = 0) -> Sequential {
        Sequential(name, kind: "BasicConv2d", [
            Conv2d(join(name, "conv"), cin, cout, kernel: kernel, stride: stride, padding: padding, bias: false),
            BatchNorm2d(join(name, "bn"), cout, eps: 0.001),
            ActivationLayer("", .relu),
        ])
    }
}

/// Four branches concatenated along channels: 1x1; 1x1 then 3x3; 1x1 then 3x3 (torchvision's
/// "5x5" branch uses a 3x3 kernel); 3x3 max pool then 1x1.
struct Inception: Module {
    let name: String
    let branches: [Sequential]
    var kind: String { "Inception" }

    init(_ name: String, _ cin: Int, _ ch1x1: Int, _ ch3x3red: Int, _ ch3x3: Int, _ ch5x5red: Int, _ ch5x5: Int, _ poolProj: Int) {
        self.name = name
        let b = { (i: Int) in join(name, "branch\(i)") }
        branches = [
            Sequential(b(1), [Architectures.basicConv(b(1), cin, ch1x1, kernel: 1)]),
            Sequential(b(2), [Architectures.basicConv(join(b(2), "0"), cin, ch3x3red, kernel: 1),
                              Architectures.basicConv(join(b(2), "1"), ch3x3red, ch3x3, kernel: 3, padding: 1)]),
            Sequential(b(3), [Architectures.basicConv(join(b(3), "0"), cin, ch5x5red, kernel: 1),
                              Architectures.basicConv(join(b(3), "1"), ch5x5red, ch5x5, kernel: 3, padding: 1)]),
            Sequential(b(4), [MaxPool2d(join(b(4), "0"), kernel: 3, stride: 1, padding: 1, ceilMode: true),
                              Architectures.basicConv(join(b(4), "1"), cin, poolProj, kernel: 1)]),
        ]
    }

    var parameters: [ParameterSpec] { branches.flatMap(\.parameters) }

    func callAsFunction(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore) throws -> Graph.Value {
        try tapped(g, try g.concat(try branches.map { try $0(g, x, p) }))
    }
}
