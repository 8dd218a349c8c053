import Foundation

/// Finds a class from what a person types: "tabby", "tabby cat", "Granny Smith", "cat".
public enum ClassLookup {
    /// What a query found.
    public enum Match: Equatable, Sendable {
        /// Exactly one class fits (its index).
        case found(Int)
        /// Several classes fit; a person must choose.
        case ambiguous([Int])
        /// None fits; the nearest names by edit distance.
        case none(nearest: [String])
    }

    /// In order: a class whose name is `query` (ignoring case); one whose synonyms include it
    /// ("tabby cat"); the classes whose name or synonyms contain all of its words as whole words
    /// ("cat": tabby, tiger cat, Persian cat, ...), found when only one does.
    public static func match(_ query: String, names: [String], synonyms: [String]? = nil) -> Match {
        let q = query.lowercased().trimmingCharacters(in: .whitespaces)
        let lemmas: [[String]] = names.indices.map { i in
            [names[i].lowercased()] + (synonyms.map { $0[i].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() } } ?? [])
        }
        let exact = names.indices.filter { names[$0].lowercased() == q }
        if exact.count == 1 { return .found(exact[0]) }
        if exact.count > 1 { return .ambiguous(exact) }
        let synonym = names.indices.filter { lemmas[$0].contains(q) }
        if synonym.count == 1 { return .found(synonym[0]) }
        if synonym.count > 1 { return .ambiguous(synonym) }
        let words = Set(wordsOf(q))
        if !words.isEmpty {
            let containing = names.indices.filter { i in lemmas[i].contains { Set(wordsOf($0)).isSuperset(of: words) } }
            if containing.count == 1 { return .found(containing[0]) }
            if containing.count > 1 { return .ambiguous(containing) }
        }
        return .none(nearest: nearestNames(to: query, in: names))
    }

    static func wordsOf(_ text: String) -> [String] {
        text.lowercased().split { !($0.isLetter || $0.isNumber) }.map(String.init)
    }
}

/// The 21 classes of Pascal VOC, background first, as torchvision's segmentation models
/// (FCN, DeepLabV3, LR-ASPP) name their outputs.
public let vocClasses: [String] = [
    "__background__", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]
