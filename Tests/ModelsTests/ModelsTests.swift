import Backend
import Foundation
import Graph
import Models
import Testing
import TestSupport
import WeightFiles

let cpu = CPUBackend()
let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

func openCL() -> OpenCLBackend? { TestDevice.backend { Issue.record(Comment(rawValue: $0)) } }

@Suite(.timed) struct ArchitectureTests {
    @Test(arguments: Architectures.names)
    func parameterNamesAndShapesAreTorchvisions(_ name: String) throws {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("state_dict_keys.json"))
        let all = try #require(try JSONSerialization.jsonObject(with: data) as? [String: [[Any]]])
        let expected = try #require(all[name]).compactMap { pair -> (String, [Int])? in
            let key = pair[0] as! String
            return key.hasSuffix("num_batches_tracked") ? nil : (key, pair[1] as! [Int])
        }
        let ours = try Architectures.make(name).parameters
        #expect(ours.map(\.name) == expected.map(\.0), "names differ")
        #expect(ours.map(\.shape.dims) == expected.map(\.1), "shapes differ")
    }

    /// Seeded weights (drawn identically by tools/make_model_fixtures.py) at a small input size:
    /// logits and the input gradient of each sample's top-1 logit match PyTorch on both backends,
    /// layer by layer and in a fused pass (batchnorm folded, ReLU in the conv's store).
    @Test(arguments: ["alexnet", "vgg16", "resnet18", "resnet50", "mobilenet_v2", "googlenet"])
    func logitsAndInputGradientsMatchPyTorch(_ name: String) throws {
        let file = try SafeTensorsFile(url: fixtures.appendingPathComponent("models.safetensors"))
        let input = try file.tensor("\(name).input"), logits = try file.tensor("\(name).logits")
        let grad = try file.tensor("\(name).input_grad")
        let settings = try JSONSerialization.jsonObject(with: Data(file.metadata[name]!.utf8)) as! [String: Any]
        let seed = UInt64(settings["seed"] as! Int), targets = settings["target"] as! [Int]
        let arch = try Architectures.make(name)
        let backends: [any Backend] = [cpu] + (openCL().map { [$0] } ?? [])
        for backend in backends {
            let model = Model(architecture: arch, parameters: try SeededWeights.parameters(for: arch, seed: seed, on: backend), backend: backend)
            for kept in [nil, Set<String>()] {
                let g = Graph(backend: backend)
                g.keptLayers = kept
                let what = "\(backend.name) \(name)\(kept == nil ? "" : " fused")"
                let x = g.input(try backend.tensor(input.values, input.shape))
                let y = try model.forward(g, x)
                #expect(g.shape(y) == logits.shape, "\(what)")
                let got = try backend.values(g.tensor(y))
                #expect(normalizedError(got, logits.values) < 1e-4, "\(what) logits: \(normalizedError(got, logits.values))")
                var seedValues = [Float](repeating: 0, count: logits.shape.count)
                for (n, t) in targets.enumerated() { seedValues[n * logits.shape[1] + t] = 1 }
                let grads = try g.backward(from: y, seed: backend.tensor(seedValues, logits.shape))
                let gx = try backend.values(try #require(grads.of(x)))
                #expect(normalizedError(gx, grad.values) < 1e-3, "\(what) input gradient: \(normalizedError(gx, grad.values))")
            }
            // A pass no backward follows (classification): its faster forms (Winograd F(4x4)
            // on CPU devices, residual sums in the store) keep the logits; a backward refuses.
            let g = Graph(backend: backend)
            g.keptLayers = []
            g.forwardOnly = true
            let y = try model.forward(g, g.input(try backend.tensor(input.values, input.shape)))
            let got = try backend.values(g.tensor(y))
            #expect(normalizedError(got, logits.values) < 1e-4, "\(backend.name) \(name) forward only: \(normalizedError(got, logits.values))")
            #expect(throws: BackendError.self) { try g.backward(from: y) }
        }
    }

    /// A fused pass: the same logits and input gradients as the layer-by-layer pass under every
    /// gradient rule (guided backprop and deconvnet included), the kept layers tapped with the
    /// same values, the fused-away ones not tapped at all. The batchnorms here are identities
    /// (var + eps == 1 exactly), so folding changes no bit and the two passes must agree to
    /// rounding: with real statistics a pre-activation within rounding of zero may flip its
    /// ReLU mask between the passes (seen: one of 18,432 in layer1.0.bn1, 4% of the input
    /// gradient). The folding math itself is checked against PyTorch above and in DenseTests.
    @Test(arguments: ["resnet18", "mobilenet_v2", "googlenet", "vgg11"])
    func fusedPassesMatchLayerByLayerPasses(_ name: String) throws {
        let arch = try Architectures.make(name)
        let kept: [String: [String]] = ["resnet18": ["layer1.0.conv1", "layer2.1.bn2", "relu"], "mobilenet_v2": ["features.2.conv.0.1", "features.0.2"],
                                        "googlenet": ["inception3a.branch2.1.conv"], "vgg11": ["features.3"]]
        let fusedAway: [String: String] = ["resnet18": "layer1.0.conv2", "mobilenet_v2": "features.2.conv.1.0",
                                           "googlenet": "conv1.conv", "vgg11": "features.0"]
        // With residual blocks fused too: the last convolution, the sum and the activation as one op.
        let residualAway: [String: String] = ["resnet18": "layer1.0.bn2", "mobilenet_v2": "features.3.conv"]
        var rng = SeededRandom(seed: 4)
        let shape: Shape = [2, 3, 48, 48]
        let values = rng.floats(shape.count)
        for backend in [cpu] + (openCL().map { [$0] } ?? []) as [any Backend] {
            let seeded = try SeededWeights.parameters(for: arch, seed: 3, on: backend)
            var tensors = seeded.tensors
            for spec in arch.parameters {
                var value: Float
                switch spec.role {
                case .bnWeight: value = 1
                case .bnShift: value = 0
                case .bnVariance:
                    let eps: Float = name == "googlenet" ? 1e-3 : 1e-5
                    value = 1 - eps
                    while value + eps > 1 { value = value.nextDown }
                    while value + eps < 1 { value = value.nextUp }
                default: continue
                }
                tensors[spec.name] = try backend.tensor([Float](repeating: value, count: spec.shape.count), spec.shape)
            }
            let model = Model(architecture: arch, parameters: ParameterStore(tensors), backend: backend)
            for rule in GradientRule.allCases {
                var results: [[[Float]]] = []
                for (fused, residuals) in [(false, false), (true, false), (true, true)] {
                    let g = Graph(backend: backend)
                    g.keptLayers = fused ? Set(kept[name]!) : nil
                    g.fusesResiduals = residuals
                    let x = g.input(try backend.tensor(values, shape))
                    let y = try model.forward(g, x)
                    let gx = try #require(try g.backward(from: y, rule: rule).of(x))
                    results.append([try backend.values(g.tensor(y)), try backend.values(gx)]
                                   + (try kept[name]!.map { try backend.values(g.tensor(try #require(g.tapped($0), "no tap \($0)"))) }))
                    if fused { #expect(g.tapped(fusedAway[name]!) == nil, "\(name): \(fusedAway[name]!) was not fused") }
                    if let away = residualAway[name] {
                        #expect((g.tapped(away) == nil) == residuals, "\(name): \(away) fused \(!residuals), or not \(residuals)")
                    }
                }
                for variant in results.dropFirst() {
                    for (i, (a, b)) in zip(results[0], variant).enumerated() {
                        #expect(normalizedError(b, a) < 1e-6, "\(backend.name) \(name) \(rule) result \(i): \(normalizedError(b, a))")
                    }
                }
            }
        }
    }

    /// `name` with seeded weights on the CPU reference, a random 64x64 input and a whole pass of it.
    private func wholePass(_ name: String, inputSeed: UInt64) throws -> (model: Model, input: Tensor, pass: Graph) {
        let arch = try Architectures.make(name)
        let model = Model(architecture: arch, parameters: try SeededWeights.parameters(for: arch, seed: 2, on: cpu), backend: cpu)
        var random = SeededRandom(seed: inputSeed)
        let input = try cpu.tensor((0..<(3 * 64 * 64)).map { _ in Float.random(in: -1...1, using: &random) }, [1, 3, 64, 64])
        let whole = Graph(backend: cpu)
        _ = try model.forward(whole, whole.input(input))
        return (model, input, whole)
    }

    /// A pass that stops at any one layer (feature inversion, visualization of a layer's
    /// channels) computes that layer exactly as the whole pass does, also inside a residual
    /// block (its shortcut runs after the stop) and inside one branch of an inception block.
    /// Before, a stop at resnet18's layer2.0.conv1 threw "add: shapes differ".
    @Test(arguments: ["resnet18", "googlenet", "mobilenet_v2"])
    func aPassStoppedAtAnyLayerComputesIt(_ name: String) throws {
        let (model, input, whole) = try wholePass(name, inputSeed: 5)
        let names = whole.tapNames
        #expect(names.count > 40)
        let inner = ["layer2.0.conv1", "layer3.0.downsample.0", "layer4.1.bn2", "inception3a.branch1.conv", "inception4b.branch2.1.bn",
                     "inception5a.branch3.0", "features.1.conv.0.0", "features.4.conv.1", "features.14.conv.2"]
        for (i, layer) in names.enumerated() where i % 25 == 0 || inner.contains(layer) {
            let g = Graph(backend: cpu)
            g.stopWhenTapped = [layer]
            _ = try model.forward(g, g.input(input))
            let expected = try cpu.values(whole.tensor(whole.tapped(layer)!))
            let got = try cpu.values(g.tensor(try #require(g.tapped(layer), "\(name): \(layer) not tapped")))
            #expect(got == expected, "\(name): \(layer) differs when the pass stops there")
        }
    }

    /// A pass resumed at a layer from a pass already made (`Graph.resumption`: AblationCAM's
    /// ablated passes) gives the whole pass's logits bit for bit, with the same patch on that
    /// layer, also inside a residual block and an inception branch; it records less than the
    /// whole pass wherever the layer lies past the network's first quarter.
    @Test(arguments: ["resnet18", "googlenet", "mobilenet_v2"])
    func aPassResumedAtAnyLayerGivesTheWholePassOutput(_ name: String) throws {
        let (model, input, first) = try wholePass(name, inputSeed: 6)
        let names = first.tapNames
        let inner = ["layer2.0.conv1", "layer3.0.downsample.0", "layer4.1.bn2", "layer4", "inception3a.branch1.conv",
                     "inception4b.branch2.1.bn", "inception5a.branch3.0", "features.1.conv.0.0", "features.4.conv.1",
                     "features.14.conv.2", "features.18", "features.7.conv"]
        let layers = names.enumerated().filter { $0.offset % 25 == 0 || inner.contains($0.element) }
        #expect(layers.count >= 5)
        for (i, layer) in layers {
            let whole = Graph(backend: cpu), resumed = Graph(backend: cpu)
            for g in [whole, resumed] { g.patches[layer] = { g, v in try g.scale(v, 2) } }
            resumed.resumption = Graph.Resumption(layer: layer) { first.tapped($0).map(first.tensor) }
            let expected = try cpu.values(whole.tensor(try model.forward(whole, whole.input(input))))
            let got = try cpu.values(resumed.tensor(try model.forward(resumed, resumed.input(input))))
            #expect(got == expected, "\(name): resumed at \(layer), the output differs")
            #expect(resumed.tapped(layer) != nil && !resumed.resuming, "\(name): \(layer) never reached")
            if i > names.count / 4 {
                #expect(resumed.storedFloats < whole.storedFloats / 2, "\(name): resumed at \(layer), \(resumed.storedFloats) floats of \(whole.storedFloats)")
            }
        }
    }

    /// A pass differentiated from a layer (`Graph.differentiatedFrom`, as Grad-CAM's) runs the
    /// convolutions before it in their forward-only forms (Winograd F(4x4) on the
    /// register-blocked family) and the rest as a gradient pass: the layer's activations and
    /// gradient stay within 1e-5 of a plain pass's. A backward that does not stop at the layer
    /// is refused.
    @Test func aPassDifferentiatedFromALayerIsForwardOnlyBelowIt() throws {
        guard let device = openCL() else { return }
        let arch = try Architectures.make("resnet18")
        let model = Model(architecture: arch, parameters: try SeededWeights.parameters(for: arch, seed: 2, on: device), backend: device)
        var random = SeededRandom(seed: 7)
        let input = try device.tensor((0..<(2 * 3 * 64 * 64)).map { _ in Float.random(in: -1...1, using: &random) }, [2, 3, 64, 64])
        var results: [[Float]] = []
        for from in [[], ["layer4"]] as [Set<String>] {
            let g = Graph(backend: device)
            g.keptLayers = ["layer4"]
            g.fusesResiduals = true
            g.differentiatedFrom = from
            let y = try model.forward(g, g.input(input))
            let layer = try #require(g.tapped("layer4"))
            let gradient = try #require(try g.backward(from: y, stoppingAt: [layer]).of(layer))
            results.append(try device.values(g.tensor(layer)) + device.values(gradient))
            if !from.isEmpty {
                #expect(throws: BackendError.self) { try g.backward(from: y) }
                #expect(throws: BackendError.self) { try g.backward(from: y, stoppingAt: [try #require(g.tapped("layer3"))]) }
            }
        }
        #expect(normalizedError(results[1], results[0]) < 1e-5, "\(normalizedError(results[1], results[0]))")
        let differ = results[1] != results[0]
        if device.family == .registerBlocked { #expect(differ, "no convolution took a forward-only form") }
    }

    @Test func everyModuleIsTappedByItsTorchvisionName() throws {
        let arch = try Architectures.make("mobilenet_v2")
        let model = Model(architecture: arch, parameters: try SeededWeights.parameters(for: arch, seed: 1, on: cpu), backend: cpu)
        let g = Graph(backend: cpu)
        _ = try model.forward(g, g.input(try cpu.tensor([Float](repeating: 0.1, count: 3 * 32 * 32), [1, 3, 32, 32])))
        for name in ["features.0", "features.0.2", "features.1.conv.0.0", "features.17", "features.18", "classifier.1", arch.lastConvLayer] {
            #expect(g.tapped(name) != nil, "no tap \(name)")
        }
        #expect(g.shape(g.tapped("features.18")!) == [1, 1280, 1, 1])
        #expect(g.tapKinds["features.3"] == "InvertedResidual")
        #expect(throws: ModelError.self) { try Architectures.make("lenet") }
    }
}

@Suite(.timed) struct CheckpointTests {
    /// torch.save in both formats, and safetensors.torch.save_file (int64 num_batches_tracked).
    @Test(arguments: ["tiny_zip.pth", "tiny_legacy.pth", "tiny.safetensors"])
    func torchSaveFilesLoad(_ file: String) throws {
        let loaded = try loadWeights(url: fixtures.appendingPathComponent(file))
        let expected = try SafeTensorsFile(url: fixtures.appendingPathComponent("tiny_expected.safetensors")).tensors
        #expect(Set(loaded.keys) == Set(expected.keys))
        for (name, e) in expected {
            #expect(loaded[name] == e, "\(file) \(name)")
        }
    }

    @Test func aPickleAskingForAnyOtherGlobalIsRefusedWithoutRunningIt() throws {
        let marker = FileManager.default.currentDirectoryPath + "/loupe-pwned-marker"  // where the payload would write
        try? FileManager.default.removeItem(atPath: marker)
        do {
            _ = try loadWeights(url: fixtures.appendingPathComponent("malicious.pth"))
            Issue.record("malicious pickle loaded")
        } catch {
            #expect("\(error)".contains("os.system") || "\(error)".contains("posix.system"), "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    /// A stride whose last element's offset overflows 64 bits (tools/make_crafted_fixtures.py)
    /// is refused with one line naming the tensor, not a trap.
    @Test func aStrideThatOverflowsIsRefused() throws {
        #expect { _ = try loadWeights(url: fixtures.appendingPathComponent("crafted_stride.pth")) } throws: { error in
            "\(error)".contains("tensor w: size [2, 2, 3, 1] with stride [4611686018427387904, 4611686018427387904, 3, 1]")
        }
    }

    @Test(arguments: ["tiny_zip.pth", "tiny_legacy.pth"])
    func truncatedOrCorruptCheckpointsThrow(_ file: String) throws {
        let good = [UInt8](try Data(contentsOf: fixtures.appendingPathComponent(file)))
        var rng = SeededRandom(seed: 9)
        for cut in stride(from: 0, to: good.count, by: Swift.max(1, good.count / 97)) {
            #expect(throws: (any Error).self, "\(file) cut at \(cut)") { try TorchCheckpoint.load(bytes: Array(good[..<cut])) }
        }
        for _ in 0..<300 {
            var bad = good
            for _ in 0..<4 { bad[Int.random(in: 0..<bad.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            _ = try? TorchCheckpoint.load(bytes: bad)  // loads or throws; must not trap
        }
    }

    @Test func wrongKeysAreListedInOneError() throws {
        let arch = try Architectures.make("resnet18")
        var weights: [String: HostTensor] = [:]
        for spec in arch.parameters { weights[spec.name] = HostTensor(shape: spec.shape, values: [Float](repeating: 0, count: spec.shape.count)) }
        weights["fc.weight"] = nil
        weights["layer1.0.conv1.weight"] = HostTensor(shape: [1], values: [0])
        weights["extra.thing"] = HostTensor(shape: [1], values: [0])
        do {
            _ = try Model(architecture: arch, weights: weights, on: cpu)
            Issue.record("bad weights accepted")
        } catch {
            let text = "\(error)"
            #expect(text.contains("missing (1): fc.weight") && text.contains("unexpected (1): extra.thing")
                    && text.contains("layer1.0.conv1.weight is [1], expected [64, 64, 3, 3]"), "\(text)")
        }
    }
}

/// The real MobileNetV2 (torchvision's mobilenet_v2-b0353104.pth, fetched by `make models`)
/// on torchvision's preprocessing of Assets/chelsea.png: the logits PyTorch gives, on both backends.
@Suite(.timed) struct RealMobileNetV2Tests {
    static func weights() -> URL? {
        let url = ModelLocator.checkpointDirectory.appendingPathComponent("mobilenet_v2-b0353104.pth")
        if FileManager.default.fileExists(atPath: url.path) { return url }
        let message = "real MobileNetV2 test skipped: \(url.path) is absent (run `make models`)"
        if ProcessInfo.processInfo.environment["LOUPE_REQUIRE_MODELS"] == "1" { Issue.record(Comment(rawValue: message)) }
        else { FileHandle.standardError.write(Data((message + "\n").utf8)) }
        return nil
    }

    @Test func classifiesChelseaAsPyTorchDoes() throws {
        guard Self.weights() != nil else { return }
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: fixtures.appendingPathComponent("chelsea.json"))) as! [String: Any]
        let logits = (expected["logits"] as! [Double]).map(Float.init)
        let input = try SafeTensorsFile(url: fixtures.appendingPathComponent("chelsea_input.safetensors")).tensor("input")
        let backends: [any Backend] = [cpu] + (openCL().map { [$0] } ?? [])
        for backend in backends {
            let model = try ModelLocator.load(on: backend)
            let g = Graph(backend: backend)
            let y = try model.forward(g, g.input(try backend.tensor(input.values, Shape([1] + input.shape.dims))))
            let got = try backend.values(g.tensor(y))
            #expect(normalizedError(got, logits) < 1e-4, "\(backend.name): \(normalizedError(got, logits))")
            let probs = try backend.values(backend.softmax(g.tensor(y)))
            let top = probs.indices.max { probs[$0] < probs[$1] }!
            #expect(top == 285, "\(backend.name)")
            let want = ((expected["top"] as! [[String: Any]])[0]["probability"] as! Double)
            #expect(abs(Double(probs[285]) - want) < 1e-3, "\(backend.name)")
            // Classification's pass (fused, forward only): on CPU devices the 112- and 56-wide
            // blocks' expand and depthwise layers run as one launch (expand_depthwise).
            let fused = Graph(backend: backend)
            fused.keptLayers = []
            fused.forwardOnly = true
            let z = try model.forward(fused, fused.input(try backend.tensor(input.values, Shape([1] + input.shape.dims))))
            let forwardOnly = try backend.values(fused.tensor(z))
            #expect(normalizedError(forwardOnly, logits) < 1e-4, "\(backend.name) forward only: \(normalizedError(forwardOnly, logits))")
        }
    }
}


@Suite(.timed) struct SHA256Tests {
    /// FIPS 180-4's examples, and files whose length crosses the padding and piece boundaries.
    @Test func digestsMatchTheStandardsVectors() throws {
        #expect(SHA256.hex([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex([UInt8](repeating: 0x61, count: 1_000_000)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-sha-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        for count in [0, 55, 56, 63, 64, 65, (1 << 20) - 1, (1 << 20) + 3] {
            let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
            let file = folder.appendingPathComponent("\(count)")
            try Data(bytes).write(to: file)
            #expect(try SHA256.hex(fileAt: file) == SHA256.hex(bytes), "\(count) bytes")
        }
        #expect(throws: WeightFileError.self) { try SHA256.hex(fileAt: folder.appendingPathComponent("missing")) }
        // torchvision's MobileNetV2 file: the digest `make models` checks with sha256sum.
        if let weights = RealMobileNetV2Tests.weights() {
            #expect(try SHA256.hex(fileAt: weights) == "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889")
        }
    }
}

@Suite(.timed) struct ClassLookupTests {
    @Test func namesSynonymsAndWordsFindClasses() {
        func match(_ q: String) -> ClassLookup.Match { ClassLookup.match(q, names: imageNetClasses, synonyms: imageNetSynonyms) }
        #expect(match("Egyptian cat") == .found(285) && match("egyptian CAT") == .found(285))
        #expect(match("tabby cat") == .found(281) && match("Granny Smith") == .found(948) && match("granny") == .found(948))
        guard case .ambiguous(let cats) = match("cat") else { Issue.record("cat should be ambiguous"); return }
        #expect(Set([281, 282, 283, 284, 285]).isSubset(of: Set(cats)))
        #expect(ClassLookup.match("Crane", names: ["crane", "dog", "crane"]) == .ambiguous([0, 2]))  // two classes of one name
        if case .none(let near) = match("tabbby") { #expect(near.first == "tabby") } else { Issue.record("tabbby should match nothing") }
        #expect(ClassLookup.match("dog", names: ["cat", "dog"]) == .found(1) && ClassLookup.match("bird", names: ["cat", "dog"]) != .found(0))
    }
}
