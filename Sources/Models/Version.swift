/// Loupe's version: the one place it is written (the CLI, the C interface and the Python
/// wheel read it from here).
public enum LoupeVersion {
    /// The release number.
    public static let number = "0.12.1"
}
