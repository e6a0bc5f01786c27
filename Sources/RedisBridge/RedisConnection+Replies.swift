import CHiredis

/// Writing commands to hiredis's buffer and reading replies: built into `RedisReply` values, skipped without being
/// built, or read raw. Every transport failure goes through `transportFailure`. Call with the lock held.
extension RedisConnection {
    /// Appends every command, then reads one reply per command; a transport failure breaks the connection.
    func roundTrip(
        _ context: UnsafeMutablePointer<redisContext>, _ commands: [[[UInt8]]], dropOnFailure: Bool = true
    ) throws(RedisError) -> [RedisReply] {
        try roundTrip(context, RedisCommandBatch(commands), dropOnFailure: dropOnFailure)
    }

    /// Appends the batch's bytes as they are, then reads one reply per command.
    func roundTrip(
        _ context: UnsafeMutablePointer<redisContext>, _ batch: RedisCommandBatch, dropOnFailure: Bool = true
    ) throws(RedisError) -> [RedisReply] {
        guard batch.count > 0 else { return [] }
        try append(context, batch, dropOnFailure: dropOnFailure)
        return try readReplies(context, batch.count, dropOnFailure: dropOnFailure)
    }

    /// Reads the next `count` replies.
    func readReplies(_ context: UnsafeMutablePointer<redisContext>, _ count: Int, dropOnFailure: Bool)
        throws(RedisError) -> [RedisReply] {
        var replies: [RedisReply] = []
        replies.reserveCapacity(count)
        for _ in 0..<count {
            replies.append(try readReply(context, dropOnFailure: dropOnFailure))
        }
        return replies
    }

    /// Reads and drops the next `count` replies; a transport failure breaks the connection.
    ///
    /// hiredis builds no reply objects while the reader has no object functions: each reply read is then only its
    /// type, cast to a pointer, with nothing to free.
    func skipReplies(_ context: UnsafeMutablePointer<redisContext>, _ count: Int) throws(RedisError) {
        try withReplyFunctions(context, nil, nil) { () throws(RedisError) in
            for _ in 0..<count {
                _ = try nextRawReply(context, dropOnFailure: true)
            }
        }
    }

    /// Runs `body` while the context's reader builds replies with `functions` (`nil`: none) and `privdata`, then
    /// gives it hiredis's own back — unless `body` dropped the context, and the reader with it.
    func withReplyFunctions(_ context: UnsafeMutablePointer<redisContext>,
                                    _ functions: UnsafeMutablePointer<redisReplyObjectFunctions>?,
                                    _ privdata: UnsafeMutableRawPointer?,
                                    _ body: () throws(RedisError) -> Void) throws(RedisError) {
        let reader = context.pointee.reader!
        let saved = (reader.pointee.fn, reader.pointee.privdata)
        (reader.pointee.fn, reader.pointee.privdata) = (functions, privdata)
        defer { if self.context == context { (reader.pointee.fn, reader.pointee.privdata) = saved } }
        try body()
    }

    /// Appends the batch's bytes to hiredis's output buffer (written by the next read, or `redisBufferWrite`).
    func append(
        _ context: UnsafeMutablePointer<redisContext>, _ batch: RedisCommandBatch, dropOnFailure: Bool
    ) throws(RedisError) {
        try checkNoEmptyCommand(batch)
        let status = batch.withBytes { buffer in
            buffer.withMemoryRebound(to: CChar.self) { redisAppendFormattedCommand(context, $0.baseAddress, $0.count) }
        }
        if status != REDIS_OK { throw transportFailure(context, dropOnFailure: dropOnFailure) }
    }

    /// Writes everything appended to the output buffer, blocking up to the command timeout.
    func flushOutput(_ context: UnsafeMutablePointer<redisContext>) throws(RedisError) {
        if let tlsSession {
            do {
                try tlsSession.flush(context)
            } catch {
                dropContext()
                throw error
            }
            return
        }
        var done: Int32 = 0
        while done == 0 {
            if redisBufferWrite(context, &done) != REDIS_OK { throw transportFailure(context, dropOnFailure: true) }
        }
    }

    /// Redis would refuse a command without arguments: the batch is refused before any of it is sent.
    func checkNoEmptyCommand(_ batch: RedisCommandBatch) throws(RedisError) {
        if batch.hasEmptyCommand {
            throw RedisError.invalidCommand("a command needs at least one argument", endpoint: options.endpoint)
        }
    }

    /// Reads the next reply from the socket (blocking up to the command timeout).
    func readReply(_ context: UnsafeMutablePointer<redisContext>, dropOnFailure: Bool) throws(RedisError) -> RedisReply {
        let raw = try nextRawReply(context, dropOnFailure: dropOnFailure)
        defer { freeReplyObject(raw) }
        return RedisReply(copying: raw.assumingMemoryBound(to: redisReply.self))
    }

    /// The next reply as hiredis parsed it, for the caller to free (`freeReplyObject`).
    func nextRawReply(_ context: UnsafeMutablePointer<redisContext>, dropOnFailure: Bool)
        throws(RedisError) -> UnsafeMutableRawPointer {
        if let tlsSession {
            do {
                return try tlsSession.nextReply(context)
            } catch {
                if dropOnFailure { dropContext() }
                throw error
            }
        }
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let reply = raw else {
            if let raw { freeReplyObject(raw) }
            throw transportFailure(context, dropOnFailure: dropOnFailure)
        }
        return reply
    }

    /// Maps the context's error and, when asked, frees the broken context so the next call reconnects.
    func transportFailure(_ broken: UnsafeMutablePointer<redisContext>, dropOnFailure: Bool) -> RedisError {
        let savedErrno = cs_errno()
        let error = RedisError.fromContext(broken, errno: savedErrno, endpoint: options.endpoint, redacting: secret)
        if dropOnFailure { dropContext() }
        return error
    }
}
