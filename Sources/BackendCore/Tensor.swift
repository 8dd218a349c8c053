/// The dimensions of a float32 tensor, outermost first (NCHW for images).
public struct Shape: Hashable, Sendable, CustomStringConvertible, ExpressibleByArrayLiteral {
    /// The sizes, outermost first.
    public var dims: [Int]

    /// A shape of these dimensions, outermost first.
    public init(_ dims: [Int]) { self.dims = dims }
    /// A shape written as a literal: `[1, 3, 224, 224]`.
    public init(arrayLiteral dims: Int...) { self.dims = dims }

    /// Number of dimensions.
    public var rank: Int { dims.count }
    /// Number of elements.
    public var count: Int { dims.reduce(1, *) }
    /// Number of elements, or nil when a dimension is negative or the product overflows: what a
    /// shape computed from a file's numbers must pass before it is used.
    public var checkedCount: Int? {
        var n = 1
        for d in dims {
            guard d >= 0 else { return nil }
            let (p, over) = n.multipliedReportingOverflow(by: d)
            guard !over else { return nil }
            n = p
        }
        return n
    }
    /// Dimension i, outermost first.
    public subscript(i: Int) -> Int { dims[i] }
    /// "[d0, d1, ...]".
    public var description: String { "[" + dims.map(String.init).joined(separator: ", ") + "]" }

    /// N, C, H, W of a rank-4 shape.
    public var nchw: (n: Int, c: Int, h: Int, w: Int)? {
        rank == 4 ? (dims[0], dims[1], dims[2], dims[3]) : nil
    }
}

/// Storage owned by one backend. A tensor made by one backend is refused by another.
public protocol TensorStorage: AnyObject, Sendable {}

/// A float32 tensor: a shape and the backend storage that holds its values. Immutable: ops
/// return new tensors.
public struct Tensor: Sendable {
    /// Its dimensions.
    public let shape: Shape
    /// Its values, held by the backend that made them.
    public let storage: any TensorStorage

    /// A tensor of `shape` over `storage` (which must hold shape.count values; backends make these).
    public init(shape: Shape, storage: any TensorStorage) {
        self.shape = shape
        self.storage = storage
    }
}

/// Errors of the Backend layer: bad shapes or parameters, named with the op.
public struct BackendError: Error, CustomStringConvertible, Sendable {
    /// The op that refused its input (`conv2d`, `linear backward input`).
    public let op: String
    /// What was wrong, with the shapes or values involved.
    public let message: String
    /// An error of `op`, saying what was wrong.
    public init(_ op: String, _ message: String) { self.op = op; self.message = message }
    /// "op: message".
    public var description: String { "\(op): \(message)" }
}
