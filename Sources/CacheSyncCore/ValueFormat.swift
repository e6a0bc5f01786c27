import BSONModel

/// How a collection's documents are stored in Redis (`format`, docs/ARCHITECTURE.md §4 "Values").
public enum ValueFormat: String, Sendable, Equatable, CaseIterable {
    /// One string: the document as compact relaxed Extended JSON.
    case json
    /// One hash: a field per top-level field of the document, each value its relaxed Extended JSON text.
    case hash

    /// The hash fields of `document`, flattened (`[name, value, name, value, …]`), `_id` first.
    public static func hashFields(_ document: BSONDocument) -> [String] {
        var fields: [String] = []
        fields.reserveCapacity(2 * document.fields.count)
        if let id = document["_id"] { fields += ["_id", ExtendedJSON.relaxed(id)] }
        for field in document.fields where field.key != "_id" {
            fields += [field.key, ExtendedJSON.relaxed(field.value)]
        }
        return fields
    }

    /// The JSON document a hash's flattened fields stand for: `_id` first, then the fields in the order given (as
    /// Redis returns them: the order they were written in while the hash is small, any order once Redis stores it
    /// as a hash table).
    public static func json(hashFields fields: [String]) -> String {
        var pairs: [(String, String)] = []
        var index = 0
        while index + 1 < fields.count {
            pairs.append((fields[index], fields[index + 1]))
            index += 2
        }
        let ordered = pairs.filter { $0.0 == "_id" } + pairs.filter { $0.0 != "_id" }
        return "{" + ordered.map { ExtendedJSON.quoted($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
    }
}
