/// Commands laid out in the Redis protocol (RESP arrays of bulk strings), back to back in one buffer: what a
/// pipeline or a transaction sends, built without an argument array per command.
///
/// Binary-safe like `redisAppendCommandArgv`: every argument goes with its length, nothing is a format string.
public struct RedisCommandBatch: Sendable {
    /// How many commands the batch holds (one reply each).
    public private(set) var count = 0
    /// The protocol bytes.
    public private(set) var bytes: [UInt8] = []

    /// An empty batch.
    public init() {}

    /// A batch of binary-safe commands.
    public init(_ commands: [[[UInt8]]]) {
        for command in commands {
            appendHeader(command.count)
            for argument in command { appendArgument(argument) }
        }
    }

    /// Reserves room for about `byteCount` protocol bytes, so a large batch is not grown (and copied) step by step.
    public mutating func reserveCapacity(_ byteCount: Int) {
        bytes.reserveCapacity(byteCount)
    }

    /// Appends one command whose arguments are `arguments`' UTF-8 bytes.
    public mutating func append(_ arguments: String...) {
        append(arguments)
    }

    /// Appends one command whose arguments are `arguments`' UTF-8 bytes: laid out whole in a scratch buffer (on
    /// the stack when it is small), then appended in one step.
    public mutating func append(_ arguments: [String]) {
        if arguments.isEmpty { hasEmptyCommand = true }
        count += 1
        var size = Self.lineSize(arguments.count)
        for argument in arguments {
            size += Self.lineSize(argument.utf8.count) + argument.utf8.count + 2
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: size) { buffer in
            var end = Self.writeLine(UInt8(ascii: "*"), arguments.count, into: buffer, at: 0)
            for var argument in arguments {
                argument.withUTF8 { utf8 in
                    end = Self.writeLine(UInt8(ascii: "$"), utf8.count, into: buffer, at: end)
                    end += UnsafeMutableBufferPointer(rebasing: buffer[end...]).initialize(fromContentsOf: utf8)
                    buffer[end] = 13
                    buffer[end + 1] = 10
                    end += 2
                }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[..<end]))
        }
    }

    /// The bytes of `marker`, `n` in decimal and CR LF.
    private static func lineSize(_ n: Int) -> Int {
        var digits = 1, rest = n
        while rest >= 10 {
            rest /= 10
            digits += 1
        }
        return digits + 3
    }

    /// Writes `marker`, `n` in decimal and CR LF at `start`; returns where they end.
    private static func writeLine(_ marker: UInt8, _ n: Int, into buffer: UnsafeMutableBufferPointer<UInt8>, at start: Int) -> Int {
        let end = start + lineSize(n)
        buffer[start] = marker
        var rest = n, index = end - 3
        repeat {
            buffer[index] = UInt8(ascii: "0") + UInt8(rest % 10)
            rest /= 10
            index -= 1
        } while rest > 0
        buffer[end - 2] = 13
        buffer[end - 1] = 10
        return end
    }

    /// Appends one command: `name`, then each of `texts` with `suffix` after it (`UNLINK a:lease b:lease …`),
    /// without building the suffixed strings.
    public mutating func append(_ name: String, _ texts: [String], suffix: String) {
        appendHeader(texts.count + 1)
        var name = name, suffix = suffix
        name.withUTF8 { appendArgument($0) }
        suffix.withUTF8 { suffix in
            for var text in texts {
                text.withUTF8 { appendArgument($0, suffix) }
            }
        }
    }

    /// Whether a command has no arguments (Redis would refuse it; the connection rejects the batch first).
    private(set) var hasEmptyCommand = false

    private mutating func appendHeader(_ arguments: Int) {
        if arguments == 0 { hasEmptyCommand = true }
        count += 1
        appendLine(UInt8(ascii: "*"), arguments)
    }

    /// `$<length>`, the argument (`suffix` after it, if any), CR LF.
    private mutating func appendArgument<C: Collection<UInt8>>(_ argument: C) {
        appendLine(UInt8(ascii: "$"), argument.count)
        bytes.append(contentsOf: argument)
        bytes.append(contentsOf: Self.crlf)
    }

    private mutating func appendArgument(_ argument: UnsafeBufferPointer<UInt8>, _ suffix: UnsafeBufferPointer<UInt8>) {
        appendLine(UInt8(ascii: "$"), argument.count + suffix.count)
        bytes.append(contentsOf: argument)
        bytes.append(contentsOf: suffix)
        bytes.append(contentsOf: Self.crlf)
    }

    private static let crlf: [UInt8] = [13, 10]

    /// `marker`, `n` in decimal, CR LF: laid out on the stack and appended in one step.
    private mutating func appendLine(_ marker: UInt8, _ n: Int) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { line in
            let end = Self.writeLine(marker, n, into: line, at: 0)
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: line[..<end]))
        }
    }
}
