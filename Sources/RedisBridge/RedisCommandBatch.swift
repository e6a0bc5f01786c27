/// Commands laid out in the Redis protocol (RESP arrays of bulk strings), back to back in one buffer: what a
/// pipeline or a transaction sends, built without an argument array per command.
///
/// Binary-safe like `redisAppendCommandArgv`: every argument goes with its length, nothing is a format string.
/// The buffer is written through a pointer (an array would check its uniqueness and capacity on every piece of a
/// line) and shared between copies of the batch until one of them appends.
public struct RedisCommandBatch: Sendable {
    /// How many commands the batch holds (one reply each).
    public private(set) var count = 0
    /// Whether a command has no arguments (Redis would refuse it; the connection rejects the batch first).
    private(set) var hasEmptyCommand = false
    private var storage = Storage(capacity: 256)

    /// An empty batch.
    public init() {}

    /// A batch of binary-safe commands.
    public init(_ commands: [[[UInt8]]]) {
        for command in commands {
            let size = command.reduce(Self.lineSize(command.count)) { $0 + Self.argumentSize($1.count) }
            write(arguments: command.count, size: size) { out in
                for argument in command { argument.withUnsafeBufferPointer { out.argument($0) } }
            }
        }
    }

    /// The protocol bytes (a copy).
    public var bytes: [UInt8] { withBytes { Array($0) } }

    /// Calls `body` with the protocol bytes.
    public func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.base, count: storage.count))
    }

    /// Reserves room for about `byteCount` protocol bytes, so a large batch is not grown (and copied) step by step.
    public mutating func reserveCapacity(_ byteCount: Int) {
        Storage.unique(&storage).reserve(byteCount)
    }

    /// Appends one command whose arguments are `arguments`' UTF-8 bytes.
    public mutating func append(_ arguments: String...) {
        append(arguments)
    }

    /// Appends a command of a name and one argument (`UNLINK <key>`), the most common shape, without an array.
    public mutating func append(_ name: String, _ argument: String) {
        write(arguments: 2, size: Self.lineSize(2) + Self.argumentSize(name.utf8.count) + Self.argumentSize(argument.utf8.count)) { out in
            out.argument(name)
            out.argument(argument)
        }
    }

    /// Appends a command of a name and four arguments (`SET <key> <value> XX KEEPTTL`) without an array.
    public mutating func append(_ name: String, _ first: String, _ second: String, _ third: String, _ fourth: String) {
        let size = Self.argumentSize(fourth.utf8.count)
        append(name, first, second, third, lastSize: size) { out in out.argument(fourth) }
    }

    /// Appends a command of a name and four arguments, the last a number in decimal (`SET <key> <value> EX
    /// <seconds>`), without an array or the number's text. `number` is at least 0.
    public mutating func append(_ name: String, _ first: String, _ second: String, _ third: String, _ number: Int) {
        precondition(number >= 0, "a number argument is at least 0")
        let size = Self.argumentSize(Self.digitCount(number))
        append(name, first, second, third, lastSize: size) { out in out.argument(number: number) }
    }

    /// A command of a name, three arguments and a last one of `lastSize` protocol bytes that `writeLast` writes.
    @inline(__always)
    private mutating func append(_ name: String, _ first: String, _ second: String, _ third: String, lastSize: Int,
                                 _ writeLast: (inout Writer) -> Void) {
        let size = Self.lineSize(5) + Self.argumentSize(name.utf8.count) + Self.argumentSize(first.utf8.count)
            + Self.argumentSize(second.utf8.count) + Self.argumentSize(third.utf8.count) + lastSize
        write(arguments: 5, size: size) { out in
            out.argument(name)
            out.argument(first)
            out.argument(second)
            out.argument(third)
            writeLast(&out)
        }
    }

    /// Appends one command whose arguments are `arguments`' UTF-8 bytes.
    public mutating func append(_ arguments: [String]) {
        let size = arguments.reduce(Self.lineSize(arguments.count)) { $0 + Self.argumentSize($1.utf8.count) }
        write(arguments: arguments.count, size: size) { out in
            for index in arguments.indices { out.argument(arguments[index]) }
        }
    }

    /// Appends one command: `name`, then each of `texts` with `suffix` after it (`UNLINK a:lease b:lease …`),
    /// without building the suffixed strings.
    public mutating func append(_ name: String, _ texts: [String], suffix: String) {
        var suffix = suffix
        let size = texts.reduce(Self.lineSize(texts.count + 1) + Self.argumentSize(name.utf8.count)) {
            $0 + Self.argumentSize($1.utf8.count + suffix.utf8.count)
        }
        write(arguments: texts.count + 1, size: size) { out in
            out.argument(name)
            suffix.withUTF8 { suffix in
                for index in texts.indices { out.argument(texts[index], suffix) }
            }
        }
    }

    /// Appends a command of a name and one argument, `{<text>}<suffix>` (a cluster key's derived key, in its slot),
    /// without building that string.
    public mutating func append(_ name: String, braced text: String, suffix: String) {
        var tail = "}" + suffix
        let size = Self.lineSize(2) + Self.argumentSize(name.utf8.count) + Self.argumentSize(1 + text.utf8.count + tail.utf8.count)
        write(arguments: 2, size: size) { out in
            out.argument(name)
            tail.withUTF8 { out.argument(braced: text, $0) }
        }
    }

    /// Appends one command: the arguments `head`, then those of each of `lists` (laid out beforehand), in order.
    public mutating func append(_ head: [String], _ lists: RedisArgumentList...) {
        append(head, lists: lists)
    }

    /// Appends one command: the arguments `head`, then those of each of `lists` (laid out beforehand), in order.
    public mutating func append(_ head: [String], lists: [RedisArgumentList]) {
        precondition(lists.allSatisfy { $0.pendingNumbers.isEmpty }, "an argument list's pending numbers are given first")
        let arguments = head.count + lists.reduce(0) { $0 + $1.count }
        let size = Self.lineSize(arguments) + head.reduce(0) { $0 + Self.argumentSize($1.utf8.count) }
            + lists.reduce(0) { $0 + $1.storage.count }
        write(arguments: arguments, size: size) { out in
            for index in head.indices { out.argument(head[index]) }
            for list in lists { out.copy(UnsafeBufferPointer(start: list.storage.base, count: list.storage.count)) }
        }
    }

    /// Appends one command: `name`, then the arguments of `list` (laid out one by one beforehand).
    public mutating func append(_ name: String, _ list: RedisArgumentList) {
        let size = Self.lineSize(list.count + 1) + Self.argumentSize(name.utf8.count) + list.storage.count
        write(arguments: list.count + 1, size: size) { out in
            out.argument(name)
            out.copy(UnsafeBufferPointer(start: list.storage.base, count: list.storage.count))
        }
    }

    /// Appends a command of `arguments` arguments, `size` bytes in all, whose arguments `body` writes after the
    /// header; room for all of it is made first.
    private mutating func write(arguments: Int, size: Int, _ body: (inout Writer) -> Void) {
        if arguments == 0 { hasEmptyCommand = true }
        count += 1
        Storage.unique(&storage).write(size: size) { writer in
            writer.line(UInt8(ascii: "*"), arguments)
            body(&writer)
        }
    }

    /// The bytes of `$<length>` CR LF, an argument of `length` bytes and CR LF.
    fileprivate static func argumentSize(_ length: Int) -> Int {
        lineSize(length) + length + 2
    }

    /// The bytes of a marker, `n` in decimal and CR LF.
    private static func lineSize(_ n: Int) -> Int {
        digitCount(n) + 3
    }

    /// How many decimal digits `n` (at least 0) has.
    fileprivate static func digitCount(_ n: Int) -> Int {
        if n < 10 { return 1 }
        if n < 100 { return 2 }
        var digits = 3, rest = n / 100
        while rest >= 10 {
            rest /= 10
            digits += 1
        }
        return digits
    }

    /// Writes protocol lines into room made for them beforehand.
    fileprivate struct Writer {
        var next: UnsafeMutablePointer<UInt8>

        /// `marker`, `n` in decimal, CR LF.
        mutating func line(_ marker: UInt8, _ n: Int) {
            if n < 10 {
                (next[0], next[1], next[2], next[3]) = (marker, UInt8(ascii: "0") + UInt8(n), 13, 10)
                next += 4
                return
            }
            next[0] = marker
            next += 1
            decimal(n)
            endLine()
        }

        /// `n` (at least 0) in decimal.
        @inline(__always)
        private mutating func decimal(_ n: Int) {
            let digits = RedisCommandBatch.digitCount(n)
            var rest = n, index = digits
            repeat {
                index -= 1
                next[index] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            } while rest > 0
            next += digits
        }

        @inline(__always)
        private mutating func endLine() {
            next[0] = 13
            next[1] = 10
            next += 2
        }

        /// `n` (at least 0) in decimal as an argument: `$<digits>` CR LF, the digits, CR LF.
        mutating func argument(number n: Int) {
            line(UInt8(ascii: "$"), RedisCommandBatch.digitCount(n))
            decimal(n)
            endLine()
        }

        /// `argument(_:_:)` of a string's UTF-8 bytes, read in place (a native string's are contiguous; any other
        /// is copied first).
        mutating func argument(_ text: String, _ suffix: UnsafeBufferPointer<UInt8>? = nil) {
            if text.utf8.withContiguousStorageIfAvailable({ argument($0, suffix) }) == nil {
                var copy = text
                copy.withUTF8 { argument($0, suffix) }
            }
        }

        /// `$<length>`, the argument (`suffix` after it, if any), CR LF.
        mutating func argument(_ argument: UnsafeBufferPointer<UInt8>, _ suffix: UnsafeBufferPointer<UInt8>? = nil) {
            line(UInt8(ascii: "$"), argument.count + (suffix?.count ?? 0))
            copy(argument)
            if let suffix { copy(suffix) }
            endLine()
        }

        /// `$<length>`, `{`, the text's bytes, `tail`'s, CR LF.
        mutating func argument(braced text: String, _ tail: UnsafeBufferPointer<UInt8>) {
            var text = text
            text.withUTF8 { text in
                line(UInt8(ascii: "$"), 1 + text.count + tail.count)
                next[0] = UInt8(ascii: "{")
                next += 1
                copy(text)
                copy(tail)
                endLine()
            }
        }

        mutating func copy(_ bytes: UnsafeBufferPointer<UInt8>) {
            guard let start = bytes.baseAddress else { return }
            next.update(from: start, count: bytes.count)
            next += bytes.count
        }
    }

    /// A growable byte buffer owned by the batches (or argument lists) that share it.
    fileprivate final class Storage: @unchecked Sendable {
        private(set) var base: UnsafeMutablePointer<UInt8>
        private var capacity: Int
        var count = 0

        init(capacity: Int) {
            self.capacity = capacity
            base = .allocate(capacity: capacity)
        }

        deinit { base.deallocate() }

        /// `storage`, copied first if another batch (or list) shares it.
        static func unique(_ storage: inout Storage) -> Storage {
            if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
            return storage
        }

        /// Appends what `body` writes, at most `size` bytes: room for them is made first.
        @inline(__always)
        func write(size: Int, _ body: (inout Writer) -> Void) {
            reserve(count + size)
            var writer = Writer(next: base + count)
            body(&writer)
            count = base.distance(to: writer.next)
        }

        /// Room for `byteCount` bytes in all.
        func reserve(_ byteCount: Int) {
            guard byteCount > capacity else { return }
            let larger = max(byteCount, 2 * capacity)
            let moved = UnsafeMutablePointer<UInt8>.allocate(capacity: larger)
            moved.initialize(from: base, count: count)
            base.deallocate()
            base = moved
            capacity = larger
        }

        func copy() -> Storage {
            let copy = Storage(capacity: max(count, 16))
            copy.base.initialize(from: base, count: count)
            copy.count = count
            return copy
        }
    }
}

/// The arguments of one command, laid out one at a time while they are found (`UNLINK` of the lease of every key
/// a batch writes), without keeping the strings they come from; `RedisCommandBatch.append(_:_:)` adds the command.
public struct RedisArgumentList: Sendable {
    /// How many arguments the list holds.
    public private(set) var count = 0
    fileprivate private(set) var storage = RedisCommandBatch.Storage(capacity: 256)
    /// Where each argument `appendPendingNumber()` left out goes (byte offsets, in order).
    public private(set) var pendingNumbers: [Int] = []

    /// An empty list.
    public init() {}

    /// Appends `text`'s UTF-8 bytes as one argument.
    public mutating func append(_ text: String) {
        let storage = RedisCommandBatch.Storage.unique(&storage)
        storage.write(size: RedisCommandBatch.argumentSize(text.utf8.count)) { $0.argument(text) }
        count += 1
    }

    /// Appends `n` (at least 0) in decimal as one argument.
    public mutating func append(number n: Int) {
        precondition(n >= 0, "a number argument is at least 0")
        let storage = RedisCommandBatch.Storage.unique(&storage)
        storage.write(size: RedisCommandBatch.argumentSize(RedisCommandBatch.digitCount(n))) { $0.argument(number: n) }
        count += 1
    }

    /// Appends an argument that is a number not known yet: `filling(_:)` gives it.
    public mutating func appendPendingNumber() {
        pendingNumbers.append(storage.count)
        count += 1
    }

    /// This list with its pending numbers (each at least 0) given, in the order they were appended.
    public func filling(_ numbers: [Int]) -> RedisArgumentList {
        precondition(numbers.count == pendingNumbers.count, "one number per pending argument")
        guard !numbers.isEmpty else { return self }
        var filled = RedisArgumentList()
        let source = storage
        filled.storage.reserve(source.count + numbers.count * 24)
        var from = 0
        for (offset, number) in zip(pendingNumbers, numbers) {
            precondition(number >= 0, "a number argument is at least 0")
            filled.storage.write(size: offset - from + RedisCommandBatch.argumentSize(RedisCommandBatch.digitCount(number))) {
                $0.copy(UnsafeBufferPointer(start: source.base + from, count: offset - from))
                $0.argument(number: number)
            }
            from = offset
        }
        filled.storage.write(size: source.count - from) {
            $0.copy(UnsafeBufferPointer(start: source.base + from, count: source.count - from))
        }
        filled.count = count
        return filled
    }

    /// Appends `text`'s UTF-8 bytes with `suffix`'s after them, as one argument.
    public mutating func append(_ text: String, suffix: String) {
        var suffix = suffix
        let storage = RedisCommandBatch.Storage.unique(&storage)
        suffix.withUTF8 { suffix in
            storage.write(size: RedisCommandBatch.argumentSize(text.utf8.count + suffix.count)) { $0.argument(text, suffix) }
        }
        count += 1
    }
}
