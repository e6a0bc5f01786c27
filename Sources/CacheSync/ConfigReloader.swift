import CacheSyncCore
import Foundation
import Glibc
import Logging
import ServiceLifecycle
import UnixSignals

/// Reloads the config file on SIGHUP and when the file changes (docs/ARCHITECTURE.md §3, "Reload").
///
/// The file is looked at once a second with `stat`, which follows symlinks: its device, inode, size and
/// modification time. A Kubernetes ConfigMap volume swaps the `..data` symlink to a new directory, so the path
/// resolves to a new inode; an editor's rename-into-place does the same, and a rewrite in place changes the size or
/// the time. Polling rather than inotify: a watch on the file itself is lost when the symlink is swapped, and a
/// watch on the directory would have to follow each link; one `stat` a second costs nothing and works the same on
/// every volume type, and kubelet's own delay in updating a ConfigMap (up to a minute) dwarfs the second. When the
/// stamp changed the file is read, and reloaded only if its text differs from the text last seen (a rejected text
/// is not tried again until it changes). SIGHUP reloads whatever the file holds.
///
/// A reload parses the text as `cachesync run` does; an invalid file is rejected with its `file:line` error. A
/// reload that changes a setting read only at start is rejected as a whole, naming the fields ("restart needed"):
/// what runs is always exactly one file's content. Otherwise `SyncService.reconfigure` stops the removed and
/// changed collections and starts the added and changed ones, and the HTTP side, through `LiveConfig`, and the
/// telemetry learn the new set. Each reload logs one line and counts in `cachesync_config_reloads_total{result}`.
struct ConfigReloader: Service {
    /// What set a reload off.
    enum Trigger: String, Sendable {
        case signal = "SIGHUP"
        case file = "file change"
    }

    /// How one reload ended.
    enum Result: String, Sendable {
        case applied, rejected, unchanged
    }

    /// The config file, as given to `cachesync run`.
    let path: String
    /// The config in force.
    let live: LiveConfig
    let sync: SyncService
    let telemetry: Telemetry
    let logger: Logger
    /// SIGHUP, trapped before the service group starts (its default action ends the process).
    let signals: UnixSignalsSequence?
    /// How often the file is looked at.
    var pollInterval: Duration = .seconds(1)

    /// Watches until graceful shutdown.
    func run() async throws {
        let (triggers, continuation) = AsyncStream<Trigger>.makeStream(bufferingPolicy: .bufferingNewest(4))
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                if let signals {
                    group.addTask {
                        for await _ in signals { continuation.yield(.signal) }
                    }
                }
                group.addTask { [pollInterval] in
                    while !Task.isCancelled {
                        try? await Task.sleep(for: pollInterval)
                        continuation.yield(.file)
                    }
                }
                var watch = FileWatch(path: path)
                // The file may have changed between the start's read and now.
                if let text = watch.text, (try? parse(text)) != live.current {
                    watch.seen = nil
                }
                // One reload at a time, in the order asked; ends when the service is cancelled.
                for await trigger in triggers {
                    guard let text = trigger == .signal ? watch.read() : watch.changedText() else { continue }
                    await reload(text, trigger: trigger)
                }
                group.cancelAll()
            }
        }
    }

    private func parse(_ text: String) throws(ConfigError) -> CacheSyncConfig {
        try ConfigLoader.parse(text: text, path: path, environment: ProcessInfo.processInfo.environment)
    }

    /// Reloads from `text` (the file's content, `nil` when it cannot be read).
    @discardableResult
    func reload(_ text: String?, trigger: Trigger) async -> Result {
        let metadata: Logger.Metadata = ["trigger": "\(trigger.rawValue)"]
        let new: CacheSyncConfig
        do {
            guard let text else {
                throw ConfigError(file: path, line: nil, message: "cannot read the config file")
            }
            new = try parse(text)
        } catch {
            return finish(.rejected, level: .error,
                          "config reload rejected: \(error); the running config stays", metadata)
        }
        let old = live.current
        let diff = ConfigDiff(old: old, new: new)
        if !diff.restartNeeded.isEmpty {
            return finish(.rejected, level: .error, """
                config reload rejected: \(diff.restartNeeded.joined(separator: ", ")) changed, which only a restart \
                applies (restart needed); the running config stays, nothing of the file was applied
                """, metadata)
        }
        if diff.collectionsUnchanged, old.mongodb.database == new.mongodb.database {
            return finish(.unchanged, level: .info, "config reloaded: nothing changed", metadata)
        }
        let applied = await sync.reconfigure(to: new, diff: diff) {
            telemetry.register((diff.added + diff.changed.map(\.new)).map(\.namespace))
            if !new.lease.enabled {
                diff.added.forEach { telemetry.setLeader($0.namespace, until: .infinity) }
            }
            diff.removed.forEach { telemetry.unregister($0.namespace) }
            live.replace(with: new)
        }
        guard applied else {
            return finish(.rejected, level: .warning, "config reload not applied: shutting down", metadata)
        }
        return finish(.applied, level: .notice, "config reloaded: \(diff.summary)", metadata)
    }

    private func finish(_ result: Result, level: Logger.Level, _ message: String, _ metadata: Logger.Metadata) -> Result {
        telemetry.configReloaded(result: result.rawValue)
        logger.log(level: level, "\(message)", metadata: metadata.merging(["result": "\(result.rawValue)"]) { $1 })
        return result
    }
}

/// The config file's stamp and last seen text.
struct FileWatch {
    let path: String
    /// Device, inode, size and modification time through symlinks; empty when the file cannot be looked at.
    private var stamp: [Int]
    /// The text last read (applied, unchanged or rejected); `nil` forces the next look to reload.
    var seen: String?

    init(path: String) {
        self.path = path
        stamp = Self.stamp(of: path)
        seen = Self.contents(of: path)
    }

    /// The text read at start.
    var text: String? { seen }

    /// The file's text now, remembered as seen.
    mutating func read() -> String? {
        stamp = Self.stamp(of: path)
        seen = Self.contents(of: path)
        return seen
    }

    /// The file's text when it changed since the last look, else `nil`.
    mutating func changedText() -> String? {
        let fresh = Self.stamp(of: path)
        guard fresh != stamp || seen == nil else { return nil }
        stamp = fresh
        guard let text = Self.contents(of: path), text != seen else { return nil }
        seen = text
        return text
    }

    private static func stamp(of path: String) -> [Int] {
        var info = stat()
        guard stat(path, &info) == 0 else { return [] }
        return [Int(info.st_dev), Int(info.st_ino), Int(info.st_size), info.st_mtim.tv_sec, info.st_mtim.tv_nsec]
    }

    private static func contents(of path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }
}
