import Backend
import Graph
import Synchronization

/// Folded convolutions by conv name.
private final class FoldedConvolutions: Sendable {
    let state = Mutex<[String: (weight: Tensor, bias: Tensor)]>([:])
    let derived = Mutex<[String: Tensor]>([:])
}

/// A named parameter a module expects, as it appears in torchvision's state_dict.
public struct ParameterSpec: Sendable, Equatable {
    /// The state_dict key, e.g. "features.0.0.weight".
    public let name: String
    /// The shape the loaded tensor must have.
    public let shape: Shape
    /// How to draw it for seeded random weights (`SeededWeights`).
    public let role: Role
    /// A parameter spec.
    public init(name: String, shape: Shape, role: Role) { self.name = name; self.shape = shape; self.role = role }
    /// What kind of parameter it is, which decides how seeded random weights draw it.
    public enum Role: Sendable, Equatable {
        /// Conv / linear weight: uniform in [-1, 1] / sqrt(fan_in).
        case weight(fanIn: Int)
        /// Bias: uniform in [-1, 1] / sqrt(fan_in).
        case bias(fanIn: Int)
        /// BatchNorm gamma: uniform in [0.5, 1.5].
        case bnWeight
        /// BatchNorm beta and running mean: uniform in [-0.1, 0.1].
        case bnShift
        /// BatchNorm running variance: uniform in [0.5, 1.5].
        case bnVariance
    }
}

/// Parameters on a backend, by torchvision name, and the convolutions with their batchnorm
/// folded in that fused passes use (made on first use, kept with the store: a store with other
/// tensors is a new store).
public struct ParameterStore: Sendable {
    /// Every loaded tensor by state_dict key.
    public let tensors: [String: Tensor]
    private let folded = FoldedConvolutions()
    /// A store of these tensors (already on the model's backend).
    public init(_ tensors: [String: Tensor]) { self.tensors = tensors }

    /// `conv`'s weight and bias with `norm` folded in (`foldBatchNorm`), on `backend`.
    func folded(_ conv: Conv2d, _ norm: BatchNorm2d, on backend: any Backend) throws -> (weight: Tensor, bias: Tensor) {
        if let made = folded.state.withLock({ $0[conv.name] }) { return made }
        let w = try self(join(conv.name, "weight"))
        let values = { (name: String) in try backend.values(try self(join(norm.name, name))) }
        let (weight, bias) = try foldBatchNorm(weight: try backend.values(w),
                                               bias: conv.hasBias ? try backend.values(try self(join(conv.name, "bias"))) : nil,
                                               outChannels: conv.outChannels, gamma: try values("weight"), beta: try values("bias"),
                                               mean: try values("running_mean"), variance: try values("running_var"), eps: norm.eps)
        let made = (try backend.tensor(weight, w.shape), try backend.tensor(bias, [conv.outChannels]))
        folded.state.withLock { $0[conv.name] = made }
        return made
    }

    /// The tensor named `name`; throws ``ModelError`` when it was not loaded.
    public func callAsFunction(_ name: String) throws -> Tensor {
        guard let t = tensors[name] else { throw ModelError("parameter \(name) was not loaded") }
        return t
    }

    /// A tensor made from stored ones (a transposed weight, reciprocals) under `key`: made by
    /// `make` on first use and kept with the store.
    public func derived(_ key: String, _ make: () throws -> Tensor) throws -> Tensor {
        if let made = folded.derived.withLock({ $0[key] }) { return made }
        let made = try make()
        folded.derived.withLock { $0[key] = made }
        return made
    }
}

/// A model that cannot be built or loaded: an unknown architecture, weights that do not fit it,
/// an ONNX graph with an unsupported op. The description says what and where.
public struct ModelError: Error, CustomStringConvertible, Sendable {
    /// What is wrong and where, one line.
    public let description: String
    /// An error with this description.
    public init(_ description: String) { self.description = description }
}

/// A layer or block of a network. `name` is its dotted torchvision module name ("features.3",
/// "layer4.1.conv2"); its output is tapped under that name in every forward pass.
public protocol Module: Sendable {
    /// The module's path in the model, as torchvision's state_dict keys and `loupe layers` name
    /// it ("features.3.conv.0"); its output is tapped under this name. Empty: not tapped.
    var name: String { get }
    /// The torchvision class name ("Conv2d", "InvertedResidual").
    var kind: String { get }
    /// The parameters it reads, with their names and shapes (its children's included).
    var parameters: [ParameterSpec] { get }
    /// Records the module's forward pass on `g` from input `x`, reading its parameters from `p`.
    func callAsFunction(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore) throws -> Graph.Value
}

func join(_ prefix: String, _ child: String) -> String { prefix.isEmpty ? child : prefix + "." + child }

extension Module {
    /// Runs the module and taps its output under its name.
    func tapped(_ g: Graph, _ y: Graph.Value) throws -> Graph.Value {
        name.isEmpty ? y : try g.tap(name, y, kind: kind)
    }
}
