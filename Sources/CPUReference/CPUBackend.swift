import BackendCore
/// Host memory of the CPU reference backend.
public final class CPUStorage: TensorStorage {
    /// The tensor's values, row-major.
    public let values: [Float]
    init(_ values: [Float]) { self.values = values }
}

/// The reference backend: every op as plain loops over host arrays, written to be obviously
/// right, not fast. Device results are checked against it.
public final class CPUBackend: Backend {
    /// "cpu".
    public let name = "cpu"
    /// The reference backend; it holds no state.
    public init() {}

    public func tensor(_ values: [Float], _ shape: Shape) throws -> Tensor {
        guard values.count == shape.count else {
            throw BackendError("tensor", "\(values.count) values for shape \(shape)")
        }
        return Tensor(shape: shape, storage: CPUStorage(values))
    }

    public func values(_ tensor: Tensor) throws -> [Float] { try host(tensor, "values") }

    func host(_ t: Tensor, _ op: String) throws -> [Float] {
        guard let s = t.storage as? CPUStorage else {
            throw BackendError(op, "tensor \(t.shape) belongs to another backend, not \(name)")
        }
        return s.values
    }

    func make(_ values: [Float], _ shape: Shape) -> Tensor { Tensor(shape: shape, storage: CPUStorage(values)) }
}
