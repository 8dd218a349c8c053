/// A workflow refused its input: the message names the flag or setting and what was wrong, as
/// the command line shows it.
public struct WorkflowError: Error, CustomStringConvertible, Sendable {
    /// The message.
    public let description: String
    /// An error with `description` as its message.
    public init(_ description: String) { self.description = description }
}
