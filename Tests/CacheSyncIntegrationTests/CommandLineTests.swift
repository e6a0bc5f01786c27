import Foundation
import Glibc
import Testing
import TestSupport

/// The `cachesync` binary's exit codes and messages for `check-config` and `version` (docs/ARCHITECTURE.md §2).
@Suite("Command line")
struct CommandLineTests {
    static let valid = """
        mongodb:
          uri: "mongodb://127.0.0.1:27017"
          database: shop
        redis:
          url: "redis://:s3cret@127.0.0.1:6379/0"
        collections:
          users:
            strategy: invalidate
          products:
            strategy: update
        """

    /// A bad variant of `valid`: one line replaced or added, and the `line: field:` the error must name.
    struct Variant: Sendable, CustomStringConvertible {
        let name: String
        let replace: String
        let with: String
        let expected: String
        var description: String { name }
    }

    static let variants: [Variant] = [
        .init(name: "unknown strategy", replace: "strategy: update", with: "strategy: updat", expected: "10: collections.products.strategy:"),
        .init(name: "missing MongoDB URI", replace: #"  uri: "mongodb://127.0.0.1:27017""#, with: "  uri: \"\"", expected: "2: mongodb.uri:"),
        .init(name: "unparsable Redis URL", replace: #""redis://:s3cret@127.0.0.1:6379/0""#, with: #""redis//localhost""#, expected: "5: redis.url:"),
        .init(name: "misspelt key", replace: "strategy: invalidate", with: "stratgy: invalidate", expected: "8: collections.users.stratgy:"),
        .init(name: "zero TTL", replace: "strategy: update", with: "strategy: update\n    ttl: { base: 0 }", expected: "11: collections.products.ttl.base:"),
        .init(name: "negative TTL", replace: "strategy: update", with: "strategy: update\n    ttl: { base: -5 }", expected: "11: collections.products.ttl.base:"),
        .init(name: "tiers out of order", replace: "strategy: update", with: "strategy: update\n    ttl:\n      tiers:\n        - { minAccesses: 10, ttl: 900 }\n        - { minAccesses: 100, ttl: 1800 }", expected: "collections.products.ttl.tiers"),
        .init(name: "a dotted name that could be either namespace", replace: "  products:", with: "  orders.v2:\n    strategy: update\n  products:", expected: "9: collections.orders.v2: \"orders.v2\" is ambiguous"),
        .init(name: "unknown key-template placeholder", replace: "strategy: update", with: "strategy: update\n    keyTemplate: \"{coll}:{uid}\"", expected: "11: collections.products.keyTemplate:"),
        .init(name: "missing environment variable", replace: "database: shop", with: "database: ${CACHESYNC_TEST_UNSET_VARIABLE}", expected: "3: mongodb.database:"),
        .init(name: "wrong YAML type", replace: "database: shop", with: "database: [shop]", expected: "3: mongodb.database:"),
        .init(name: "broken YAML syntax", replace: "  users:", with: "  users: [", expected: "yaml:"),
        .init(name: "no collections", replace: "  users:\n    strategy: invalidate\n  products:\n    strategy: update", with: "  {}", expected: "collections:"),
        .init(name: "unknown idType", replace: "strategy: invalidate", with: "strategy: invalidate\n    idType: guid", expected: "9: collections.users.idType:"),
        .init(name: "unknown operation", replace: "strategy: invalidate", with: "strategy: invalidate\n    operations: [upsert]", expected: "9: collections.users.operations"),
        .init(name: "unknown onHistoryLost", replace: "strategy: invalidate", with: "strategy: invalidate\n    onHistoryLost: ignore", expected: "9: collections.users.onHistoryLost:"),
        .init(name: "bad listen port", replace: "collections:", with: "http:\n  listen: \"127.0.0.1:99999\"\ncollections:", expected: "7: http.listen:"),
    ]

    private func write(_ text: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cachesync-cli-\(UUID().uuidString).yaml")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    @Test("check-config exits 0 on a valid config and prints it with the password redacted")
    func validConfig() throws {
        let path = try write(Self.valid)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try CacheSyncProcess.runCommand(["check-config", "--config", path])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("redis://:***@127.0.0.1:6379/0"))
        #expect(!result.output.contains("s3cret"))
    }

    @Test("check-config exits 2 on a bad config and names file, line and field", arguments: variants)
    func badConfig(_ variant: Variant) throws {
        #expect(Self.valid.contains(variant.replace), "the variant does not apply")
        let path = try write(Self.valid.replacingOccurrences(of: variant.replace, with: variant.with))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try CacheSyncProcess.runCommand(["check-config", "--config", path])
        #expect(result.status == 2, "\(result.output)")
        #expect(result.output.contains("\(path):"), "the message must name the file: \(result.output)")
        #expect(result.output.contains(variant.expected), "expected \(variant.expected) in: \(result.output)")
    }

    @Test("version prints the version and exits 0; a missing config file exits 2")
    func versionAndMissingFile() throws {
        let version = try CacheSyncProcess.runCommand(["version"])
        #expect(version.status == 0)
        #expect(version.output.hasPrefix("cachesync "))
        let missing = try CacheSyncProcess.runCommand(["check-config", "--config", "/nonexistent/cachesync.yaml"])
        #expect(missing.status == 2)
        #expect(missing.output.contains("/nonexistent/cachesync.yaml"))
    }

    @Test("check-config shows a collection's ttl over defaults.ttl: base alone keeps the default tiers, tiers: [] has none")
    func ttlOverridesFieldByField() throws {
        let path = try write("""
            mongodb: { uri: "mongodb://127.0.0.1:27017", database: shop }
            defaults:
              ttl: { base: 300, tiers: [{ minAccesses: 1000, ttl: 3600 }, { minAccesses: 10, ttl: 900 }] }
            collections:
              products: { strategy: update, ttl: { base: 60 } }
              carts: { strategy: update, ttl: { tiers: [] } }
            """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try CacheSyncProcess.runCommand(["check-config", "--config", path])
        #expect(result.status == 0, "\(result.output)")
        let sections = result.output.components(separatedBy: "    strategy: update\n")
        try #require(sections.count == 3, "\(result.output)")
        #expect(sections[1].contains("""
                ttl:
                  base: 60
                  tiers:
                    - { minAccesses: 1000, ttl: 3600 }
                    - { minAccesses: 10, ttl: 900 }

            """), "products: \(sections[1])")
        #expect(sections[2].contains("""
                ttl:
                  base: 300
                  tiers: []

            """), "carts: \(sections[2])")
    }

    @Test("--version and the version command print the same line")
    func versionFlagMatchesCommand() throws {
        let command = try CacheSyncProcess.runCommand(["version"])
        let flag = try CacheSyncProcess.runCommand(["--version"])
        #expect(command.status == 0 && flag.status == 0)
        #expect(flag.output == command.output, "--version printed \(flag.output), version printed \(command.output)")
        #expect(flag.output.hasPrefix("cachesync "), "\(flag.output)")
    }

    @Test("run exits 1 with a message naming http.listen when the port is taken")
    func portInUse() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        try #require(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let config = Self.valid.replacingOccurrences(of: "collections:", with: "http:\n  listen: \"127.0.0.1:\(port)\"\ncollections:")
            .replacingOccurrences(of: "127.0.0.1:27017", with: "127.0.0.1:1")
            .replacingOccurrences(of: "127.0.0.1:6379", with: "127.0.0.1:1")
        let sidecar = try CacheSyncProcess(config: config)
        try sidecar.start()
        #expect(sidecar.process.waitForExit(timeout: .seconds(15)), "cachesync kept running although its port is taken")
        #expect(sidecar.process.exitStatus == 1)
        #expect(sidecar.log.contains("http.listen 127.0.0.1:\(port): cannot serve the HTTP API"), "\(sidecar.log.suffix(2000))")
    }

    @Test("a running cachesync makes no libmongoc counters file in /dev/shm (one left by a killed process made a later one warn)")
    func noSharedMemoryCounters() throws {
        let config = Self.valid.replacingOccurrences(of: "collections:", with: "http:\n  listen: \"127.0.0.1:\(try FreePort.next())\"\ncollections:")
            .replacingOccurrences(of: "127.0.0.1:27017", with: "127.0.0.1:1")
            .replacingOccurrences(of: "127.0.0.1:6379", with: "127.0.0.1:1")
        let sidecar = try CacheSyncProcess(config: config)
        let started = Date()
        try sidecar.start()
        #expect(sidecar.waitForLog("redis", timeout: .seconds(15)), "\(sidecar.log.suffix(2000))")
        let pid = try #require(sidecar.process.pid, "cachesync exited: \(sidecar.log.suffix(2000))")
        // A file at the path may be a stale one of an earlier process that had the same pid (this machine keeps
        // them): only one made since this process started is its own.
        let path = "/dev/shm/mongoc-\(pid)"
        if let made = try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date {
            #expect(made < started, "cachesync made \(path)")
        }
        #expect(!sidecar.log.contains("Falling back to malloc for counters"))
    }
}
