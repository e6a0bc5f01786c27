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

    /// Appends one command whose arguments are `arguments`' UTF-8 bytes.
    public mutating func append(_ arguments: [String]) {
        appendHeader(arguments.count)
        for var argument in arguments {
            argument.withUTF8 { appendArgument($0) }
        }
    }

    /// Whether a command has no arguments (Redis would refuse it; the connection rejects the batch first).
    private(set) var hasEmptyCommand = false

    private mutating func appendHeader(_ arguments: Int) {
        if arguments == 0 { hasEmptyCommand = true }
        count += 1
        bytes.append(UInt8(ascii: "*"))
        appendDecimal(arguments)
    }

    private mutating func appendArgument<C: Collection<UInt8>>(_ argument: C) {
        bytes.append(UInt8(ascii: "$"))
        appendDecimal(argument.count)
        bytes.append(contentsOf: argument)
        appendCRLF()
    }

    /// `n` in decimal, then CR LF.
    private mutating func appendDecimal(_ n: Int) {
        var divisor = 1
        while n / divisor >= 10 { divisor *= 10 }
        var rest = n
        while divisor > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(rest / divisor))
            rest %= divisor
            divisor /= 10
        }
        appendCRLF()
    }

    private mutating func appendCRLF() {
        bytes.append(13)
        bytes.append(10)
    }
}
