import ArgumentParser
import CacheSync
import CacheSyncCore
import Foundation

/// The `cachesync` command line (docs/ARCHITECTURE.md §2).
@main
struct CacheSyncCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cachesync",
        abstract: "Keeps a Redis cache in sync with MongoDB through change streams.",
        version: versionLine,
        subcommands: [Run.self, CheckConfig.self, Verify.self, Version.self])

    /// What `cachesync version` and `cachesync --version` print.
    static let versionLine = "cachesync \(cacheSyncVersion)"
}

/// Options every command that reads the config takes.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "Config file (default: $CACHESYNC_CONFIG, then ./cachesync.yaml).")
    var config: String?

    /// The config path after the fallbacks.
    var path: String {
        config ?? ProcessInfo.processInfo.environment["CACHESYNC_CONFIG"] ?? ConfigLoader.defaultPath
    }

    /// Loads the config, or prints the error and exits 2.
    func load() throws -> CacheSyncConfig {
        do {
            return try ConfigLoader.load(path: path)
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}

extension CacheSyncCommand {
    struct Version: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the version.")

        func run() {
            print(CacheSyncCommand.versionLine)
        }
    }

    struct CheckConfig: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check-config",
            abstract: "Validate the config and print the effective config, secrets redacted (exit 2 when invalid).")

        @OptionGroup var options: ConfigOptions

        @Flag(name: .long, help: "Print the least-privilege Redis ACL rule for this config instead (README \"Least privilege\").")
        var acl = false

        func run() throws {
            let config = try options.load()
            if acl {
                print("# The least-privilege Redis user for \(options.path) (README \"Least privilege\"); replace PASSWORD.")
                print(RedisACL.setUserCommand(config))
            } else {
                print(ConfigRenderer.render(config, redactSecrets: true), terminator: "")
            }
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the sidecar until SIGTERM or SIGINT.")

        @OptionGroup var options: ConfigOptions

        @Option(name: .long, help: "Log format: json (one object per line) or text.")
        var logFormat: LogFormat = .json

        @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
        var logLevel: String = "info"

        func run() async throws {
            let config = try options.load()
            let code = await Sidecar.run(config: config, logFormat: logFormat, logLevel: logLevel)
            if code != 0 { throw ExitCode(code) }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compare cached entries with MongoDB; list stale and orphan keys (exit 1 when any).")

        @OptionGroup var options: ConfigOptions

        @Option(name: .long, help: "Only this collection (as written in the config).")
        var collection: String?

        @Option(name: .long, help: "Check at most N keys per collection.")
        var sample: Int?

        func run() throws {
            let config = try options.load()
            let reports: [Verifier.CollectionReport]
            do {
                reports = try Verifier.run(config: config, collection: collection, sample: sample)
            } catch let error as Verifier.UnknownCollection {
                FileHandle.standardError.write(Data("verify: \(error)\n".utf8))
                throw ExitCode(2)
            } catch {
                FileHandle.standardError.write(Data("verify: \(error)\n".utf8))
                throw ExitCode(1)
            }
            for report in reports {
                report.findings.forEach { print($0) }
                print("\(report.namespace): checked \(report.checked) keys, \(report.staleCount) stale, "
                      + "\(report.findings.count - report.staleCount) orphans")
            }
            if reports.contains(where: { !$0.findings.isEmpty }) { throw ExitCode(1) }
        }
    }
}

extension LogFormat: ExpressibleByArgument {}
