import ArgumentParser
import CacheSync
import CacheSyncCore
import Foundation
import RedisBridge
import MongoBridge
import TestSupport

/// `cachesync-bench`: measures the apply path, the end-to-end path and the footprint, each beside the limit of
/// the same machine, and prints the figures as Markdown for BENCHMARKS.md. Progress goes to standard error.
@main
struct CacheSyncBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cachesync-bench",
        abstract: "Benchmarks cachesync against a local redis-server and nx-27017 (the release build beside it).")

    @Option(help: "Synthetic events per strategy, loop and round for the apply path (rounded down to whole chunks).")
    var events = 98_304

    @Option(help: "Events per chunk of the apply path: a round runs the two loops in turns of a chunk each (rounded down to whole batches of 256, at most 10,240).")
    var chunkEvents = 8_192

    @Option(help: "Rounds of the apply-path benchmark: each round's ratio and each loop's best round are reported.")
    var rounds = 7

    @Flag(inversion: .prefixedNo, help: "Pin the apply path's benchmark thread and Redis to two different CPUs, swapped every two turns.")
    var pin = true

    @Option(name: .customLong("strategy"), help: "Only this strategy in the apply-path benchmark (repeatable; default: all three).")
    var strategies: [StrategyKind] = []

    @Option(help: "The apply path's batch window in milliseconds (default: the pipeline's, 5 ms). A profiler that slows the process needs a longer one, or batches end before they are full.")
    var batchWindowMs: Double?

    @Option(help: "Inserts in the bulk end-to-end run.")
    var bulk = 20_000

    @Option(help: "Inserts in each lag run.")
    var lagWrites = 3_000

    @Option(help: "Writes per second in the lag runs.")
    var rate = 300.0

    @Option(help: "How many starts the start-to-ready time is the median of.")
    var readyRuns = 5

    @Flag(help: "Skip the apply-path benchmark.")
    var skipApply = false

    @Flag(help: "Skip the end-to-end benchmark.")
    var skipEndToEnd = false

    @Flag(help: "Skip the TLS benchmark (the apply path and start-to-ready over TLS beside plaintext).")
    var skipTLS = false

    @Option(help: "Collections of the idle-footprint run (0 skips it).")
    var idleCollections = 50

    @Option(help: "Documents of the warm-up run: the binary warming a collection up beside a plain find of it (0 skips it).")
    var warmupDocuments = 50_000

    @Flag(help: "Skip the Redis Cluster benchmark (the apply path on three masters beside a raw loop to the same nodes, and the end-to-end figures on a 6-node cluster beside one server).")
    var skipCluster = false

    @Flag(help: "In the Redis Cluster benchmark, only the apply path (no end-to-end run on six nodes).")
    var clusterApplyOnly = false

    mutating func run() throws {
        _ = MetricsBootstrap.bootstrap()
        var out = ""
        if !skipApply {
            out += try applySection()
        }
        var single: EndToEndBenchmark.Result?
        if !skipEndToEnd {
            let (text, result) = try endToEndSection()
            out += text
            single = result
        }
        if !skipTLS {
            out += try tlsSection()
        }
        if !skipCluster {
            out += try clusterSection(single: single)
        }
        if idleCollections > 0 {
            FileHandle.standardError.write(Data("bench: \(idleCollections) idle collections\n".utf8))
            let idle = try EndToEndBenchmark.idleFootprint(collections: idleCollections)
            out += """
                ### \(idleCollections) idle collections (release binary, nx-27017, one stream each, lease on)

                | measure | cachesync | of which private (`RssAnon`) | target |
                |---|---|---|---|
                | start to ready | \(Self.ms(idle.ready * 1000)) | | |
                | CPU, idle, over 10 s | \(Self.percent(idle.cpu)) of a core | | ≤ 5% |
                | resident memory, peak while idle | \(Self.mib(idle.rss)) | ≤ 48 MiB |


                """
        }
        if warmupDocuments > 0 {
            out += try warmupSection()
        }
        print(out, terminator: "")
    }

    private func warmupSection() throws -> String {
        let r = try WarmupBenchmark(documents: warmupDocuments, shares: [0.5, 1]).run()
        var text = """
            ### Warm-up of \(r.documents) documents (release binary, nx-27017 in memory, `strategy: update`, chunks of 1,024)

            | measure | cachesync | of which private (`RssAnon`) | target |
            |---|---|---|---|
            | plain `find` of the whole collection, best of 3 | \(Self.rate(r.findRate)) documents/s | | |

            """
        for run in r.warmupRates {
            text += "| warm-up, `share: \(run.share)`: \(Self.seconds(run.seconds)) | \(Self.rate(run.rate)) documents/s, \(Self.percent(run.rate / r.findRate)) of the find | | ≥ 50% of the find |\n"
            text += "| resident memory, peak from start to the end of the warm-up (`share: \(run.share)`) | \(Self.mib(run.rss)) | |\n"
        }
        text += "| resident memory, peak without warm-up, same collection and time | \(Self.mib(r.noWarmupRSS)) | |\n\n"
        return text
    }

    private func applySection() throws -> String {
        let redis = try RedisTestServer()
        defer { redis.cleanUp() }
        var limits = ChangePipeline.Limits()
        if let batchWindowMs { limits.batchWindow = batchWindowMs / 1000 }
        let benchmark = ApplyBenchmark(redisPort: redis.port, events: events, chunkEvents: chunkEvents, pinned: pin,
                                       limits: limits)
        FileHandle.standardError.write(Data("bench: apply path, \(rounds) rounds of \(benchmark.events) events per strategy and loop, in turns of \(benchmark.chunkEvents)\n".utf8))
        let results = try benchmark.run(rounds: rounds, strategies: strategies)
        var text = """
            ### Apply path (synthetic real-format events → decode → plan → batch → atomic Redis step)

            \(rounds) rounds; in each, both loops apply the same \(benchmark.events) events per strategy, in turns of \(benchmark.chunkEvents).

            | strategy | ratio per round: median (range) (target ≥ 50%) | cachesync apply path, best round | raw pipelined hiredis, same commands, best round | Redis CPU per event: cachesync / raw | client CPU per event: cachesync / raw |
            |---|---|---|---|---|---|

            """
        for r in results {
            text += "| \(r.strategy) | \(Self.percent(Measure.percentile(r.roundRatios, 0.5))) (\(Self.percent(r.roundRatios.min() ?? 0))–\(Self.percent(r.roundRatios.max() ?? 0))) | \(Self.rate(r.pipelineRate)) events/s | \(Self.rate(r.rawRate)) events/s | \(String(format: "%.2f", r.pipelineRedisMicros)) µs / \(String(format: "%.2f", r.rawRedisMicros)) µs | \(String(format: "%.2f", r.pipelineClientMicros)) µs / \(String(format: "%.2f", r.rawClientMicros)) µs |\n"
        }
        if let ceiling = redisBenchmark(port: redis.port) {
            text += "\nFor scale: `redis-benchmark -P 64 -t set -d 300` on the same server: \(Self.rate(ceiling)) SET/s.\n"
        }
        return text + "\n"
    }

    /// The apply path on a 3-master cluster (no replicas, so no `WAIT`) beside the raw loop, and the end-to-end run on
    /// a 6-node cluster beside the one on one server (run here when the end-to-end section was skipped).
    private func clusterSection(single: EndToEndBenchmark.Result?) throws -> String {
        let bed = try RedisClusterBed(replicas: false)
        defer { bed.cleanUp() }
        var limits = ChangePipeline.Limits()
        if let batchWindowMs { limits.batchWindow = batchWindowMs / 1000 }
        let benchmark = ApplyBenchmark(redisPort: bed.nodes[0].port, events: events, chunkEvents: chunkEvents, pinned: false,
                                       limits: limits)
        FileHandle.standardError.write(Data("bench: apply path on a 3-master cluster, \(rounds) rounds\n".utf8))
        let results = try benchmark.runCluster(rounds: rounds, cluster: bed.client(), seedPort: bed.nodes[0].port,
                                               strategies: strategies)
        var text = """
            ### Redis Cluster: apply path on three masters (no replicas), one fenced script per master

            \(rounds) rounds; in each, both loops apply the same \(benchmark.events) events per strategy, in turns of \(benchmark.chunkEvents). The raw loop sends the same writes as plain commands (each op's lease `UNLINK` and write, a `GET` per access counter, the checkpoint) pipelined to each key's master, every master's part written before any reply is read (as cachesync does).

            | strategy | ratio per round: median (range) (target ≥ 50%) | cachesync on the cluster, best round | raw pipelined hiredis to the same masters, best round | Redis CPU per event (three masters): cachesync / raw | client CPU per event: cachesync / raw |
            |---|---|---|---|---|---|

            """
        for r in results {
            text += "| \(r.strategy) | \(Self.percent(Measure.percentile(r.roundRatios, 0.5))) (\(Self.percent(r.roundRatios.min() ?? 0))–\(Self.percent(r.roundRatios.max() ?? 0))) | \(Self.rate(r.pipelineRate)) events/s | \(Self.rate(r.rawRate)) events/s | \(String(format: "%.2f", r.pipelineRedisMicros)) µs / \(String(format: "%.2f", r.rawRedisMicros)) µs | \(String(format: "%.2f", r.pipelineClientMicros)) µs / \(String(format: "%.2f", r.rawClientMicros)) µs |\n"
        }
        if clusterApplyOnly { return text + "\n" }
        let single = try single ?? EndToEndBenchmark(bulkWrites: bulk, lagWrites: lagWrites, rate: rate, readyRuns: readyRuns).run()
        var clustered = EndToEndBenchmark(bulkWrites: bulk, lagWrites: lagWrites, rate: rate, readyRuns: readyRuns)
        clustered.cluster = true
        let c = try clustered.run()
        func row(_ name: String, _ value: (EndToEndBenchmark.Result) -> String) -> String {
            "| \(name) | \(value(single)) | \(value(c)) |\n"
        }
        text += """

            ### Redis Cluster: end to end (release binary, three collections; 6 nodes: three masters with a replica each, so every batch waits for one replica)

            | measure | one redis-server | 6-node cluster |
            |---|---|---|

            """
        text += row("\(bulk) bulk inserts: cachesync / bare change stream") { r in
            "\(Self.seconds(r.bulkSidecar)) / \(Self.seconds(r.bulkReference)) (\(String(format: "%.2f", r.bulkSidecar / r.bulkReference))×)"
        }
        text += row("lag p50 / p99 at \(Int(rate)) writes/s") { r in
            "\(Self.ms(Measure.percentile(r.sidecarLags, 0.5) * 1000)) / \(Self.ms(Measure.percentile(r.sidecarLags, 0.99) * 1000))"
        }
        text += row("start to ready, median") { r in Self.ms(Measure.percentile(r.readySeconds, 0.5) * 1000) }
        text += row("resident memory, peak in the bulk run") { r in String(format: "%.1f MiB", r.bulkRSS.resident) }
        text += row("CPU at \(Int(rate)) writes/s") { r in "\(Self.percent(r.lagCPU)) of a core" }
        return text + "\n"
    }

    /// The end-to-end section, and its figures for the cluster section.
    private func endToEndSection() throws -> (String, EndToEndBenchmark.Result) {
        let r = try EndToEndBenchmark(bulkWrites: bulk, lagWrites: lagWrites, rate: rate, readyRuns: readyRuns).run()
        let bulkRatio = r.bulkSidecar / r.bulkReference
        let refP50 = Measure.percentile(r.referenceLags, 0.5) * 1000, refP99 = Measure.percentile(r.referenceLags, 0.99) * 1000
        let p50 = Measure.percentile(r.sidecarLags, 0.5) * 1000, p99 = Measure.percentile(r.sidecarLags, 0.99) * 1000
        let readyMedian = Measure.percentile(r.readySeconds, 0.5) * 1000, readyMax = r.readySeconds.max()! * 1000
        return ("""
            ### End to end through nx-27017 (release binary, three watched collections)

            Both columns time the same writes: a bare libmongoc change stream on the same collection reads them
            while cachesync applies them. Times run from the first write.

            | measure | bare change stream (nx-27017's own delivery) | cachesync (write → key in Redis) | target |
            |---|---|---|---|
            | \(r.bulkWrites) bulk inserts (insert_many × 1,000; MongoDB accepted them in \(Self.seconds(r.bulkAccepted))) | \(Self.seconds(r.bulkReference)) | \(Self.seconds(r.bulkSidecar)) (\(String(format: "%.2f", bulkRatio))×) | ≤ 1.2× |
            | lag p50 at \(Int(r.rate)) writes/s (\(r.lagWrites) writes) | \(Self.ms(refP50)) | \(Self.ms(p50)) | |
            | lag p99 at \(Int(r.rate)) writes/s | \(Self.ms(refP99)) | \(Self.ms(p99)) (+\(Self.ms(p99 - refP99))) | ≤ +50 ms |
            | lag max | \(Self.ms(r.referenceLags.max()! * 1000)) | \(Self.ms(r.sidecarLags.max()! * 1000)) | |

            | footprint | cachesync | of which private (`RssAnon`) | target |
            |---|---|---|---|
            | start to ready (`/readyz` 200), median / max of \(r.readySeconds.count) | \(Self.ms(readyMedian)) / \(Self.ms(readyMax)) | | ≤ 300 ms |
            | resident memory, idle | \(Self.mib(r.idleRSS)) | |
            | resident memory, peak at \(Int(r.rate)) writes/s | \(Self.mib(r.steadyRSS)) | < 40 MB (38.1 MiB) |
            | resident memory, peak in the bulk run | \(Self.mib(r.bulkRSS)) | < 40 MB (38.1 MiB) |
            | resident memory, peak in a burst of \(r.bulkWrites / 2) inserts into each collection | \(Self.mib(r.burstRSS)) | < 40 MB (38.1 MiB) |
            | CPU, idle (three streams) | \(Self.percent(r.idleCPU)) of a core | | |
            | CPU at \(Int(r.rate)) writes/s | \(Self.percent(r.lagCPU)) of a core | | |


            """, r)
    }

    /// The apply path over TLS beside plaintext, one TLS connection's setup beside a plaintext one's, and the
    /// binary's start-to-ready against a TLS-only Redis beside a plaintext one (starts alternating).
    private func tlsSection() throws -> String {
        let plain = try RedisTestServer()
        let secure = try RedisTestServer(.init(tls: .init()))
        let mongo = try MongoTestServer(.init(inMemory: true))
        defer {
            plain.cleanUp()
            secure.cleanUp()
            mongo.cleanUp()
        }
        var limits = ChangePipeline.Limits()
        if let batchWindowMs { limits.batchWindow = batchWindowMs / 1000 }
        let benchmark = ApplyBenchmark(redisPort: plain.port, events: events, chunkEvents: chunkEvents, pinned: false,
                                       limits: limits)
        FileHandle.standardError.write(Data("bench: apply path over TLS and plaintext, \(rounds) rounds\n".utf8))
        let results = try benchmark.runTLS(rounds: rounds, tls: secure.connectionOptions(), strategies: strategies)

        FileHandle.standardError.write(Data("bench: connection setup and start to ready, TLS and plaintext\n".utf8))
        func setupMillis(_ server: RedisTestServer) throws -> Double {
            let times = try (0..<50).map { _ in
                let started = Measure.now()
                _ = try server.connect().command(["PING"])
                return (Measure.now() - started) * 1000
            }
            return Measure.percentile(times, 0.5)
        }
        let tlsSetup = try setupMillis(secure), plainSetup = try setupMillis(plain)
        let pool = try MongoClientPool(uri: mongo.uri)
        for name in ["products", "users", "sessions"] {
            try pool.insertOne(MongoNamespace(database: mongo.database, collection: name), ["_id": .string("warmup")])
        }
        let caFile = try TestCertificates.shared().caFile
        var ready: [Bool: [Double]] = [true: [], false: []]
        for run in 0..<(2 * readyRuns) {
            let overTLS = run % 2 == 0
            let server = overTLS ? secure : plain
            let httpPort = try FreePort.next()
            let redis = overTLS
                ? "{ url: \"rediss://127.0.0.1:\(server.port)/0\", tls: { caFile: \"\(caFile)\" } }"
                : "{ url: \"redis://127.0.0.1:\(server.port)/0\" }"
            let process = try CacheSyncProcess(config: """
                mongodb: { uri: "\(mongo.uri)", database: \(mongo.database) }
                redis: \(redis)
                http: { listen: "127.0.0.1:\(httpPort)" }
                collections:
                  products: { strategy: update }
                  users: { strategy: invalidate }
                  sessions: { strategy: preserve-ttl }
                """, environment: ["CACHESYNC_INSTANCE_ID": "bench-ready-\(run)"])
            let started = Measure.now()
            try process.start()
            guard waitUntil(timeout: .seconds(20), { EndToEndBenchmark.isReady(port: httpPort) }) else {
                throw BenchError("cachesync did not become ready; its log:\n\(process.log)")
            }
            ready[overTLS]!.append(Measure.now() - started)
            process.process.stop()
        }
        let tlsReady = Measure.percentile(ready[true]!, 0.5) * 1000, plainReady = Measure.percentile(ready[false]!, 0.5) * 1000
        var text = """
            ### Redis over TLS (TLS-only redis-server beside a plaintext one, same machine)

            \(rounds) rounds; in each, the apply path runs the same \(benchmark.events) events per strategy through a TLS
            connection and a plaintext one, in turns of \(benchmark.chunkEvents).

            | strategy | TLS over plaintext per round: median (range) (target ≥ 70%) | over TLS, best round | plaintext, best round |
            |---|---|---|---|

            """
        for r in results {
            text += "| \(r.strategy) | \(Self.percent(Measure.percentile(r.roundRatios, 0.5))) (\(Self.percent(r.roundRatios.min() ?? 0))–\(Self.percent(r.roundRatios.max() ?? 0))) | \(Self.rate(r.tlsRate)) events/s | \(Self.rate(r.plainRate)) events/s |\n"
        }
        text += """

            | connecting | TLS | plaintext |
            |---|---|---|
            | one connection: connect (+ handshake) and PING, median of 50 | \(Self.ms(tlsSetup)) | \(Self.ms(plainSetup)) |
            | start to ready (`/readyz` 200), median of \(readyRuns) starts each, alternating | \(Self.ms(tlsReady)) | \(Self.ms(plainReady)) |

            The TLS handshake's share of start-to-ready: \(Self.percent(max(0, tlsReady - plainReady) / tlsReady)) \
            (the difference of the two medians over the TLS one).


            """
        return text
    }

    /// A peak as two table cells: resident and private MiB.
    private static func mib(_ peak: ResidentMemorySampler.Peak) -> String {
        String(format: "%.1f MiB | %.1f MiB", peak.resident, peak.private)
    }

    /// `redis-benchmark -P 64` SET requests per second on the server, or `nil` when it cannot run.
    private func redisBenchmark(port: Int) -> Double? {
        guard let executable = TestProcess.find("redis-benchmark") else { return nil }
        let process = Process()
        process.executableURL = executable
        process.arguments = ["-p", String(port), "-P", "64", "-t", "set", "-d", "300", "-n", "1000000", "-q"]
        let pipe = Pipe()
        process.standardOutput = pipe
        guard (try? process.run()) != nil else { return nil }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        // "SET: 1234567.89 requests per second, p50=…"; progress lines end with \r.
        guard let line = output.split(whereSeparator: { $0 == "\r" || $0 == "\n" }).last(where: { $0.contains("requests per second") }),
              let number = line.split(separator: " ").dropFirst().first
        else { return nil }
        return Double(number)
    }

    private static func rate(_ value: Double) -> String { value.formatted(.number.precision(.fractionLength(0))) }
    private static func percent(_ value: Double) -> String { String(format: "%.1f%%", value * 100) }
    private static func seconds(_ value: Double) -> String { String(format: "%.2f s", value) }
    private static func ms(_ value: Double) -> String { String(format: "%.1f ms", value) }
}

extension StrategyKind: ExpressibleByArgument {}
