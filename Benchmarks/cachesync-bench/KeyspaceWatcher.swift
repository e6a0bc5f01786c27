import Foundation
import RedisBridge

/// Records when Redis sets each key under a prefix, from keyspace notifications (`notify-keyspace-events K$`):
/// the moment a write is visible to every reader of the cache.
final class KeyspaceWatcher: @unchecked Sendable {
    private let connection: RedisConnection
    private let prefix: String
    private let log: ArrivalLog

    /// Subscribes to `set` notifications of keys `<prefix><integer id>` and listens on its own thread until
    /// `expected` distinct ids were set (or no notification comes for 30 s).
    init(redisPort: Int, prefix: String, expected: Int) throws {
        connection = try RedisConnection(options: RedisConnectionOptions(host: "127.0.0.1", port: redisPort,
                                                                        commandTimeout: .seconds(30)))
        _ = try connection.command(["CONFIG", "SET", "notify-keyspace-events", "K$"])
        _ = try connection.command(["PSUBSCRIBE", "__keyspace@0__:\(prefix)*"])
        self.prefix = prefix
        log = ArrivalLog(expected: expected)
        Thread.detachNewThread { [self] in listen() }
    }

    private func listen() {
        defer {
            connection.close()
            log.finish()
        }
        let channelPrefix = "__keyspace@0__:\(prefix)"
        while !log.isComplete {
            guard case .array(let parts)? = try? connection.nextPushedMessage() else { return }
            let time = Measure.now()
            guard parts.count == 4, parts[3].text == "set", let channel = parts[2].text, channel.hasPrefix(channelPrefix),
                  let id = Int(channel.dropFirst(channelPrefix.count))
            else { continue }
            log.record(id, at: time)
        }
    }

    /// Waits until every expected key was set; `nil` on timeout, else each id's first `set` time.
    func wait(timeout: Double) -> [Int: Double]? {
        log.wait(timeout: timeout)
    }
}
