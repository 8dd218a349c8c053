import Backend
import Foundation
import Graph
import Models
import Testing
import TestSupport
import WeightFiles

/// ONNX import against PyTorch: torchvision models exported by torch.onnx.export (opset 17,
/// tools/make_onnx_fixtures.py), their initializers filled with the seeded weights that
/// tools/make_model_fixtures.py used, so models.safetensors' logits and input gradients are the
/// reference, on both backends.
@Suite(.timed) struct ONNXTests {
    static let seed: UInt64 = 20261126

    func onnxModel(_ arch: String, on b: any Backend) throws -> Model {
        let (architecture, _) = try ModelLocator.onnx(fixtures.appendingPathComponent("onnx/\(arch).onnx").path, weightsRequired: false)
        return Model(architecture: architecture, parameters: try SeededWeights.parameters(for: architecture, seed: Self.seed, on: b), backend: b)
    }

    func logitsAndGradient(_ model: Model, _ input: [Float], _ shape: Shape, targets: [Int]? = nil,
                           inspect: (Graph) throws -> Void = { _ in }) throws -> (logits: [Float], grad: [Float]) {
        let b = model.backend
        let g = Graph(backend: b)
        let x = g.input(try b.tensor(input, shape))
        let y = try model.forward(g, x)
        try inspect(g)
        let logits = try b.values(g.tensor(y))
        let classes = g.shape(y)[1], n = shape[0]
        var seed = [Float](repeating: 0, count: logits.count)
        for i in 0..<n {
            let row = logits[(i * classes)..<((i + 1) * classes)]
            seed[i * classes + (targets?[i] ?? (row.indices.max { row[$0] < row[$1] }! - i * classes))] = 1
        }
        return (logits, try b.values(try g.backward(from: y, seed: try b.tensor(seed, g.shape(y))).of(x)!))
    }

    @Test(arguments: ["resnet18", "mobilenet_v2", "googlenet"])
    func exportedModelsMatchPyTorch(_ arch: String) throws {
        let file = try SafeTensorsFile(url: fixtures.appendingPathComponent("models.safetensors"))
        let input = try file.tensor("\(arch).input")
        for b in [cpu] + (openCL().map { [$0 as any Backend] } ?? []) {
            let (logits, grad) = try logitsAndGradient(try onnxModel(arch, on: b), input.values, input.shape)
            #expect(normalizedError(logits, try file.tensor("\(arch).logits").values) < 1e-4, "\(b.name) \(arch) logits")
            #expect(normalizedError(grad, try file.tensor("\(arch).input_grad").values) < 1e-3, "\(b.name) \(arch) input gradient")
        }
    }

    /// `<file>.onnx` (stripped, refilled with seeded weights) against PyTorch's logits (< 1e-4)
    /// and input gradient, case `key` of `references`, on the CPU reference (below 224 px: VGG16
    /// at 224 would take minutes there) and PoCL. The gradient's bound is 1e-3, four times the
    /// largest floor the fixture may hold (PyTorch's own float32-vs-float64 error on it,
    /// `<key>.grad_floor`, below 2.5e-4); at 224 px the gradient is compared summed over 8x8 blocks, and the input is
    /// the seeded generator's under the fixture's `<key>.input_name` (the script's first draw
    /// whose floor is below 1e-5: no ReLU input within float32 rounding of its kink decides it).
    func expectExportMatchesPyTorch(_ file: String, key: String, references: SafeTensorsFile) throws {
        let logitsReference = try references.tensor("\(key).logits").values
        let input: [Float], shape: Shape
        if let stored = try? references.tensor("\(key).input") {
            (input, shape) = (stored.values, stored.shape)
        } else {
            shape = [logitsReference.count / 1000, 3, 224, 224]
            let name = try #require(references.metadata["\(key).input_name"], "\(key): the fixture names no input")
            input = SeededWeights.values(for: ParameterSpec(name: name, shape: shape, role: .bias(fanIn: 1)), seed: Self.seed)
        }
        let floor = Float(references.metadata["\(key).grad_floor"] ?? "") ?? .infinity
        #expect(floor < 2.5e-4, "\(key): no or a large float32 noise floor in the fixture")
        let bound: Float = 1e-3
        let backends: [any Backend] = (shape[2] < 224 ? [cpu] : []) + (openCL().map { [$0 as any Backend] } ?? [])
        for b in backends {
            let model = try onnxModel(file, on: b)
            let (logits, grad) = try logitsAndGradient(model, input, shape) { g in
                try expectModulesAreTorchs(model, g, file: file, json: references.metadata["\(key).modules"])
            }
            #expect(normalizedError(logits, logitsReference) < 1e-4, "\(b.name) \(file) logits")
            let compared = shape[2] < 224 ? grad : blockSums(grad, shape, block: 8)
            let gradReference = try references.tensor(shape[2] < 224 ? "\(key).input_grad" : "\(key).pooled_grad").values
            let error = normalizedError(compared, gradReference)
            #expect(error < bound, "\(b.name) \(file) input gradient: \(error) (bound \(bound))")
        }
    }

    /// The module names the file records (the TorchScript exporter's scoped node names, the
    /// dynamo exporter's name scopes) name what torch's modules output: each module Loupe lists
    /// against the module's own output in PyTorch on the same weights and input (a forward hook,
    /// its last call; shape, sum and sum of squares in `json`, tools/make_onnx_fixtures.py), and
    /// every container module of torch's (one with children) is listed, the model's blocks.
    func expectModulesAreTorchs(_ model: Model, _ g: Graph, file: String, json: String?) throws {
        let json = try #require(json, "\(file): the fixture holds no module outputs")
        let torch = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: [Any]])
        let modules = model.architecture.modules
        #expect(!modules.isEmpty, "\(file): no module names")
        for m in modules {
            guard let reference = torch[m.name] else { Issue.record("\(file): \(m.name) is not a module of torch's"); continue }
            let v = try #require(g.tapped(m.name), "\(file): \(m.name) not tapped")
            let shape = (reference[0] as! [Int])
            let (sum, squares) = ((reference[1] as! NSNumber).doubleValue, (reference[2] as! NSNumber).doubleValue)
            #expect(g.shape(v).dims == shape, "\(file) \(m.name): \(g.shape(v)) vs torch's \(shape)")
            let values = try model.backend.values(g.tensor(v)).map(Double.init)
            let (s, q) = (values.reduce(0, +), values.reduce(0) { $0 + $1 * $1 })
            let scale = (squares * Double(values.count)).squareRoot() + 1e-9
            #expect(abs(s - sum) <= 1e-4 * scale && abs(q - squares) <= 1e-4 * squares + 1e-12,
                    "\(file) \(m.name) (\(m.layer)): sum \(s) vs \(sum), squares \(q) vs \(squares)")
        }
        let listed = Set(modules.map(\.name))
        let containers = torch.keys.filter { name in torch.keys.contains { $0.hasPrefix(name + ".") } }
        let missing = containers.filter { !listed.contains($0) }.sorted()
        #expect(missing.isEmpty, "\(file): torch's modules \(missing) are not listed")
    }

    /// `values` [N, C, H, W] summed over block x block squares: [N, C, H / block, W / block].
    func blockSums(_ values: [Float], _ shape: Shape, block: Int) -> [Float] {
        let (h, w) = (shape[2], shape[3])
        var out = [Float](repeating: 0, count: values.count / (block * block))
        for i in values.indices {
            let (plane, y, x) = (i / (h * w), i / w % h, i % w)
            out[(plane * (h / block) + y / block) * (w / block) + x / block] += values[i]
        }
        return out
    }

    /// What a user gets from `torch.onnx.export(model, x, f)` with the exporter's defaults
    /// (constant folding: batchnorms folded into convolutions, initializers renamed and shared
    /// through Identity nodes), tools/make_onnx_fixtures.py --defaults: logits and input
    /// gradients of PyTorch's model holding the same weights, on both backends. Exported at batch
    /// 1 (ShuffleNet's channel shuffle writes that batch into its reshapes, and runs at 2 here);
    /// ConvNeXt at the default opset (GELU as Gelu) and at 17 (GELU as Div, Erf, Add, Mul); the
    /// ViT also with its batch left free (`dynamic_axes`), run at batch 2.
    @Test(arguments: ["resnet18", "resnet50", "mobilenet_v2", "googlenet", "mobilenet_v3_small", "mobilenet_v3_large",
                      "efficientnet_b0", "regnet_y_400mf", "squeezenet1_1", "densenet121", "shufflenet_v2_x1_0",
                      "convnext_tiny", "convnext_tiny_opset17", "inception_v3", "alexnet", "vit", "vit_opset17", "vgg16", "vit_dynamic",
                      "mnasnet0_5", "regnet_x_400mf", "resnext50_32x4d"])
    func defaultExportsMatchPyTorch(_ arch: String) throws {
        let file = try SafeTensorsFile(url: fixtures.appendingPathComponent("onnx/default_exports.safetensors"))
        try expectExportMatchesPyTorch("\(arch)_default", key: arch, references: file)
    }

    /// What `torch.onnx.export(model, (x,), dynamo=True)` writes (tools/make_onnx_fixtures.py
    /// --dynamo): batchnorms folded into convolutions, linear layers as MatMul by a transposed
    /// copy, ShuffleNet's Split, the class token stored already expanded, a Gather of a range;
    /// the ViT also with its batch left free (`dynamic_shapes`), run at batch 3.
    @Test(arguments: ["resnet18", "resnet50", "vgg16", "alexnet", "googlenet", "mobilenet_v2", "mobilenet_v3_small",
                      "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny", "regnet_y_400mf", "densenet121",
                      "shufflenet_v2_x1_0", "squeezenet1_1", "inception_v3", "vit", "vit_dynamic", "mnasnet0_5", "regnet_x_400mf",
                      "resnext50_32x4d"])
    func dynamoExportsMatchPyTorch(_ arch: String) throws {
        let file = try SafeTensorsFile(url: fixtures.appendingPathComponent("onnx/dynamo_exports.safetensors"))
        try expectExportMatchesPyTorch("\(arch)_dynamo", key: arch, references: file)
    }

    /// A graph whose reshapes were fixed at export (ShuffleNet at 64x64) refuses another size
    /// with one line naming the node, not a crash or a wrong shape.
    @Test func aGraphFixedAtItsExportSizeRefusesAnotherSize() throws {
        let model = try onnxModel("shufflenet_v2_x1_0_default", on: cpu)
        let g = Graph(backend: cpu)
        do {
            _ = try model.forward(g, g.input(try cpu.tensor([Float](repeating: 0.5, count: 3 * 32 * 32), [1, 3, 32, 32])))
            Issue.record("ran at 32x32")
        } catch {
            let message = "\(error)"
            #expect(message.contains("(Reshape)") && message.contains("cannot reshape [1, 116, 4, 4]") && message.contains("exported"), "\(message)")
        }
    }

    /// VGG16 exports only at 224x224 (its adaptive 7x7 pool); on the device (the CPU reference
    /// would take minutes), against PyTorch's logits and its input gradient summed over 8x8 blocks.
    @Test func vgg16MatchesPyTorchAt224() throws {
        guard let gpu = openCL() else { return }
        let reference = try SafeTensorsFile(url: fixtures.appendingPathComponent("onnx/vgg16_224.safetensors"))
        let name = try #require(reference.metadata["input_name"], "the fixture names no input")
        let input = SeededWeights.values(for: ParameterSpec(name: name, shape: [1, 3, 224, 224], role: .bias(fanIn: 1)), seed: Self.seed)
        let target = try #require(reference.metadata["target"].flatMap { Int($0) })
        let (logits, grad) = try logitsAndGradient(try onnxModel("vgg16", on: gpu), input, [1, 3, 224, 224], targets: [target])
        #expect(normalizedError(logits, try reference.tensor("logits").values) < 1e-4, "VGG16 logits")
        var pooled = [Float](repeating: 0, count: 3 * 28 * 28)
        for i in 0..<grad.count {
            let (c, y, x) = (i / (224 * 224), i / 224 % 224, i % 224)
            pooled[(c * 28 + y / 8) * 28 + x / 8] += grad[i]
        }
        // The imported graph computes exactly what the native VGG16 computes, gradient included.
        let native = try Architectures.make("vgg16")
        let nativeModel = Model(architecture: native, parameters: try SeededWeights.parameters(for: native, seed: Self.seed, on: gpu), backend: gpu)
        let (nativeLogits, nativeGrad) = try logitsAndGradient(nativeModel, input, [1, 3, 224, 224], targets: [target])
        #expect(nativeLogits == logits && nativeGrad == grad)
        // The input is the script's first draw whose gradient floor (PyTorch float32 against
        // float64) is below 1e-5, so no ReLU input within float32 rounding of its kink decides
        // the gradient; the bound is 1e-3.
        let floor = try #require(reference.metadata["grad_floor"].flatMap { Float($0) })
        #expect(floor < 2.5e-4, "a large float32 noise floor in the fixture")
        let bound: Float = 1e-3
        let gradError = normalizedError(pooled, try reference.tensor("pooled_grad").values)
        #expect(gradError < bound, "VGG16 input gradient (8x8 sums): \(gradError) (bound \(bound))")
    }

    /// The exported MobileNetV2 graph with the real weights (the .pth's tensors, which the
    /// export names identically) classifies the photo as the native model does.
    @Test func realMobileNetV2GraphClassifiesThePhoto() throws {
        guard realWeightsPresent(fail: { Issue.record(Comment(rawValue: $0)) }), let gpu = openCL() else { return }
        let (architecture, _) = try ModelLocator.onnx(fixtures.appendingPathComponent("onnx/mobilenet_v2.onnx").path, weightsRequired: false)
        let url = ModelLocator.checkpointDirectory.appendingPathComponent("mobilenet_v2-b0353104.pth")
        let weights = try loadWeights(url: url).filter { !$0.key.hasSuffix("num_batches_tracked") }
        let model = try Model(architecture: architecture, weights: weights, on: gpu)
        let input = try SafeTensorsFile(url: fixtures.appendingPathComponent("chelsea_input.safetensors")).tensor("input")
        let g = Graph(backend: gpu)
        let p = try gpu.values(gpu.softmax(g.tensor(try model.forward(g, g.input(try gpu.tensor(input.values, Shape([1] + input.shape.dims)))))))
        #expect(p.indices.max { p[$0] < p[$1] } == 285 && abs(p[285] - 0.7166) < 1e-3, "p(285) = \(p[285])")
    }

    /// LeakyRelu, AveragePool with ceil mode, Sigmoid, scalar Mul/Sub/Div, MatMul by an
    /// initializer and Softmax, in a small exported net with its weights: output and input
    /// gradient against PyTorch on both backends.
    /// `model`'s output and input gradient (from the reference's output gradient `seed`) against
    /// PyTorch's in `reference` (tools/make_onnx_fixtures.py), on both backends.
    func expectMatchesPyTorch(_ model: String, _ reference: String) throws {
        let file = try SafeTensorsFile(url: fixtures.appendingPathComponent("onnx/\(reference)"))
        let x = try file.tensor("input"), seed = try file.tensor("seed")
        for b in [cpu] + (openCL().map { [$0 as any Backend] } ?? []) {
            let loaded = try ModelLocator.load(model: fixtures.appendingPathComponent("onnx/\(model)").path, on: b)
            let g = Graph(backend: b)
            let input = g.input(try b.tensor(x.values, x.shape))
            let y = try loaded.forward(g, input)
            #expect(normalizedError(try b.values(g.tensor(y)), try file.tensor("output").values) < 1e-5, "\(b.name) \(model) output")
            let grad = try b.values(try g.backward(from: y, seed: try b.tensor(seed.values, seed.shape)).of(input)!)
            #expect(normalizedError(grad, try file.tensor("input_grad").values) < 1e-4, "\(b.name) \(model) input gradient")
        }
    }

    /// Graphs from both exporters, each with its weights, against PyTorch's output and input
    /// gradient on both backends (tools/make_onnx_fixtures.py --<case>):
    /// - resize: torch's interpolate, bilinear to a size read from a tensor's shape, with aligned
    ///   corners and nearest by a scale of 2, bilinear from 1x1;
    /// - attention: windowed attention as MaxViT writes it, Einsum (torchvision's spaced capitals
    ///   and lower case), a relative position bias gathered from a table and laid out from a
    ///   stored tensor, added to scores of one more leading dimension;
    /// - swin: a reduced torchvision Swin Transformer, the shifted windows' attention mask built
    ///   from constants (folded at import) or from the pass's shapes (on the host in each pass),
    ///   zero pads, patch merging's strided slices;
    /// - swin_v2: Swin V2's blocks (3x3 windows on 8x8 and 4x4 maps, so padded), cosine attention
    ///   (ReduceL2, a clamp, a division by the norm), the position MLP and logit scale folded at
    ///   import, the key bias zeroed by ScatterND on the host, rows and columns of [N, H, W, C]
    ///   maps padded;
    /// - norms: timm's norms and reductions, GroupNorm (one group and four) as
    ///   InstanceNormalization between reshapes, InstanceNorm2d with its scale and bias,
    ///   ReduceMean over a channels-last map's H and W and over a middle axis of a rank-5 tensor,
    ///   and operands numpy broadcasts along a middle axis (a window mask, that mean);
    /// - timm_swin: timm's Swin Transformer (reduced), blocks on channels-last maps with their
    ///   windows' attention mask, the head's mean over H and W (its Grad-CAM is in
    ///   InterpretTests; `--timm`).
    @Test(arguments: ["resize", "attention", "swin", "swin_v2", "norms", "timm_swin"], ["torchscript", "dynamo"])
    func bothExportersMatchPyTorch(_ graph: String, _ exporter: String) throws {
        try expectMatchesPyTorch("\(graph)_\(exporter).onnx", "\(graph).safetensors")
    }

    @Test func otherOpsMatchPyTorch() throws {
        try expectMatchesPyTorch("ops.onnx", "ops.safetensors")
    }

    /// Pad and Conv with asymmetric pads, Softmax along axes 1 and 2 of [N, C, H, W], Split by
    /// sizes and into equal parts (one output unused), a stored tensor traced at batch 1 in a
    /// Concat run at batch 2, a Gather of consecutive indices: a graph written by hand at opset
    /// 18 (tools/make_onnx_fixtures.py --layout), against the same computation in PyTorch.
    @Test func layoutOpsMatchPyTorch() throws {
        try expectMatchesPyTorch("layout_ops.onnx", "layout_ops.safetensors")
    }

    /// Weights in an external data file beside the model (as the dynamo exporter stores them)
    /// and global pooling as ReduceMean over H and W (axes an attribute at opset 17, an input at
    /// 18; kept dimensions or not), against PyTorch on both backends.
    @Test(arguments: [17, 18])
    func externalDataAndReduceMeanMatchPyTorch(_ opset: Int) throws {
        try expectMatchesPyTorch("mean_ext_\(opset).onnx", "mean_ext.safetensors")
    }

    /// External data must name a file beside the model, inside its length: a path that leaves
    /// the folder, a link that leads out of it, a FIFO, a missing file and a range past the
    /// file's end are refused, naming why.
    @Test func externalDataOutsideItsFileIsRefused() throws {
        let source = fixtures.appendingPathComponent("onnx/mean_ext_17.onnx")
        let bytes = [UInt8](try Data(contentsOf: source)), data = try Data(contentsOf: source.appendingPathExtension("data"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-ext-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // The location string, replaced by one of the same length keeps the protobuf valid.
        func renamed(_ to: String) throws -> [UInt8] {
            let from = Array("mean_ext_17.onnx.data".utf8), with = Array(to.utf8)
            try #require(from.count == with.count)
            var out = bytes, i = 0
            while i + from.count <= out.count {
                if Array(out[i..<(i + from.count)]) == from { out.replaceSubrange(i..<(i + from.count), with: with); i += from.count } else { i += 1 }
            }
            return out
        }
        let cases: [(String, [UInt8], Data?, String)] = [
            ("up.onnx", try renamed("../mean_ext_17.onnx.d"), nil, "must be a file name beside the model"),
            ("gone.onnx", try renamed("missing_xyz.onnx.data"), nil, "cannot open its external data file"),
            ("short.onnx", bytes, data.prefix(100), "is outside its 100 bytes"),
        ]
        for (name, model, sidecar, message) in cases {
            try Data(model).write(to: dir.appendingPathComponent(name))
            if let sidecar { try sidecar.write(to: dir.appendingPathComponent("mean_ext_17.onnx.data")) }
            #expect { _ = try ModelLocator.load(model: dir.appendingPathComponent(name).path, on: cpu) } throws: { error in
                "\(error)".contains(message)
            }
        }
        // A link beside the model that leads out of its folder is refused (the onnx package's
        // CVE-2024-27318 class), however valid the file it reaches; a FIFO is refused unopened;
        // a link to a file in the same folder is followed.
        let outside = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-ext-outside-\(UUID().uuidString)")
        try data.write(to: outside)
        defer { try? FileManager.default.removeItem(at: outside) }
        let sidecar = dir.appendingPathComponent("mean_ext_17.onnx.data")
        try Data(bytes).write(to: dir.appendingPathComponent("linked.onnx"))
        try? FileManager.default.removeItem(at: sidecar)
        try FileManager.default.createSymbolicLink(at: sidecar, withDestinationURL: outside)
        #expect { _ = try ModelLocator.load(model: dir.appendingPathComponent("linked.onnx").path, on: cpu) } throws: { error in
            "\(error)".contains("outside the model's folder: refused")
        }
        try FileManager.default.removeItem(at: sidecar)
        #expect(mkfifo(sidecar.path, 0o600) == 0)
        #expect { _ = try ModelLocator.load(model: dir.appendingPathComponent("linked.onnx").path, on: cpu) } throws: { error in
            "\(error)".contains("is not a regular file")
        }
        try FileManager.default.removeItem(at: sidecar)
        try data.write(to: dir.appendingPathComponent("real.data"))
        try FileManager.default.createSymbolicLink(at: sidecar, withDestinationURL: dir.appendingPathComponent("real.data"))
        _ = try ModelLocator.load(model: dir.appendingPathComponent("linked.onnx").path, on: cpu)
    }

    /// Crafted graphs whose shapes overflow (tools/make_crafted_fixtures.py) are refused with
    /// one line on both backends, never a trap: Conv pads of 2^30, a Reshape to [2^40, 2^40].
    @Test func shapesThatOverflowAreRefused() throws {
        for (file, message) in [("crafted_pads.onnx", "conv2d: invalid settings: stride 1x1 pad 1073741824x1073741824"),
                                ("crafted_reshape.onnx", "cannot reshape [1, 3, 8, 8] to [1099511627776, 1099511627776]")] {
            var backends: [any Backend] = [cpu]
            if let device = TestDevice.backend(fail: { Issue.record(Comment(rawValue: $0)) }) { backends.append(device) }
            for b in backends {
                #expect {
                    let model = try ModelLocator.load(model: fixtures.appendingPathComponent("onnx/" + file).path, on: b)
                    let g = Graph(backend: b)
                    _ = try model.forward(g, g.input(try b.tensor([Float](repeating: 0.5, count: 3 * 8 * 8), [1, 3, 8, 8])))
                } throws: { error in
                    "\(error)".contains(message)
                }
            }
        }
    }

    /// The memory estimate of a model that runs only at its own input size (ops.onnx flattens
    /// into a fixed MatMul): the 64x64 probe fails, so one image at the asked size is probed.
    @Test func memoryIsEstimatedForAModelOfFixedSize() throws {
        let x = try SafeTensorsFile(url: fixtures.appendingPathComponent("onnx/ops.safetensors")).tensor("input")
        let model = try ModelLocator.load(model: fixtures.appendingPathComponent("onnx/ops.onnx").path, on: cpu)
        let (h, w) = (x.shape[2], x.shape[3])
        let g = Graph(backend: cpu)
        #expect(throws: (any Error).self) { try model.forward(g, g.input(try cpu.tensor([Float](repeating: 0, count: 3 * 64 * 64), [1, 3, 64, 64]))) }
        let batch = 16 * 224 * 224 / (h * w) + 1
        let bytes = try MemoryBudget.passBytes(model, batch: batch, height: h, width: w)
        let one = Graph(backend: cpu)
        _ = try model.forward(one, one.input(try cpu.tensor(x.values, x.shape)))
        let expected = Double(one.storedFloats) / Double(x.shape[0]) * Double(batch) * 1.25 * 4
        #expect(abs(Double(bytes) - expected) <= 1e-6 * expected, "\(bytes) bytes, expected \(expected)")
    }

    @Test func unsupportedNodesAreAllNamedInOneError() throws {
        do {
            _ = try ModelLocator.load(model: fixtures.appendingPathComponent("onnx/unsupported.onnx").path, on: cpu)
            Issue.record("unsupported.onnx must be refused")
        } catch let error as ModelError {
            let text = error.description
            #expect(text.contains("/1/Softplus (Softplus): op Softplus is not supported"), "\(text)")
            #expect(text.contains("/2/Resize (Resize): Resize cubic with half_pixel coordinates: only PyTorch's bilinear"), "\(text)")
        }
        #expect(throws: ModelError.self) { try ONNXImport.load(bytes: [0x08, 0x07, 0x12], name: "junk.onnx") }
    }

    @Test func onnxParsingNeverCrashes() throws {
        let original = [UInt8](try Data(contentsOf: fixtures.appendingPathComponent("onnx/resnet18.onnx")))
        var mutator = Mutator(original, seed: 31)
        var refused = 0, loaded = 0
        let count = fuzzMutations(2000)
        let input = try cpu.tensor([Float](repeating: 0.5, count: 3 * 32 * 32), [1, 3, 32, 32])
        for _ in 0..<count {
            let (bytes, what) = mutator.next()
            do {
                let (architecture, weights) = try ONNXImport.load(bytes: bytes, name: "mutated.onnx", weightsRequired: false)
                loaded += 1
                #expect(!architecture.parameters.map(\.name).contains(where: holdsControlCharacters), "\(what): a name with control characters")
                for (name, t) in weights where !t.isConsistent {
                    Issue.record("\(what): weight \(name) has shape \(t.shape) and \(t.values.count) values")
                }
                for p in architecture.parameters where weights[p.name].map({ $0.shape != p.shape }) ?? false {
                    Issue.record("\(what): parameter \(p.name) is declared \(p.shape), stored \(weights[p.name]!.shape)")
                }
                // Every 25th graph that loads runs a pass: sizes from the file (pads, strides,
                // reshape targets) meet the shape arithmetic there.
                if loaded % 25 == 0 {
                    do {
                        let model = try Model(architecture: architecture, weights: weights, on: cpu)
                        let g = Graph(backend: cpu)
                        _ = try model.forward(g, g.input(input))
                    } catch {
                        #expect(!"\(error)".isEmpty && !holdsControlCharacters("\(error)"), "\(what): \(error)")
                    }
                }
            } catch {
                refused += 1
                #expect(!"\(error)".isEmpty, "\(what)")
                #expect(!holdsControlCharacters("\(error)"), "\(what): a message with control characters")
            }
        }
        reportFuzz("resnet18.onnx", mutations: count, refused: refused)
        #expect(refused > count / 10, "only \(refused) of \(count) mutations refused")
    }
}
