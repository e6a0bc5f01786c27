import Foundation

/// Which of a few known names a run of UTF-8 bytes spells, found without making a `String` of the bytes: how the
/// decoder names an event's fields and its operation type.
struct KnownNames<Value: Sendable>: Sendable {
    private let entries: [(bytes: [UInt8], value: Value)]

    /// The names and what each stands for.
    init(_ names: [(String, Value)]) {
        entries = names.map { (Array($0.0.utf8), $0.1) }
    }

    /// What `name` stands for, `nil` when it is none of the known names.
    func value(named name: UnsafeBufferPointer<UInt8>) -> Value? {
        guard let start = name.baseAddress else { return nil }
        for entry in entries where entry.bytes.count == name.count {
            if entry.bytes.withUnsafeBytes({ memcmp($0.baseAddress!, start, name.count) }) == 0 { return entry.value }
        }
        return nil
    }
}
