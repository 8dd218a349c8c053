import Backend
import Graph
import Interpret
import Models

/// The probe pass of an attribution run: one forward pass over the batch that gives each image's
/// class probabilities, checks the CAM layer and resolves the targets (given, or each image's
/// top class). `loupe saliency`, `loupe sanity` and the Python package's default targets use it.
public struct Probe {
    /// Every tapped layer's name and output shape, in the pass's order (the pass itself is not
    /// kept: its activations would stay alive beside the methods' passes).
    public let layers: [(name: String, shape: Shape)]
    /// Logits, probabilities and ranked classes of each image.
    public let scores: ClassScores
    /// The class names (nil: "class K").
    public let names: [String]?
    /// WordNet synonyms of the classes, where known (ImageNet's).
    public let synonyms: [String]?

    /// Runs `model` on `input` [N, 3, H, W]; `names` and `synonyms` give the class names for a
    /// model of that many classes.
    public init(model: Model, input: Tensor, names: (Int) throws -> [String]?, synonyms: (Int) -> [String]? = { _ in nil }) throws {
        let graph = Graph(backend: model.backend)
        let logits = try model.forward(graph, graph.input(input))
        scores = try ClassScores(graph: graph, logits: logits)
        layers = graph.layerNames.map { ($0, graph.shape(graph.tapped($0)!)) }
        // A segmentation of 21 classes without --labels: torchvision's (Pascal VOC's).
        self.names = try names(scores.classes) ?? (scores.dense != nil && scores.classes == vocClasses.count ? vocClasses : nil)
        self.synonyms = synonyms(scores.classes)
    }

    /// Each image's default target: its most probable class; for a segmentation, the class
    /// predicted on the most pixels, other than a background class (named `__background__` or
    /// `background`) wherever another class is predicted at all.
    public var defaultTargets: [Int] {
        guard scores.dense != nil else { return scores.topClasses }
        return (0..<scores.count).map { i in
            let ranked = scores.ranked(i, top: scores.classes)
            let isBackground = { (k: Int) in ["__background__", "background"].contains(self.names?[k].lowercased() ?? "") }
            return ranked.first { !isBackground($0) && scores.probability(i, $0) > 0 } ?? ranked[0]
        }
    }

    /// The CAM layer: `requested`, else the model's last convolutional block; checked when any
    /// of `methods` reads a layer (it must exist and have a 4-D output, or a transformer's tokens).
    public func camLayer(_ requested: String?, for methods: [String], model: Model, flag: String = "--layer") throws -> String {
        let layer = requested ?? model.architecture.lastConvLayer
        let readers = Set(MethodRegistry.entries.filter(\.readsLayer).map(\.name))
        guard methods.contains(where: readers.contains) else { return layer }
        try checkLayerName(layer, in: layers.map(\.name), model: model.architecture.name)
        let shape = layers.first { $0.name == layer }!.shape
        guard shape.rank == 4 || tokenGrid(shape) != nil else {
            let valid = layers.filter { $0.shape.rank == 4 || tokenGrid($0.shape) != nil }.map(\.name).suffix(6)
            throw WorkflowError("\(flag) \(layer) has a \(shape.rank)-D output \(shape); CAM methods need a 4-D one (or a transformer's tokens [N, s^2, C] or [N, 1 + s^2, C]), e.g. \(valid.joined(separator: ", "))")
        }
        return layer
    }

    /// One class per image: `spec` (indices or class names, one for all images or one per image,
    /// comma-separated) or else `defaultTargets`.
    public func targets(_ spec: String?, count: Int, flag: String = "--target") throws -> [Int] {
        try Probe.resolveTargets(spec, count: count, classes: scores.classes, top: defaultTargets, names: names,
                                 synonyms: synonyms, flag: flag)
    }

    /// One class per image of `count`: `spec` (indices below `classes` or names, one for all or
    /// one per image, comma-separated) or else `top`.
    public static func resolveTargets(_ spec: String?, count: Int, classes: Int, top: [Int], names: [String]?,
                                      synonyms: [String]?, flag: String = "--target") throws -> [Int] {
        guard let spec else { return top }
        let parts = spec.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        guard parts.count == 1 || parts.count == count else {
            throw WorkflowError("\(flag): \(parts.count) targets for \(count) images (give one, or one per image)")
        }
        let resolved = try parts.map { part -> Int in
            if let index = Int(part) {
                guard index >= 0, index < classes else { throw WorkflowError("\(flag) \(index) is out of range 0...\(classes - 1)") }
                return index
            }
            return try resolveClass(part, names: names, synonyms: synonyms, flag: flag)
        }
        return parts.count == 1 ? [Int](repeating: resolved[0], count: count) : resolved
    }

    /// A class by name (`ClassLookup`): ambiguous names are refused with the candidates.
    public static func resolveClass(_ part: String, names: [String]?, synonyms: [String]?, flag: String) throws -> Int {
        guard let names else { throw WorkflowError("\(flag) \(part): this model's classes have no names (give an index, or names with --labels)") }
        switch ClassLookup.match(part, names: names, synonyms: synonyms) {
        case .found(let index): return index
        case .ambiguous(let candidates):
            let listed = candidates.prefix(12).map { "\($0) \(names[$0])" }.joined(separator: ", ")
            throw WorkflowError("\(flag) \(part): \(candidates.count) classes match: \(listed)\(candidates.count > 12 ? ", ..." : ""); give one of these names or its index")
        case .none(let near):
            throw WorkflowError("\(flag) \(part): no such class; nearest: \(near.joined(separator: ", "))")
        }
    }
}
