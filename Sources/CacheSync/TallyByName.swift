/// Counts by name for the metrics, in order of first appearance: a batch has one or two names, so a list search
/// is cheaper than hashing a name per event.
struct TallyByName {
    private(set) var tallies: [(name: String, count: Int)] = []

    mutating func add(_ name: String) {
        if let index = tallies.firstIndex(where: { $0.name == name }) {
            tallies[index].count += 1
        } else {
            tallies.append((name, 1))
        }
    }
}
