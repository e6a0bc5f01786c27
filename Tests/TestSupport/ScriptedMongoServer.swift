import Foundation

/// The scripted change-stream server (`Tests/Scripted/changestream_server.py`) for one test: it plays a fixed
/// scenario of change events in the real MongoDB format and records every command it receives.
///
/// Prefer `withScriptedMongoServer(…) { server in … }`, which always stops the server and removes its directory.
public final class ScriptedMongoServer: @unchecked Sendable {
    /// One change event the server sent, as listed in its record.
    public struct SentEvent: Sendable, Equatable {
        /// The event's number in the script.
        public var seq: Int
        /// Its `operationType`.
        public var operationType: String
        /// Its resume token (`_id._data`, uppercase hex).
        public var token: String
    }

    /// The scenario it plays (`basic`, `history_lost`, `resumable`, `drop`, `rename`, `dropDatabase`, `hostile`).
    public let scenario: String
    /// The database of the scripted namespace.
    public let database: String
    /// The collection of the scripted namespace.
    public let collection: String
    /// The port it listens on, on 127.0.0.1.
    public let port: Int
    /// The temporary directory holding the record and the server's output.
    public let directory: URL
    /// The JSON-lines record of every command received.
    public let recordURL: URL

    private let process: TestProcess

    /// Starts the server and waits for its `READY <port>` line.
    ///
    /// `collection` defaults to the scenario's own (`items`, or a unicode name for `hostile`);
    /// `extraArguments` are passed on (e.g. `["--fail-resumes", "2"]`).
    public init(scenario: String, database: String = "app", collection: String? = nil,
                extraArguments: [String] = [], timeout: Duration = .seconds(20)) throws {
        self.scenario = scenario
        self.database = database
        self.collection = collection ?? (scenario == "hostile" ? "ünï cödé ☃ 集合 coll" : "items")
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("cachesync-scripted-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        recordURL = directory.appendingPathComponent("record.jsonl")
        guard let python = Self.python else {
            throw TestServerError.executableNotFound(name: "python3", hint: "install python3 with mockupdb and pymongo")
        }
        let arguments = [Self.script.path, "--scenario", scenario, "--db", database, "--coll", self.collection,
                         "--record", recordURL.path, "--port", "0"] + extraArguments
        process = TestProcess(executable: python, arguments: arguments,
                              outputURL: directory.appendingPathComponent("server.out"))
        try process.start()
        var readyPort: Int?
        let process = process
        _ = waitUntil(timeout: timeout) {
            readyPort = Self.readyPort(in: process.output)
            return readyPort != nil || !process.isRunning
        }
        guard let readyPort else {
            let output = process.output
            process.kill()
            if let status = process.exitStatus {
                throw TestServerError.exited(server: "scripted server (\(scenario))", status: status, log: output)
            }
            throw TestServerError.notReady(server: "scripted server (\(scenario))", log: output)
        }
        port = readyPort
    }

    deinit {
        process.kill()
        try? FileManager.default.removeItem(at: directory)
    }

    /// The connection string for cachesync: a direct connection to this server.
    public var uri: String {
        "mongodb://127.0.0.1:\(port)/?directConnection=true"
    }

    /// Whether the server process runs.
    public var isRunning: Bool { process.isRunning }

    /// What the server printed (its `READY` line and diagnostics), for failure messages.
    public var log: String { process.output }

    /// Stops the server with SIGTERM and removes its directory.
    public func cleanUp() {
        process.stop(timeout: .seconds(5))
        try? FileManager.default.removeItem(at: directory)
    }

    /// Every complete line of the record, parsed (a line being written is left out).
    public var records: [[String: Any]] {
        guard let data = try? Data(contentsOf: recordURL) else { return [] }
        return data.split(separator: UInt8(ascii: "\n")).compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any]
        }
    }

    /// The recorded commands named `name` (`aggregate`, `getMore`, …), in order.
    public func commands(_ name: String) -> [[String: Any]] {
        records.filter { $0["command"] as? String == name }
    }

    /// The recorded `aggregate` commands that opened or tried to open a change stream, in order.
    public var aggregates: [[String: Any]] { commands("aggregate") }

    /// Every change event the server sent (in `firstBatch` or `nextBatch` replies), in order.
    public var sentEvents: [SentEvent] {
        records.flatMap { record -> [SentEvent] in
            guard let reply = record["reply"] as? [String: Any], let events = reply["events"] as? [[String: Any]] else {
                return []
            }
            return events.compactMap { event in
                guard let seq = (event["seq"] as? NSNumber)?.intValue, let type = event["operationType"] as? String,
                      let token = event["token"] as? String
                else { return nil }
                return SentEvent(seq: seq, operationType: type, token: token)
            }
        }
    }

    /// The record, as text, for failure messages.
    public var recordText: String {
        (try? String(contentsOf: recordURL, encoding: .utf8)) ?? "(no record)"
    }

    /// A `cachesync run` config that watches this server's scripted collection and writes to `redis`; the
    /// collection is named with its `database` field, so a name with a dot works too.
    ///
    /// Cache keys go under `keyPrefix` and checkpoints under `<keyPrefix>cachesync:`; `settings` are more lines of
    /// the collection's settings (e.g. `"onHistoryLost: fail"`); `lease: false` writes `lease: { enabled: false }`.
    /// The HTTP endpoints listen on `127.0.0.1:<httpPort>`.
    public func cachesyncConfig(redis: RedisTestServer, keyPrefix: String, httpPort: Int, strategy: String = "update",
                                settings: [String] = [], lease: Bool = true) -> String {
        var lines = [
            "mongodb:",
            "  uri: \(Self.yamlQuoted(uri))",
            "  database: \(Self.yamlQuoted(database))",
            "redis:",
            "  url: \(Self.yamlQuoted(redis.sidecarURL()))",
            "  keyPrefix: \(Self.yamlQuoted(keyPrefix))",
            "http:",
            "  listen: \(Self.yamlQuoted("127.0.0.1:\(httpPort)"))",
            "checkpoint:",
            "  keyPrefix: \(Self.yamlQuoted(keyPrefix + "cachesync:"))",
        ]
        if !lease { lines.append("lease: { enabled: false }") }
        lines += [
            "shutdownTimeout: 5",
            "collections:",
            "  \(Self.yamlQuoted(collection)):",
            "    database: \(Self.yamlQuoted(database))",
            "    strategy: \(strategy)",
        ]
        lines += settings.map { "    " + $0 }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `text` as a YAML double-quoted scalar.
    private static func yamlQuoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// The resume token of event number `seq` (computed the way the server makes it).
    public static func eventToken(seq: Int) -> String {
        "82" + "66575740" + hex(seq, width: 8) + "2B0229" + hex(seq, width: 6) + "0004"
    }

    /// The high-water-mark token for script position `position` after event `after` (0: the start).
    public static func highWaterToken(after: Int, position: Int) -> String {
        "82" + "66575740" + hex(after, width: 8) + "2B0429" + hex(position, width: 6) + "0004"
    }

    private static func hex(_ value: Int, width: Int) -> String {
        let text = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }

    /// The port in the first `READY <port>` line of `output`.
    private static func readyPort(in output: String) -> Int? {
        for line in output.split(separator: "\n") where line.hasPrefix("READY ") {
            if let port = Int(line.dropFirst("READY ".count).trimmingCharacters(in: .whitespaces)) { return port }
        }
        return nil
    }

    /// The package root: three levels above this file.
    private static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// `Tests/Scripted/changestream_server.py` in the package.
    private static var script: URL {
        packageRoot.appendingPathComponent("Tests/Scripted/changestream_server.py")
    }

    /// The project venv's python (`.venv/bin/python` in the package root) if there is one, else `python3` on PATH.
    private static var python: URL? {
        let venv = packageRoot.appendingPathComponent(".venv/bin/python")
        if FileManager.default.isExecutableFile(atPath: venv.path) { return venv }
        return TestProcess.find("python3")
    }
}

/// Runs `body` with a scripted server that is stopped (and its directory removed) when `body` returns or throws.
///
/// When `body` throws, the server's output and record are printed to help explain the failure.
public func withScriptedMongoServer<R>(
    scenario: String, database: String = "app", collection: String? = nil, extraArguments: [String] = [],
    _ body: (ScriptedMongoServer) throws -> R
) throws -> R {
    let server = try ScriptedMongoServer(scenario: scenario, database: database, collection: collection,
                                         extraArguments: extraArguments)
    defer { server.cleanUp() }
    do {
        return try body(server)
    } catch {
        print("scripted server (\(scenario)) on port \(server.port) failed a test with \(error); its output:\n"
              + "\(server.log)\n--- record ---\n\(server.recordText)")
        throw error
    }
}
