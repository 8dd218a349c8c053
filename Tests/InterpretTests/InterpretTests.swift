import Backend
import Foundation
import Graph
import Interpret
import Models
import Synchronization
import Testing
import TestSupport
import WeightFiles

let cpu = CPUBackend()
let fixtureURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/saliency.safetensors")
let fixtures = try! SafeTensorsFile(url: fixtureURL)

/// ||a - e|| / ||e||; infinity when the counts differ.
func relativeL2(_ a: [Float], _ e: [Float]) -> Float {
    guard a.count == e.count else { return .infinity }
    let d = zip(a, e).reduce(Float(0)) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
    return (d / Swift.max(e.reduce(Float(0)) { $0 + $1 * $1 }, 1e-30)).squareRoot()
}

func backends() -> [any Backend] {
    [cpu] + (TestDevice.backend(fail: { Issue.record(Comment(rawValue: $0)) }).map { [$0] } ?? [])
}

struct Case {
    let arch: String
    let settings: [String: Any]
    /// The fixture file the case reads (the saliency fixtures by default).
    let file: SafeTensorsFile
    var target: Int { settings["target"] as! Int }
    var layer: String { settings["layer"] as! String }
    init(_ arch: String, in file: SafeTensorsFile = fixtures) {
        self.arch = arch
        self.file = file
        settings = try! JSONSerialization.jsonObject(with: Data(file.metadata[arch]!.utf8)) as! [String: Any]
    }
    func model(on b: any Backend) throws -> Model {
        let a = try Architectures.make(arch)
        return Model(architecture: a, parameters: try SeededWeights.parameters(for: a, seed: UInt64(settings["seed"] as! Int), on: b), backend: b)
    }
    func input(on b: any Backend) throws -> Tensor {
        let x = try file.tensor("\(arch).input")
        return try b.tensor(x.values, Shape([1] + x.shape.dims))
    }
    func expected(_ name: String) throws -> [Float] { try file.tensor("\(arch).\(name)").values }
}

/// Captum and pytorch-grad-cam on random-weight ResNet18, VGG16 and MobileNetV2 (64x64, VGG16 32x32):
/// every method matches on both backends.
@Suite(.timed) struct AttributionTests {
    static let archs = ["resnet18", "vgg16", "mobilenet_v2"]

    @Test(arguments: archs)
    func gradientMethodsMatchCaptum(_ arch: String) throws {
        let c = Case(arch)
        for b in backends() {
            let model = try c.model(on: b), x = try c.input(on: b)
            let methods: [(any AttributionMethod, String)] = [
                (VanillaGradient(), "saliency"), (GradientTimesInput(), "input_x_gradient"),
                (GuidedBackprop(), "guided_backprop"), (Deconvnet(), "deconvnet"),
                (GuidedGradCAM(layer: c.layer), "guided_gradcam"),
            ]
            for (method, key) in methods {
                let result = try method.attribute(model, input: x, targets: [c.target])
                let want = try c.expected(key)
                let error = normalizedError(result.raw!, want)
                #expect(error < 1e-3, "\(b.name) \(arch) \(key): \(error), relative L2 \(relativeL2(result.raw!, want))")
                // The map is the largest |attribution| over channels.
                let plane = result.height * result.width
                let expectedMap = (0..<plane).map { j in (0..<3).map { abs(want[$0 * plane + j]) }.max()! }
                #expect(normalizedError(result.map, expectedMap) < 1e-3, "\(b.name) \(arch) \(key) map")
            }
        }
    }

    /// The rules on one activation kind (Captum's hooks on nn.ReLU only), through the fused
    /// conv + activation paths: on MobileNetV2 (ReLU6 only) guided backprop and deconvnet on ReLU
    /// are the plain gradient; on ResNet18 (ReLU only) the same on ReLU6, and on ReLU they are
    /// the methods on every kind; the device as the reference.
    @Test func rulesOnOneActivationKind() throws {
        for b in backends() {
            for (arch, plainOn, fullOn) in [("mobilenet_v2", Activation.relu, Activation.relu6), ("resnet18", .relu6, .relu)] {
                let c = Case(arch)
                let model = try c.model(on: b), x = try c.input(on: b)
                let gradient = try VanillaGradient().attribute(model, input: x, targets: [c.target]).raw!
                let methods: [(Set<Activation>) -> any AttributionMethod] = [
                    { GuidedBackprop(activations: $0) }, { Deconvnet(activations: $0) },
                ]
                for make in methods {
                    let plain = try make([plainOn]).attribute(model, input: x, targets: [c.target])
                    #expect(normalizedError(plain.raw!, gradient) < 1e-5, "\(b.name) \(arch) \(plain.method) on \(plainOn)")
                    let full = try make([fullOn]).attribute(model, input: x, targets: [c.target]).raw!
                    let every = try make(Set(Activation.allCases)).attribute(model, input: x, targets: [c.target]).raw!
                    #expect(normalizedError(full, every) < 1e-5, "\(b.name) \(arch) \(plain.method) on \(fullOn)")
                    #expect(normalizedError(full, gradient) > 1e-2, "\(b.name) \(arch) \(plain.method): the rule changed nothing")
                }
            }
        }
    }

    /// Integrated Gradients from one baseline image per image of the batch gives what each image
    /// gives alone from its own; a baseline of the wrong size is refused.
    @Test func integratedGradientsTakeABaselinePerImage() throws {
        let c = Case("resnet18")
        let model = try c.model(on: cpu), x = try cpu.values(c.input(on: cpu))
        let plane = x.count, (h, w) = (Int(Double(plane / 3).squareRoot()), Int(Double(plane / 3).squareRoot()))
        let bases = [x.map { $0 * 0.3 }, x.map { -$0 * 0.5 }]
        let batch = try cpu.tensor(x + x.map { $0 * 0.8 }, [2, 3, h, w])
        let both = try IntegratedGradients(steps: 6, baseline: .image(bases[0] + bases[1])).attribute(model, input: batch, targets: [c.target, 3])
        for i in 0..<2 {
            let image = try cpu.tensor(i == 0 ? x : x.map { $0 * 0.8 }, [1, 3, h, w])
            let one = try IntegratedGradients(steps: 6, baseline: .image(bases[i])).attribute(model, input: image, targets: [[c.target, 3][i]])
            #expect(normalizedError(Array(both.raw![(i * plane)..<((i + 1) * plane)]), one.raw!) < 1e-6)
            #expect(abs(both.completenessError![i] - one.completenessError![0]) <= 1e-4 * max(1, abs(one.completenessError![0])))
        }
        #expect(throws: InterpretError.self) { try IntegratedGradients(steps: 2, baseline: .image(Array(bases[0].dropLast()))).attribute(model, input: batch, targets: [1, 2]) }
    }

    /// One pass's scores: the logits of the model, their softmax, classes ranked by probability.
    @Test func classScoresRankThePass() throws {
        let c = Case("resnet18")
        for b in backends() {
            let model = try c.model(on: b), x = try c.input(on: b)
            let two = try b.tensor(try b.values(x) + b.values(x).map { -$0 }, [2, 3, x.shape[2], x.shape[3]])
            let scores = try ClassScores(model, input: two)
            #expect(scores.count == 2 && scores.classes == 1000, "\(b.name)")
            let g = Graph(backend: b)
            let logits = try b.values(g.tensor(model.forward(g, g.input(two))))
            #expect(normalizedError(scores.logits, logits) < 1e-5, "\(b.name)")
            for i in 0..<2 {
                let row = Array(logits[(i * 1000)..<((i + 1) * 1000)])
                let top = row.max()!, total = row.reduce(Float(0)) { $0 + exp($1 - top) }
                #expect(normalizedError(Array(scores.probabilities[(i * 1000)..<((i + 1) * 1000)]), row.map { exp($0 - top) / total }) < 1e-5)
                let ranked = scores.ranked(i, top: 5)
                #expect(ranked[0] == row.indices.max { row[$0] < row[$1] }! && scores.topClasses[i] == ranked[0])
                #expect(zip(ranked, ranked.dropFirst()).allSatisfy { scores.probability(i, $0) >= scores.probability(i, $1) })
            }
        }
    }

    @Test(arguments: archs)
    func camMethodsMatchPytorchGradCam(_ arch: String) throws {
        let c = Case(arch)
        for b in backends() {
            let model = try c.model(on: b), x = try c.input(on: b)
            // EigenCAM and AblationCAM have their own fixtures and tests (EigenCAMTests, AblationAndFullGradTests).
            for kind in CAM.Kind.allCases where kind != .eigenCAM && kind != .ablationCAM {
                let key = kind == .gradCAMPlusPlus ? "gradcampp" : kind.rawValue
                let layer = kind == .scoreCAM ? c.settings["scorecam_layer"] as! String : c.layer
                let result = try CAM(kind, layer: layer).attribute(model, input: x, targets: [c.target])
                let want = try c.expected(key)
                let worst = maxAbsDifference(result.map, want)
                #expect(worst < 2e-3, "\(b.name) \(arch) \(key): max abs error \(worst)")
            }
        }
    }

    /// Seeded SmoothGrad draws its noise on the backend from a counter-based stream: the same map
    /// at any batch size and on the device as on the CPU reference.
    @Test func seededSmoothGradIsTheSameAtAnyBatchAndOnEveryBackend() throws {
        let c = Case("resnet18")
        var reference: [Float]?
        for b in backends() {
            let model = try c.model(on: b), x = try c.input(on: b)
            let one = try SmoothGrad(samples: 3, batch: 1, seed: 5).attribute(model, input: x, targets: [c.target]).raw!
            let three = try SmoothGrad(samples: 3, batch: 3, seed: 5).attribute(model, input: x, targets: [c.target]).raw!
            #expect(relativeL2(one, three) < 1e-4, "\(b.name): batch 1 vs 3, L2 \(relativeL2(one, three))")
            let other = try SmoothGrad(samples: 3, batch: 3, seed: 6).attribute(model, input: x, targets: [c.target]).raw!
            #expect(relativeL2(other, three) > 1e-2, "\(b.name): another seed, another map")
            if let reference {
                #expect(relativeL2(three, reference) < 5e-3, "\(b.name) vs the CPU reference: L2 \(relativeL2(three, reference))")
            } else {
                reference = three
            }
        }
    }

    @Test(arguments: archs)
    func smoothGradIntegratedGradientsAndOcclusionMatchCaptum(_ arch: String) throws {
        let c = Case(arch)
        let noise = try fixtures.tensor("\(arch).smoothgrad_noise")
        for b in backends() {
            let model = try c.model(on: b), x = try c.input(on: b)
            // Captum NoiseTunnel's three types on its own noise: within 1e-4 (relative L2;
            // measured 1e-6 to 7e-6). MobileNetV2's narrow ReLU6 layers leave no draw without an
            // input within float32 rounding of a kink (the fixture script's margin is 1.8e-6), and
            // on the CPU reference one noisy copy meets one: measured 2.7e-3 for the mean, and a
            // square doubles a relative error (5.7e-3), a difference of squares more (8.8e-3).
            for (statistic, loose) in zip(SmoothGrad.Statistic.allCases, [Float(5e-3), 1e-2, 2e-2]) {
                let sg = try SmoothGrad(statistic, samples: 4, batch: 3, noise: [noise.values]).attribute(model, input: x, targets: [c.target])
                let sgWant = try c.expected(statistic.rawValue)
                let bound = arch == "mobilenet_v2" ? loose : 1e-4
                #expect(relativeL2(sg.raw!, sgWant) < bound,
                        "\(b.name) \(arch) \(statistic.rawValue) \(normalizedError(sg.raw!, sgWant)) L2 \(relativeL2(sg.raw!, sgWant)) (bound \(bound))")
            }
            let ig = try IntegratedGradients(steps: 8, baseline: .zero, batch: 3).attribute(model, input: x, targets: [c.target])
            let igWant = try c.expected("integrated_gradients")
            #expect(relativeL2(ig.raw!, igWant) < 5e-3, "\(b.name) \(arch) integrated gradients \(normalizedError(ig.raw!, igWant)) L2 \(relativeL2(ig.raw!, igWant))")
            let delta = Float(c.settings["ig_delta"] as! Double)
            #expect(abs(ig.completenessError![0] - delta) < 1e-2 * Swift.max(1, abs(delta)), "\(b.name) \(arch) completeness \(ig.completenessError![0]) vs \(delta)")
            let occ = try Occlusion(window: c.settings["occlusion_window"] as! Int, stride: c.settings["occlusion_stride"] as! Int, batch: 7)
                .attribute(model, input: x, targets: [c.target])
            #expect(normalizedError(occ.raw!, try c.expected("occlusion")) < 1e-3, "\(b.name) \(arch) occlusion")
        }
    }

    /// The batched loops report their progress (the `loupe` binary draws it on stderr): every
    /// report within 1...total, and each loop reaches its total.
    @Test func longLoopsReportTheirProgress() throws {
        let c = Case("mobilenet_v2")
        let reports = Mutex<[(String, Int, Int)]>([])
        let b = backends().last!
        let model = try c.model(on: b), x = try c.input(on: b)
        // The task's own handler: the suite runs tests side by side, and another test's sanity
        // check mutes its own loops (the process's handler would hear theirs and miss ours).
        try Progress.observing({ what, done, total in reports.withLock { $0.append((what, done, total)) } }) {
            _ = try Occlusion(window: 16, stride: 16, batch: 4).attribute(model, input: x, targets: [c.target])
            _ = try IntegratedGradients(steps: 5, baseline: .zero, batch: 2).attribute(model, input: x, targets: [c.target])
            _ = try SmoothGrad(samples: 3, batch: 2, seed: 1).attribute(model, input: x, targets: [c.target])
        }
        let seen = reports.withLock { $0 }
        for name in ["occlusion", "integrated_gradients", "smoothgrad"] {
            let mine = seen.filter { $0.0 == name }
            #expect(mine.contains { $0.1 == $0.2 } && mine.allSatisfy { $0.1 >= 1 && $0.1 <= $0.2 }, "\(name): \(mine)")
        }
    }

    /// A handler set with `observing` and `muting` hold for their own task only: a loop muted on
    /// another thread does not silence this one, and a muted loop is not heard by any handler.
    @Test func progressHandlersAndMutingStayInTheirTask() throws {
        let c = Case("mobilenet_v2")
        let model = try c.model(on: cpu), x = try c.input(on: cpu)
        let heard = Mutex<[String]>([])
        let hear: Interpret.Progress.Handler = { what, _, _ in heard.withLock { $0.append(what) } }
        let entered = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let muter = Thread { Progress.muting { entered.signal(); release.wait() } }
        muter.start()
        entered.wait()
        try Progress.observing(hear) {
            _ = try IntegratedGradients(steps: 2, baseline: .zero, batch: 2).attribute(model, input: x, targets: [c.target])
        }
        release.signal()
        try Progress.observing(hear) {
            try Progress.muting {
                _ = try IntegratedGradients(steps: 2, baseline: .zero, batch: 2).attribute(model, input: x, targets: [c.target])
            }
        }
        #expect(heard.withLock { $0 } == ["integrated_gradients"])
    }

    @Test func gaussLegendreIntegratesPolynomialsExactly() {
        for n in [1, 2, 5, 8, 50] {
            let (x, w) = gaussLegendre(n)
            #expect(abs(w.reduce(0, +) - 1) < 1e-5)
            // Exact for degree 2n - 1: integral of t^(2n-1) over [0, 1] is 1 / (2n).
            let degree = Swift.min(2 * n - 1, 9)
            let integral = zip(x, w).reduce(Float(0)) { $0 + $1.1 * pow($1.0, Float(degree)) }
            #expect(abs(integral - 1 / Float(degree + 1)) < 1e-4, "n \(n)")
        }
    }

    @Test func badLayersAndTargetsAreClearErrors() throws {
        let c = Case("resnet18")
        let model = try c.model(on: cpu), x = try c.input(on: cpu)
        do { _ = try CAM(.gradCAM, layer: "fc").attribute(model, input: x, targets: [c.target]); Issue.record("no error") } catch {
            #expect("\(error)".contains("4-D") && "\(error)".contains("layer4"), "\(error)")
        }
        do { _ = try CAM(.gradCAM, layer: "layer9").attribute(model, input: x, targets: [c.target]); Issue.record("no error") } catch {
            #expect("\(error)".contains("nearest"), "\(error)")
        }
        #expect(throws: InterpretError.self) { try VanillaGradient().attribute(model, input: x, targets: [1000]) }
        #expect(throws: InterpretError.self) { try VanillaGradient().attribute(model, input: x, targets: [1, 2]) }
    }
}

/// torchvision's MobileNetV2 on the bundled photo (torchvision's preprocessing): the gradient
/// and Grad-CAM maps match Captum's and pytorch-grad-cam's, and Grad-CAM's maximum is on the cat.
@Suite(.timed) struct RealModelSaliencyTests {
    @Test func chelseaMapsMatchPyTorch() throws {
        guard realWeightsPresent(fail: { Issue.record(Comment(rawValue: $0)) }),
              let gpu = TestDevice.backend(fail: { Issue.record(Comment(rawValue: $0)) }) else { return }
        let dir = fixtureURL.deletingLastPathComponent()
        let input = try SafeTensorsFile(url: dir.appendingPathComponent("../../ModelsTests/Fixtures/chelsea_input.safetensors").standardized).tensor("input")
        let expected = try SafeTensorsFile(url: dir.appendingPathComponent("real_chelsea.safetensors"))
        for b in [gpu, cpu] as [any Backend] {
            let model = try ModelLocator.load(on: b)
            let x = try b.tensor(input.values, Shape([1] + input.shape.dims))
            let gradient = try VanillaGradient().attribute(model, input: x, targets: [285])
            #expect(relativeL2(gradient.map, try expected.tensor("gradient_map").values) < 1e-2, "\(b.name) gradient map")
            let cam = try CAM(.gradCAM, layer: "features.18").attribute(model, input: x, targets: [285])
            let want = try expected.tensor("gradcam").values
            #expect(maxAbsDifference(cam.map, want) < 1e-3, "\(b.name) Grad-CAM")
            // The photo is a close-up: the cat's face fills the middle; the maximum must be there, not at a border.
            let at = cam.map.indices.max { cam.map[$0] < cam.map[$1] }!
            let (y, xx) = (at / 224, at % 224)
            #expect((40..<184).contains(y) && (40..<184).contains(xx), "Grad-CAM maximum at (\(xx), \(y))")
        }
    }
}

@Suite(.timed) struct CausalMetricTests {
    /// Deletion and insertion curves of ResNet18's gradient map, against the same algorithm in
    /// PyTorch (tools/make_saliency_fixtures.py), on both backends.
    @Test func deletionAndInsertionCurvesMatchPyTorch() throws {
        let c = Case("resnet18")
        let raw = try c.expected("saliency")
        let plane = raw.count / 3
        let map = (0..<plane).map { j in (0..<3).map { abs(raw[$0 * plane + j]) }.max()! }
        for b in backends() {
            let model = try c.model(on: b), x = try c.input(on: b)
            for mode in CausalMetric.Mode.allCases {
                let (curve, auc) = try CausalMetric(mode, step: 256, batch: 5).evaluate(model, image: x, target: c.target, map: map[...])
                let want = try c.expected(mode.rawValue)
                #expect(curve.count == want.count, "\(b.name) \(mode)")
                #expect(maxAbsDifference(curve, want) < 1e-4, "\(b.name) \(mode)")
                let wantAUC = (want.reduce(0, +) - want.first! / 2 - want.last! / 2) / Float(want.count - 1)
                #expect(abs(auc - wantAUC) < 1e-4, "\(b.name) \(mode) AUC")
            }
        }
    }
}

/// Grad-CAM on a vision transformer (a reduced torchvision ViT exported by torch.onnx.export,
/// tools/make_onnx_fixtures.py): the default layer is the last block's first layer norm, its
/// tokens laid out on their grid without the class token, as pytorch-grad-cam's ViT example
/// reads them; the map against pytorch-grad-cam's on both backends. Attention rollout likewise.
@Suite(.timed) struct TransformerCAMTests {
    @Test func vitGradCAMMatchesPytorchGradCam() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ModelsTests/Fixtures/onnx")
        let reference = try SafeTensorsFile(url: folder.appendingPathComponent("default_exports.safetensors"))
        let (architecture, _) = try ModelLocator.onnx(folder.appendingPathComponent("vit_default.onnx").path, weightsRequired: false)
        #expect(architecture.lastConvLayer == "encoder.layers.encoder_layer_1.ln_1")
        let x = try reference.tensor("vit.input"), logits = try reference.tensor("vit.logits").values
        let target = logits.indices.max { logits[$0] < logits[$1] }!
        for b in backends() {
            let model = Model(architecture: architecture, parameters: try SeededWeights.parameters(for: architecture, seed: 20261126, on: b), backend: b)
            let result = try CAM(.gradCAM, layer: architecture.lastConvLayer).attribute(model, input: try b.tensor(x.values, x.shape), targets: [target])
            let want = try reference.tensor("vit.gradcam").values
            let worst = maxAbsDifference(result.map, want)
            #expect(result.map.count == want.count && worst < 2e-3, "\(b.name) ViT Grad-CAM: max abs error \(worst)")
            // Attention rollout against the same product computed in PyTorch from each block's
            // input projection (tools/make_onnx_fixtures.py's attention_rollout).
            let rollout = try AttentionRollout().attribute(model, input: try b.tensor(x.values, x.shape), targets: [target])
            let expected = try reference.tensor("vit.rollout").values
            let rolloutError = maxAbsDifference(rollout.map, expected)
            #expect(rollout.map.count == expected.count && rolloutError < 1e-4, "\(b.name) ViT attention rollout: max abs error \(rolloutError)")
        }
    }

    /// Grad-CAM on timm's Swin (reduced, both exporters) at the last block's norm2, whose tokens
    /// [N, 16, 32] have no class token: laid out on their 4x4 grid, against pytorch-grad-cam with
    /// its README's reshape_transform for Swin, on both backends.
    @Test(arguments: ["torchscript", "dynamo"])
    func swinGradCAMMatchesPytorchGradCam(_ exporter: String) throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ModelsTests/Fixtures/onnx")
        let reference = try SafeTensorsFile(url: folder.appendingPathComponent("timm_swin.safetensors"))
        let x = try reference.tensor("input"), want = try reference.tensor("gradcam").values
        let target = try #require(Int(reference.metadata["target"] ?? ""))
        for b in backends() {
            let model = try ModelLocator.load(model: folder.appendingPathComponent("timm_swin_\(exporter).onnx").path, on: b)
            let result = try CAM(.gradCAM, layer: "layers.1.blocks.1.norm2").attribute(model, input: try b.tensor(x.values, x.shape), targets: [target])
            let worst = maxAbsDifference(result.map, want)
            #expect(result.map.count == want.count && worst < 2e-3, "\(b.name) \(exporter) Swin Grad-CAM: max abs error \(worst)")
        }
    }

    /// Attention rollout on a network without attention: one clear error.
    @Test func attentionRolloutRefusesACNN() throws {
        let c = Case("resnet18")
        #expect(throws: InterpretError.self) { try AttentionRollout().attribute(try c.model(on: cpu), input: try c.input(on: cpu), targets: [c.target]) }
    }
}
