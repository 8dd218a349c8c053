/// Checks a user-typed layer name against the layers a forward pass tapped, with the nearest
/// names in the error when it is unknown.
public func checkLayerName(_ name: String, in names: [String], model: String) throws {
    guard !names.contains(name) else { return }
    let near = nearestNames(to: name, in: names)
    throw ModelError("unknown layer \(name) in \(model)" + (near.isEmpty ? "" : "; nearest: \(near.joined(separator: ", "))")
                     + " (`loupe layers` lists them all)")
}

/// Up to `count` names closest to `name` by edit distance.
public func nearestNames(to name: String, in names: [String], count: Int = 3) -> [String] {
    let target = Array(name)
    func distance(_ other: String) -> Int {
        let b = Array(other)
        var row = Array(0...b.count)
        for (i, ca) in target.enumerated() {
            var previous = row[0]
            row[0] = i + 1
            for (j, cb) in b.enumerated() {
                let current = row[j + 1]
                row[j + 1] = Swift.min(row[j + 1] + 1, row[j] + 1, previous + (ca == cb ? 0 : 1))
                previous = current
            }
        }
        return row[b.count]
    }
    let scored: [(name: String, distance: Int)] = names.map { ($0, distance($0)) }
    let sorted = scored.sorted { a, b in a.distance != b.distance ? a.distance < b.distance : a.name < b.name }
    return sorted.prefix(count).map { $0.name }
}
