/// A weight file that cannot be read: missing, truncated, corrupt, or holding something the
/// readers refuse (a pickle global other than a tensor rebuild, a compressed zip entry). The
/// description names the file and what is wrong with it.
public struct WeightFileError: Error, CustomStringConvertible, Sendable {
    /// The file and what is wrong with it, one line.
    public let description: String
    /// An error with this description.
    public init(_ description: String) { self.description = description }
}
