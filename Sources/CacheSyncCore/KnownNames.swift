import Foundation

/// Which of a few known names a run of UTF-8 bytes spells, found without making a `String` of the bytes: how the
/// decoder names an event's fields and its operation type.
///
/// The names are kept one after another in one buffer, so a lookup compares lengths and bytes without retaining
/// an array per name.
struct KnownNames<Value: Sendable>: Sendable {
    private let text: [UInt8]
    private let entries: [(start: Int, count: Int, value: Value)]

    /// The names and what each stands for.
    init(_ names: [(String, Value)]) {
        var text: [UInt8] = []
        entries = names.map { name, value in
            defer { text += name.utf8 }
            return (text.count, name.utf8.count, value)
        }
        self.text = text
    }

    /// What `name` stands for, `nil` when it is none of the known names.
    func value(named name: UnsafeBufferPointer<UInt8>) -> Value? {
        guard let start = name.baseAddress else { return nil }
        return text.withUnsafeBufferPointer { text in
            for entry in entries where entry.count == name.count {
                if memcmp(text.baseAddress! + entry.start, start, name.count) == 0 { return entry.value }
            }
            return nil
        }
    }
}
