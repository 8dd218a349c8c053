import Backend
import Figures
import Foundation
import ImageIO
import Interpret
import Models

/// `loupe compare`'s optimization runs: the same short feature visualization or inversion on
/// the CPU reference and on a device, compared by relative L2 error.
public enum OptimizationComparison {
    /// One compared quantity: its relative L2 error and both sides' values.
    public struct Row: Sendable {
        /// What is compared ("image", "objective", "relative feature error").
        public let what: String
        /// ||device - reference|| / max(||reference||, floor).
        public let relativeL2: Float
        /// The CPU reference's and the device's values.
        public let reference: [Float], device: [Float]
    }

    /// A visualization of `objective` for `steps` steps at `size` x `size` with `optimizer` on both
    /// models: the images and the objective values.
    public static func visualization(_ objective: Objective, size: Int, steps: Int, optimizer: Optimizer,
                                     reference: Model, device: Model) throws -> [Row] {
        let job = FeatureVisualization(objectives: [objective], size: size, steps: steps, optimizer: optimizer)
        let (a, b) = (try job.run(reference), try job.run(device))
        return [row("image", a.images, b.images), row("objective", a.objectives, b.objectives, floor: 1)]
    }

    /// An inversion of `photo`'s features at `layer` for `steps` steps on both models: the images
    /// and the relative feature errors.
    public static func inversion(layer: String, photo: RGBImage, steps: Int, reference: Model, device: Model) throws -> [Row] {
        let job = FeatureInversion(layers: [layer], steps: steps, tvWeight: 1)
        let shape: Shape = [1, 3, photo.height, photo.width]
        let a = try job.run(reference, target: try reference.backend.tensor(photo.planes, shape))
        let b = try job.run(device, target: try device.backend.tensor(photo.planes, shape))
        return [row("image", a.image, b.image), row("relative feature error", a.errors, b.errors)]
    }

    private static func row(_ what: String, _ a: [Float], _ b: [Float], floor: Double = 1e-30) -> Row {
        Row(what: what, relativeL2: BackendComparison.relativeL2(a, b, floor: floor), reference: a, device: b)
    }
}

/// What `loupe compare --out` writes: compare.json (the table, the verdict, the tolerances, the
/// run) and index.html.
public struct ComparisonOutput {
    /// The comparison's title, its table (a header row first) and its verdict line.
    public var title: String, table: [[String]], verdict: String
    /// The image compared on, if any.
    public var image: String?
    /// The tolerances, by name.
    public var tolerances: [String: Float]
    /// The run's record.
    public var record: RunRecord

    /// The output of one comparison.
    public init(title: String, table: [[String]], verdict: String, image: String?, tolerances: [String: Float], record: RunRecord) {
        self.title = title; self.table = table; self.verdict = verdict; self.image = image; self.tolerances = tolerances; self.record = record
    }

    /// The names `write` creates in its folder.
    public var entries: [String] { ["compare.json", "index.html"] }

    /// Writes compare.json and index.html into `folder` (the caller's staging folder).
    public func write(into folder: URL) throws {
        let json: [String: Any] = ["title": title, "verdict": verdict, "columns": table[0], "rows": Array(table.dropFirst()),
                                   "image_path": image.map { $0 as Any } ?? NSNull(), "run": record.json, "tolerances": tolerances]
        try writeAtomically(try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]),
                            to: folder.appendingPathComponent("compare.json"))
        try HTMLReport(title: "loupe compare: \(title)", sections: [
            .init("Run", [.facts(record.facts + [("image", image ?? "none")])]),
            .init("Errors", [.table(header: table[0].enumerated().map { $0 == 0 && $1.isEmpty ? "layer" : $1 }, rows: Array(table.dropFirst())),
                             .paragraph(verdict)]),
        ]).write(to: folder.appendingPathComponent("index.html"))
    }
}
