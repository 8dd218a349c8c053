import BackendCore

/// An op whose gradient DeepLIFT replaces: its input and output over the whole pass, which holds
/// the inputs and their references as the two halves of its batch.
enum DifferenceRole {
    /// ReLU or ReLU6.
    case activation(Tensor, Tensor, Activation)
    /// Max pooling.
    case maxPool(Tensor, Tensor, Pool2DParams)
}

extension Graph {
    /// The backward pass of DeepLIFT's rescale rule (Shrikumar et al. 2017) as Captum's DeepLift
    /// computes it. The pass's input holds N inputs then their N references ([2N, ...]);
    /// `seed` is dL/d`output` for the N inputs' rows ([N, ...]), and the same for their
    /// references' (Captum seeds both halves alike). Each activation of a kind in `rescaling`
    /// passes gy (f(x) - f(x')) / (x - x') instead of its gradient, the same multiplier on both
    /// halves (its gradient where |x - x'| < 1e-10); each max pool passes Captum's rule: the
    /// output differences max(y, y') - y' and y - max(y, y') routed to each half's maximum,
    /// summed, over x - x'. Every other op takes its gradient. A convolution with its
    /// activation fused in has no input of that activation to compare: run the pass with
    /// `fusesActivations` off (or unfused).
    /// `maxPoolRule` false passes max pools their gradient (what Captum 0.9's DeepLift computes:
    /// its max-pool rule's result does not reach the gradient).
    ///
    /// Returns the inputs' half of each gradient ([N, ...]): of the pass's input, its output
    /// and the taps it keeps (those `keptLayers` names, every tap when it is nil). The inputs'
    /// rows of a gradient depend on the references' rows only through the max-pool rule, which
    /// sums both halves' routed differences: without one, the backward runs over the inputs'
    /// half alone where every op can (`Node.rowwise`; half the work), else over both.
    public func deepLift(from output: Value, seed: Tensor, rescaling: Set<Activation> = Set(Activation.allCases),
                         maxPoolRule: Bool = true) throws -> Gradients {
        guard !parameterGradients else { throw BackendError("deeplift", "DeepLIFT attributes to the pass's input: make its graph without parameter gradients") }
        let whole = shape(output)
        guard whole.rank >= 1, whole[0] % 2 == 0, seed.shape == Self.leading(whole, whole[0] / 2) else {
            throw BackendError("deeplift", "seed \(seed.shape) does not match the inputs' half of the output \(whole)")
        }
        // The ops the backward reaches.
        var reached: Set = [output.id], ops: [Node] = []
        for id in stride(from: output.id, through: 0, by: -1) where reached.contains(id) {
            guard let node = nodes[id] else { continue }
            ops.append(node)
            reached.formUnion(node.inputs)
        }
        let pooled = maxPoolRule && ops.contains { if case .maxPool? = $0.difference { true } else { false } }
        let inputsOnly = !pooled && ops.allSatisfy(\.rowwise)
        let readTaps = keptLayers.map { $0.union(stopWhenTapped).compactMap { tapID($0) } } ?? Array(tapIndex.values)
        let kept = Set(readTaps).union([output.id])
        var grads: [Int: Tensor] = [output.id: inputsOnly ? seed : try joined(seed, seed)]
        for id in stride(from: output.id, through: 0, by: -1) {
            guard let gy = grads[id], let node = nodes[id] else { continue }
            let needs = node.inputs.map { requiresGrad[$0] }
            let incoming: [Tensor?]
            switch node.difference {
            case .activation(let x, let y, let kind)? where rescaling.contains(kind):
                incoming = [try backend.deepLiftRescale(gy, input: x, output: y, kind: kind)]
            case .maxPool(let x, let y, let p)? where maxPoolRule:
                let b = backend
                let (y1, y0) = try halves(y)
                // max(y, y') = y' + relu(y - y').
                let top = try b.add(y0, try b.activation(try b.axpy(-1, y0, y1), .relu))
                let change = try joined(try b.axpy(-1, y0, top), try b.axpy(-1, top, y1))
                let routed = try b.maxPool2dBackward(try b.mul(gy, change), input: x, p)
                incoming = [try rescaled(gy, input: x, plain: try b.maxPool2dBackward(gy, input: x, p)) { _ in
                    let (r1, r0) = try halves(routed)
                    return try b.add(r1, r0)
                }]
            default:
                if node.activation != nil, node.difference == nil {
                    throw BackendError("deeplift", "an activation fused into a convolution has no input to compare; run the pass with fusesActivations off")
                }
                incoming = try node.backward(gy, .standard, needs)
            }
            for (input, g) in zip(node.inputs, incoming) {
                guard let g, requiresGrad[input] else { continue }
                grads[input] = try grads[input].map { try backend.add($0, g) } ?? g
            }
            if !kept.contains(id) { grads[id] = nil }
        }
        return Gradients(graph: self, grads: inputsOnly ? grads : try grads.mapValues { try halves($0).0 })
    }

    /// DeepLIFT's multiplier numerator(gy) / (x - x') on both halves (a max pool's: its
    /// numerator made from gy), `plain` where |x - x'| < 1e-10. An activation's goes by
    /// `AttributionOps.deepLiftRescale`, one kernel.
    private func rescaled(_ gy: Tensor, input x: Tensor, plain: Tensor, numerator: (Tensor) throws -> Tensor) throws -> Tensor {
        let b = backend
        let (x1, x0) = try halves(x)
        let delta = try b.axpy(-1, x0, x1)
        // 1 where |x - x'| > 1e-10, else 0.
        let ones = try self.ones(delta.shape)
        let size = try b.pointwise(delta, .absPower(1))
        let keep = try b.activationBackward(ones, input: try b.pointwise(size, .offset(-1e-10)), .relu, rule: .standard)
        let drop = try b.axpy(-1, keep, ones)
        // 1 / (x - x'), with 1 added where the difference is too small to divide by.
        let inverse = try b.pointwise(try b.add(delta, drop), .stabilizedReciprocal(0))
        let ratio = try b.mul(try b.mul(try numerator(gy), inverse), keep)
        return try b.add(try joined(ratio, ratio), try b.mul(plain, try joined(drop, drop)))
    }

    /// Ones of `shape`, uploaded once per pass.
    private func ones(_ shape: Shape) throws -> Tensor {
        if let made = onesByShape[shape] { return made }
        let made = try backend.tensor([Float](repeating: 1, count: shape.count), shape)
        onesByShape[shape] = made
        return made
    }

    /// The first and second half of a batch [2N, ...]: [N, ...] each.
    private func halves(_ t: Tensor) throws -> (Tensor, Tensor) {
        let s = t.shape
        guard s.rank >= 1, s[0] % 2 == 0 else { throw BackendError("deeplift", "a pass of inputs and references has an even batch, not \(s)") }
        let half = s.count / 2
        let parts = try backend.split(Tensor(shape: [1, 2 * half, 1, 1], storage: t.storage), sizes: [half, half])
        let shape = Shape([s[0] / 2] + Array(s.dims.dropFirst()))
        return (Tensor(shape: shape, storage: parts[0].storage), Tensor(shape: shape, storage: parts[1].storage))
    }

    /// Two halves [N, ...] as one batch [2N, ...].
    private func joined(_ a: Tensor, _ c: Tensor) throws -> Tensor {
        let whole = try backend.concat([Tensor(shape: [1, a.shape.count, 1, 1], storage: a.storage),
                                        Tensor(shape: [1, c.shape.count, 1, 1], storage: c.storage)])
        return Tensor(shape: Shape([2 * a.shape[0]] + Array(a.shape.dims.dropFirst())), storage: whole.storage)
    }
}
