import Backend
import Testing
import TestSupport

struct ActivationCase: Sendable, CustomTestStringConvertible {
    let kind: Activation
    let rule: GradientRule
    let shape: Shape
    var testDescription: String { "\(kind) \(rule) \(shape)" }
}

let activationCases: [ActivationCase] = Activation.allCases.flatMap { kind in
    GradientRule.allCases.flatMap { rule in
        [Shape([1, 3, 7, 7]), Shape([3, 5, 1, 1]), Shape([2, 13])].map { ActivationCase(kind: kind, rule: rule, shape: $0) }
    }
}

/// Values spread over [-8, 8] that stay 0.05 away from both kinks (0 and 6).
func awayFromKinks(_ count: Int, seed: UInt64) -> [Float] {
    var rng = SeededRandom(seed: seed)
    return rng.floats(count, -8, 8).map { v in
        var v = v
        if abs(v) < 0.05 { v = v < 0 ? -0.05 : 0.05 }
        if abs(v - 6) < 0.05 { v = v < 6 ? 5.95 : 6.05 }
        return v
    }
}

@Suite(.timed) struct ActivationTests {
    @Test(arguments: activationCases)
    func deviceMatchesReference(_ c: ActivationCase) throws {
        var rng = SeededRandom(seed: 3)
        let x = awayFromKinks(c.shape.count, seed: 2), g = rng.floats(c.shape.count)
        try expectDeviceMatchesReference("\(c.testDescription)", inputs: [(x, c.shape), (g, c.shape)]) { b, t in
            [try b.activation(t[0], c.kind), try b.activationBackward(t[1], input: t[0], c.kind, rule: c.rule)]
        }
    }

    @Test(arguments: Activation.allCases)
    func standardBackwardMatchesFiniteDifferences(_ kind: Activation) throws {
        let shape: Shape = [2, 3, 5, 5]
        try expectFiniteDifferences("\(kind)", inputs: [awayFromKinks(shape.count, seed: 4)]) { v in
            try cpu.values(cpu.activation(cpu.tensor(v[0], shape), kind))
        } backward: { v, r in
            [try cpu.values(cpu.activationBackward(cpu.tensor(r, shape), input: cpu.tensor(v[0], shape), kind, rule: .standard))]
        }
    }

    @Test func interpretabilityRulesFollowTheirDefinitions() throws {
        // x: below 0, inside, above 6; g: negative and positive for each.
        let x: [Float] = [-1, -1, 2, 2, 7, 7], g: [Float] = [-3, 3, -3, 3, -3, 3]
        let shape: Shape = [6]
        let expected: [(Activation, GradientRule, [Float])] = [
            (.relu, .standard, [0, 0, -3, 3, -3, 3]), (.relu, .guided, [0, 0, 0, 3, 0, 3]), (.relu, .deconvnet, [0, 3, 0, 3, 0, 3]),
            (.relu6, .standard, [0, 0, -3, 3, 0, 0]), (.relu6, .guided, [0, 0, 0, 3, 0, 0]), (.relu6, .deconvnet, [0, 3, 0, 3, 0, 3]),
        ]
        let backends: [any Backend] = [cpu] + (openCL().map { [$0] } ?? [])
        for b in backends {
            for (kind, rule, want) in expected {
                let got = try b.values(b.activationBackward(b.tensor(g, shape), input: b.tensor(x, shape), kind, rule: rule))
                #expect(got == want, "\(b.name) \(kind) \(rule)")
            }
        }
    }
}
