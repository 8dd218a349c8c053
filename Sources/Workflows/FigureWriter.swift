import Figures
import Foundation

/// The formats a run writes its labelled figures in (`--figure-format`).
public struct FigureWriter: Sendable {
    /// The formats, at least one.
    public let formats: [FigureFormat]
    /// Whether figures name the device and times in their subtitles and captions
    /// (`--figure-details`); without it they show only what explains the picture.
    public let details: Bool

    /// A writer of `formats`, with the device and times in figures when `details`.
    public init(formats: [FigureFormat], details: Bool = false) { self.formats = formats; self.details = details }

    /// `text` when figures carry details, else nothing: " · \(text)" or "".
    public func detail(_ text: String) -> String { details ? " · " + text : "" }

    /// The extension of the figure a report shows: png when written, else svg, else pdf.
    public var preferred: String {
        (formats.contains(.png) ? FigureFormat.png : formats.contains(.svg) ? .svg : .pdf).rawValue
    }

    /// The file names figure `stem` gets.
    public func files(_ stem: String) -> [String] { formats.map { stem + "." + $0.rawValue } }

    /// Writes `canvas` as `stem` in each format into `folder`.
    public func write(_ canvas: Canvas, stem: String, into folder: URL) throws {
        do { try canvas.write(into: folder, stem: stem, formats: formats) } catch let error as FigureError { throw WorkflowError(error.description) }
    }
}
