import Backend
import Graph
import Testing
import TestSupport

let cpu = CPUBackend()

/// A small network that uses every graph op: conv, batchnorm, relu6, max pool, depthwise conv,
/// residual add, concat, avg pool, adaptive pool, flatten, linear, mul, scale, log-softmax, sum.
struct TinyNet {
    let shapes: [Shape] = [[6, 3, 3, 3], [6], [6, 1, 3, 3], [4, 6, 1, 1], [5, 40], [5]]
    let params: [[Float]]
    let bn: [[Float]]

    init(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        params = shapes.map { rng.floats($0.count, -0.5, 0.5) }
        bn = [rng.floats(6, 0.5, 1.5), rng.floats(6), rng.floats(6), rng.floats(6, 0.5, 1.5)]
    }

    /// Returns the graph, input, parameter values and the scalar output.
    func run(_ backend: any Backend, input: [Float], inputShape: Shape, parameters: [[Float]]? = nil,
             parameterGradients: Bool = false, into graph: Graph? = nil) throws -> (Graph, Graph.Value, [Graph.Value], Graph.Value) {
        let g = graph ?? Graph(backend: backend, parameterGradients: parameterGradients)
        let x = g.input(try backend.tensor(input, inputShape))
        let p = try zip(parameters ?? params, shapes).map { g.parameter(try backend.tensor($0, $1)) }
        let bnp = BatchNormParams(gamma: try backend.tensor(bn[0], [6]), beta: try backend.tensor(bn[1], [6]),
                                  mean: try backend.tensor(bn[2], [6]), variance: try backend.tensor(bn[3], [6]))
        var h = try g.conv2d(x, weight: p[0], bias: p[1], Conv2DParams(padding: 1))
        try g.tap("conv", h, kind: "Conv2d")
        h = try g.activation(try g.batchNorm2d(h, bnp), .relu6)
        try g.tap("act", h, kind: "ReLU6")
        h = try g.maxPool2d(h, Pool2DParams(kernel: 2))
        let dw = try g.activation(try g.conv2d(h, weight: p[2], bias: nil, Conv2DParams(padding: 1, groups: 6)), .relu)
        h = try g.tap("block", try g.add(h, dw), kind: "Block")
        let a = try g.conv2d(h, weight: p[3], bias: nil, Conv2DParams())
        let pooled = try g.avgPool2d(try g.concat([h, a]), Pool2DParams(kernel: 3, stride: 1, padding: 1))
        let f = try g.flatten(try g.adaptiveAvgPool2d(pooled, outputSize: (2, 2)))
        let logits = try g.linear(f, weight: p[4], bias: p[5])
        try g.tap("logits", logits, kind: "Linear")
        let out = try g.reduce(try g.scale(try g.mul(try g.logSoftmax(logits), logits), 0.5), .sum, axis: 0)
        return (g, x, p, out)
    }
}

@Suite(.timed) struct GraphTests {
    let shape: Shape = [2, 3, 7, 7]

    /// DeepLIFT's backward over its pass's inputs' half (`Node.rowwise`): TinyNet's ops up to its
    /// logits and past them, and sigmoid, channel slices, resizing and expand, given the gradient
    /// of the first rows alone (the activations passing their gradient, max pools without
    /// DeepLIFT's rule), give the first rows of the whole batch's gradient.
    @Test func backwardOverTheFirstRowsGivesTheirPartOfTheWholeBatchs() throws {
        var rng = SeededRandom(seed: 4)
        let batch: Shape = [4, 3, 7, 7]
        let x = rng.floats(batch.count)
        let (g, input, _, _) = try TinyNet(seed: 3).run(cpu, input: x, inputShape: batch)
        let logits = try #require(g.tapped("logits"))
        let scores = try g.scale(try g.mul(try g.logSoftmax(logits), logits), 0.5)
        let part = try g.sliceChannels(try #require(g.tapped("block")), from: 1, count: 3)
        let spread = try g.expand(try g.adaptiveAvgPool2d(try g.pointwise(try g.resize(part, height: 5, width: 4, mode: .bilinear), .sigmoid),
                                                          outputSize: (1, 1)), height: 2, width: 3)
        for output in [scores, try g.flatten(spread)] {
            let width = g.shape(output)[1]
            let seed = rng.floats(4 * width)
            let whole = try cpu.values(try #require(g.backward(from: output, seed: try cpu.tensor(seed, [4, width])).of(input)))
            let first = try cpu.values(try #require(g.deepLift(from: output, seed: try cpu.tensor(Array(seed.prefix(2 * width)), [2, width]),
                                                               rescaling: [], maxPoolRule: false).of(input)))
            #expect(first.count == whole.count / 2)
            let scale = whole.reduce(0) { Swift.max($0, abs($1)) }
            #expect(zip(first, whole).allSatisfy { abs($0 - $1) <= 1e-5 * scale }, "\(width)")
        }
    }

    @Test func inputAndParameterGradientsMatchFiniteDifferences() throws {
        let net = TinyNet(seed: 1)
        var rng = SeededRandom(seed: 2)
        let x = rng.awayFromZero(shape.count, 0.05, 1)
        let problems = try finiteDifferenceMismatches(inputs: [x] + net.params, eps: 1e-3, samples: 8, tolerance: 3e-2) { v in
            let (g, _, _, out) = try net.run(cpu, input: v[0], inputShape: shape, parameters: Array(v.dropFirst()))
            return try cpu.values(g.tensor(out))
        } backward: { v, r in
            let (g, xv, p, out) = try net.run(cpu, input: v[0], inputShape: shape, parameters: Array(v.dropFirst()), parameterGradients: true)
            let grads = try g.backward(from: out, seed: cpu.tensor(r, [1]))
            return try ([xv] + p).map { try grads.of($0).map { try cpu.values($0) } }
        }
        #expect(problems.isEmpty, "\(problems.prefix(5))")
    }

    @Test func deviceGradientsMatchReference() throws {
        guard let gpu = TestDevice.backend(fail: { Issue.record(Comment(rawValue: $0)) }) else { return }
        let net = TinyNet(seed: 3)
        var rng = SeededRandom(seed: 4)
        let x = rng.floats(shape.count)
        for rule in GradientRule.allCases {
            var results: [[[Float]]] = []
            for backend in [cpu, gpu] as [any Backend] {
                let (g, xv, p, out) = try net.run(backend, input: x, inputShape: shape, parameterGradients: true)
                let grads = try g.backward(from: out, rule: rule)
                results.append(try [g.tensor(out), grads.of(xv)!, grads.tapped("act")!, grads.tapped("block")!]
                    .map { try backend.values($0) } + p.map { try backend.values(grads.of($0)!) })
            }
            for (i, (a, e)) in zip(results[1], results[0]).enumerated() {
                #expect(normalizedError(a, e) < 1e-4, "\(rule) result \(i): \(normalizedError(a, e))")
            }
        }
    }

    @Test func tapsHoldActivationsAndTheirGradients() throws {
        let net = TinyNet(seed: 5)
        var rng = SeededRandom(seed: 6)
        let (g, x, p, out) = try net.run(cpu, input: rng.floats(shape.count), inputShape: shape)
        #expect(g.tapNames == ["conv", "act", "block", "logits"])
        #expect(g.shape(g.tapped("act")!) == [2, 6, 7, 7])
        #expect(g.tapped("nope") == nil)
        let grads = try g.backward(from: out)
        // Chain rule through the tap: seeding the backward pass at "block" with its gradient
        // gives the same input gradient as the full pass.
        let fromTap = try g.backward(from: g.tapped("block")!, seed: grads.tapped("block")!)
        #expect(try cpu.values(fromTap.of(x)!) == cpu.values(grads.of(x)!))
        // Parameters get no gradient unless asked.
        #expect(grads.of(p[0]) == nil)
    }

    /// A pass that names the layers it reads keeps only their gradients (and the input's), not
    /// one per tap: an imported graph taps every node, and ViT-H's would hold gigabytes.
    @Test func backwardKeepsOnlyTheGradientsAPassReads() throws {
        let net = TinyNet(seed: 5)
        var rng = SeededRandom(seed: 6)
        let input = rng.floats(shape.count)
        let (all, xAll, _, outAll) = try net.run(cpu, input: input, inputShape: shape)
        let every = try all.backward(from: outAll)
        #expect(["conv", "act", "block", "logits"].allSatisfy { every.tapped($0) != nil })
        let g = Graph(backend: cpu)
        g.keptLayers = ["block"]
        let (_, x, _, out) = try net.run(cpu, input: input, inputShape: shape, into: g)
        let some = try g.backward(from: out)
        #expect(some.tapped("conv") == nil && some.tapped("act") == nil && some.tapped("logits") == nil)
        #expect(try cpu.values(some.tapped("block")!) == cpu.values(every.tapped("block")!))
        #expect(try cpu.values(some.of(x)!) == cpu.values(every.of(xAll)!))
        #expect(some.of(out) != nil)
    }

    @Test func guidedAndDeconvnetRulesApplyForOnePass() throws {
        let g = Graph(backend: cpu)
        let x = g.input(try cpu.tensor([-1, 2, 3, 7], [4]))
        let y = try g.activation(try g.activation(x, .relu), .relu6)
        let seed = try cpu.tensor([1, -1, 2, 5], [4])
        #expect(try cpu.values(g.backward(from: y, seed: seed).of(x)!) == [0, -1, 2, 0])
        #expect(try cpu.values(g.backward(from: y, seed: seed, rule: .guided).of(x)!) == [0, 0, 2, 0])
        #expect(try cpu.values(g.backward(from: y, seed: seed, rule: .deconvnet).of(x)!) == [1, 0, 2, 5])
        // On one kind only: the other passes the true gradient.
        #expect(try cpu.values(g.backward(from: y, seed: seed, rule: .deconvnet, ruleActivations: [.relu]).of(x)!) == [0, 0, 2, 0])
        #expect(try cpu.values(g.backward(from: y, seed: seed, rule: .deconvnet, ruleActivations: [.relu6]).of(x)!) == [0, 0, 2, 5])
        #expect(try cpu.values(g.backward(from: y, seed: seed, rule: .guided, ruleActivations: []).of(x)!) == [0, -1, 2, 0])
        // The override does not stick.
        #expect(try cpu.values(g.backward(from: y, seed: seed).of(x)!) == [0, -1, 2, 0])
        #expect(throws: BackendError.self) { try g.backward(from: y, seed: cpu.tensor([1], [1])) }
    }

    @Test func backwardStoppingAtALayerGivesItsWholeGradientAndNoMore() throws {
        let net = TinyNet(seed: 5)
        var rng = SeededRandom(seed: 6)
        let x = rng.floats(shape.count, -1, 1)
        let (full, fx, _, fout) = try net.run(cpu, input: x, inputShape: shape)
        let (cut, cx, _, cout) = try net.run(cpu, input: x, inputShape: shape)
        let all = try full.backward(from: fout)
        // "block" feeds both the 1x1 conv and the concat: both paths must have reached it.
        let partial = try cut.backward(from: cout, stoppingAt: [cut.tapped("block")!])
        let expected = try cpu.values(all.tapped("block")!), got = try cpu.values(partial.tapped("block")!)
        #expect(expected.contains { $0 != 0 })
        #expect(got == expected)
        #expect(try cpu.values(partial.tapped("logits")!) == cpu.values(all.tapped("logits")!))
        #expect(all.of(fx) != nil)
        #expect(partial.of(cx) == nil)
        #expect(partial.tapped("act") == nil)
    }

    /// A patch replaces a layer's output for the rest of the pass: the output computed from a
    /// new leaf at "block" equals the pass whose input leads there, the leaf gets the layer's
    /// whole gradient, and a replacement of another shape is refused.
    @Test func patchReplacesALayersOutputForTheRestOfThePass() throws {
        let net = TinyNet(seed: 5)
        var rng = SeededRandom(seed: 6)
        let x = rng.floats(shape.count, -1, 1), other = rng.floats(shape.count, -1, 1)
        let (reference, _, _, referenceOut) = try net.run(cpu, input: other, inputShape: shape)
        let block = try cpu.values(reference.tensor(reference.tapped("block")!))
        let blockGradient = try cpu.values(try reference.backward(from: referenceOut).tapped("block")!)
        let g = Graph(backend: cpu)
        let leaf = g.input(try cpu.tensor(block, reference.shape(reference.tapped("block")!)))
        g.patches["block"] = { _, _ in leaf }
        let (_, _, _, out) = try net.run(cpu, input: x, inputShape: shape, into: g)
        #expect(try cpu.values(g.tensor(out)) == cpu.values(reference.tensor(referenceOut)))
        #expect(try cpu.values(try g.backward(from: out).of(leaf)!) == blockGradient)
        let wrong = Graph(backend: cpu)
        let small = wrong.input(try cpu.tensor([1], [1]))
        wrong.patches["block"] = { _, _ in small }
        #expect(throws: BackendError.self) { try net.run(cpu, input: x, inputShape: shape, into: wrong) }
    }

    /// The residual op (a block's last convolution, the shortcut's sum, the activation) gives the
    /// gradients of conv -> add -> activation under every rule: to the input alone, to the input
    /// and the shortcut (its pass-through beside the fast path), to the shortcut alone (the
    /// general rule), on the CPU reference and the device; and by finite differences.
    @Test func residualConvolutionMatchesItsParts() throws {
        var rng = SeededRandom(seed: 21)
        let xShape: Shape = [2, 16, 6, 7], wShape: Shape = [16, 16, 3, 3]
        let (xv, wv, bv, rv) = (rng.floats(xShape.count), rng.floats(wShape.count, -0.3, 0.3), rng.floats(16), rng.floats(xShape.count))
        let seed = rng.floats(xShape.count)
        func run(_ b: any Backend, fused: Bool, act: Activation?, rule: GradientRule, inputs: (x: Bool, r: Bool),
                 values: [[Float]]? = nil) throws -> [[Float]?] {
            let v = values ?? [xv, rv]
            let g = Graph(backend: b)
            let (x, r) = (inputs.x ? g.input(try b.tensor(v[0], xShape)) : g.constant(try b.tensor(v[0], xShape)),
                          inputs.r ? g.input(try b.tensor(v[1], xShape)) : g.constant(try b.tensor(v[1], xShape)))
            // The shortcut through an op of its own, so that its gradient comes through a rule too.
            let shortcut = try g.scale(r, 1.5)
            let (w, bias) = (g.parameter(try b.tensor(wv, wShape)), g.parameter(try b.tensor(bv, [16])))
            let p = Conv2DParams(padding: 1)
            let y = fused ? try g.conv2d(x, weight: w, bias: bias, p, activation: act, residual: shortcut)
                : try act.map { try g.activation(try g.add(try g.conv2d(x, weight: w, bias: bias, p), shortcut), $0) }
                    ?? g.add(try g.conv2d(x, weight: w, bias: bias, p), shortcut)
            let grads = try g.backward(from: y, seed: try b.tensor(seed, xShape), rule: rule)
            return [try b.values(g.tensor(y))] + (try [x, r].map { try grads.of($0).map { try b.values($0) } })
        }
        let gpu = TestDevice.backend(fail: { Issue.record(Comment(rawValue: $0)) })
        for b in [cpu] + (gpu.map { [$0] } ?? []) as [any Backend] {
            for act in [nil] + Activation.allCases as [Activation?] {
                for rule in GradientRule.allCases {
                    for inputs in [(true, false), (true, true), (false, true)] {
                        let (want, got) = (try run(cpu, fused: false, act: act, rule: rule, inputs: inputs),
                                           try run(b, fused: true, act: act, rule: rule, inputs: inputs))
                        for (i, (e, a)) in zip(want, got).enumerated() {
                            #expect((e == nil) == (a == nil), "\(b.name) \(String(describing: act)) \(rule) \(inputs) result \(i): a gradient missing or extra")
                            if let e, let a {
                                #expect(normalizedError(a, e) < 1e-5, "\(b.name) \(String(describing: act)) \(rule) \(inputs) result \(i): \(normalizedError(a, e))")
                            }
                        }
                    }
                }
            }
        }
        let problems = try finiteDifferenceMismatches(inputs: [xv, rv], eps: 1e-3, samples: 10, tolerance: 3e-2) { v in
            try run(cpu, fused: true, act: .relu, rule: .standard, inputs: (true, true), values: v)[0]!
        } backward: { v, r in
            let g = Graph(backend: cpu)
            let (x, res) = (g.input(try cpu.tensor(v[0], xShape)), g.input(try cpu.tensor(v[1], xShape)))
            let y = try g.conv2d(x, weight: g.parameter(try cpu.tensor(wv, wShape)), bias: g.parameter(try cpu.tensor(bv, [16])),
                                 Conv2DParams(padding: 1), activation: .relu, residual: try g.scale(res, 1.5))
            let grads = try g.backward(from: y, seed: try cpu.tensor(r, xShape))
            return [try cpu.values(grads.of(x)!), try cpu.values(grads.of(res)!)]
        }
        #expect(problems.isEmpty, "\(problems.prefix(5))")
    }
}

/// The ops of imported transformer-style graphs through the graph: a ConvNeXt-like block
/// (permute to channels-last, layer norm with gamma and beta, a bias along the last axis, GELU,
/// a scale along channels, permute back), its input and parameter gradients by finite
/// differences on the CPU reference, and the device against the reference.
@Suite(.timed) struct TransformerOpsTests {
    let shape: Shape = [2, 4, 3, 5]
    func block(_ g: Graph, _ x: Graph.Value, _ p: [Graph.Value], _ b: any Backend) throws -> Graph.Value {
        var h = try g.permute(x, [0, 2, 3, 1])
        h = try g.layerNorm(h, gamma: p[0], beta: p[1], eps: 1e-6)
        h = try g.axisAffine(h, axis: 3, scale: nil, shift: g.tensor(p[2]))
        h = try g.pointwise(h, .gelu)
        h = try g.permute(h, [0, 3, 1, 2])
        h = try g.axisAffine(h, axis: 1, scale: g.tensor(p[3]), shift: nil)
        return try g.add(h, try g.pointwise(try g.pointwise(x, .offset(0.5)), .tanh))
    }

    @Test func blockGradientsMatchFiniteDifferencesAndTheDevice() throws {
        var rng = SeededRandom(seed: 12)
        let x = rng.floats(shape.count, -2, 2)
        let params = [rng.floats(4, 0.5, 1.5), rng.floats(4), rng.floats(4), rng.floats(4, -2, 2)]
        func run(_ b: any Backend, _ v: [[Float]]) throws -> (Graph, Graph.Value, [Graph.Value], Graph.Value) {
            let g = Graph(backend: b, parameterGradients: true)
            let input = g.input(try b.tensor(v[0], shape))
            let p = try v.dropFirst().map { g.parameter(try b.tensor($0, [4])) }
            return (g, input, p, try block(g, input, p, b))
        }
        let problems = try finiteDifferenceMismatches(inputs: [x] + params, eps: 1e-3, samples: 10, tolerance: 3e-2) { v in
            let (g, _, _, y) = try run(cpu, v)
            return try cpu.values(g.tensor(y))
        } backward: { v, r in
            let (g, input, p, y) = try run(cpu, v)
            let grads = try g.backward(from: y, seed: try cpu.tensor(r, shape))
            // The bias and scale along an axis are constants (axisAffine): no gradient.
            return [try cpu.values(grads.of(input)!), try cpu.values(grads.of(p[0])!), try cpu.values(grads.of(p[1])!), nil, nil]
        }
        #expect(problems.isEmpty, "\(problems.prefix(5))")
        guard let gpu = TestDevice.backend(fail: { Issue.record(Comment(rawValue: $0)) }) else { return }
        var results: [[[Float]]] = []
        let seed = rng.floats(shape.count)
        for b in [cpu, gpu] as [any Backend] {
            let (g, input, p, y) = try run(b, [x] + params)
            let grads = try g.backward(from: y, seed: try b.tensor(seed, shape))
            results.append(try [g.tensor(y), grads.of(input)!, grads.of(p[0])!, grads.of(p[1])!].map { try b.values($0) })
        }
        for (i, (a, e)) in zip(results[1], results[0]).enumerated() {
            #expect(normalizedError(a, e) < 1e-4, "result \(i): \(normalizedError(a, e))")
        }
    }
}
