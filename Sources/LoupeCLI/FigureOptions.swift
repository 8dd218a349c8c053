import ArgumentParser
import Figures
import Foundation
import ImageIO
import Workflows

/// `--figure-format`: the formats of the labelled figures (grids, plots, sprites, strips).
public struct FigureOptions: ParsableArguments {
    @Option(help: "Formats of the labelled figures, comma-separated: png, svg, pdf (vector text and lines, for papers).")
    public var figureFormat: String = "png"
    @Flag(help: "Put the device and each method's time in the figures' subtitles and captions (they are always in the report and the JSON).")
    public var figureDetails = false

    public init() {}

    /// The writer of these formats.
    func writer() throws -> FigureWriter { FigureWriter(formats: try formats(), details: figureDetails) }

    func formats() throws -> [FigureFormat] {
        do { return try FigureFormat.list(figureFormat) } catch let error as FigureError { throw UserError("--figure-format: \(error.description)") }
    }

    /// The extension of the figure a report shows (`FigureWriter.preferred`).
    func preferred() throws -> String { try writer().preferred }

    /// The file names figure `stem` gets.
    func files(_ stem: String) throws -> [String] { try writer().files(stem) }

    /// Writes `canvas` as `stem` in each format into `folder`.
    func write(_ canvas: Canvas, stem: String, into folder: URL) throws { try writer().write(canvas, stem: stem, into: folder) }
}

/// How attribution maps are drawn (Captum's `visualize_image_attr` settings).
public struct MapStyleOptions: ParsableArguments {
    @Option(help: "Colour map: auto (rdbu for --sign all, reds for negative, else viridis), \(Colormap.allCases.map(\.rawValue).joined(separator: ", ")).")
    public var colormap: String = "auto"
    @Option(help: "Which part of the attributions to draw: auto (all for gradient_x_input, integrated_gradients and occlusion, else absolute), absolute, positive, negative, all (diverging, centred on 0).")
    public var sign: String = "auto"
    @Option(parsing: .unconditional, help: "Percent of the attribution mass clipped as outliers before scaling (Captum's outlier_perc).")
    public var clipPercentile: Float = 2
    @Option(parsing: .unconditional, help: "Weight of the map in overlays, 0...1 (the photo gets 1 - alpha); with --overlay map, its weight where the map is strongest.")
    public var alpha: Float = 0.5
    @Option(help: "Overlay opacity: map (follows the map: the photo stays clear where the map is near zero) or blend (alpha everywhere, pytorch-grad-cam's show_cam_on_image).")
    public var overlay: String = "map"

    public init() {}

    func style() throws -> MapStyle {
        try requireNumber("--clip-percentile", clipPercentile, atLeast: 0)
        guard clipPercentile < 100 else { throw UserError("--clip-percentile \(clipPercentile): must be below 100") }
        try requireNumber("--alpha", alpha, atLeast: 0)
        guard alpha <= 1 else { throw UserError("--alpha \(alpha): must be at most 1") }
        guard ["map", "blend"].contains(overlay) else { throw UserError("--overlay \(overlay): expected map or blend") }
        var style = MapStyle(outlierPercent: clipPercentile, alpha: alpha, followsMap: overlay == "map")
        if colormap != "auto" {
            guard let map = Colormap(rawValue: colormap.lowercased()) else {
                throw UserError("--colormap \(colormap): known: auto, \(Colormap.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            style.colormap = map
        }
        if sign != "auto" {
            guard let s = AttributionSign(rawValue: sign.lowercased()) else {
                throw UserError("--sign \(sign): known: auto, \(AttributionSign.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            style.sign = s
        }
        return style
    }
}
