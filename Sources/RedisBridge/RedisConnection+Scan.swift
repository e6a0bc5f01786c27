extension RedisConnection {
    /// Walks every key matching the glob `pattern` with `SCAN` (non-blocking for the server), handing `body` one
    /// page of keys at a time; `body` returns `false` to stop early. Keys added or removed meanwhile may or may not
    /// be seen, as with `SCAN` itself.
    public func scan(match pattern: String, count: Int,
                     _ body: ([String]) throws -> Bool) throws {
        var cursor = "0"
        repeat {
            let reply = try command(["SCAN", cursor, "MATCH", pattern, "COUNT", String(count)])
            guard let parts = reply.array, parts.count == 2, let next = parts[0].text else {
                throw RedisError(kind: .protocolViolation, endpoint: options.endpoint, message: "unexpected SCAN reply \(reply)")
            }
            cursor = next
            let keys = (parts[1].array ?? []).compactMap(\.text)
            if !keys.isEmpty, try !body(keys) { return }
        } while cursor != "0"
    }
}
