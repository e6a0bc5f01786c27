import Foundation
import Glibc
import Testing
@testable import CacheSync

/// `FileWatch`, how `ConfigReloader` notices a new config: through symlinks, by stamp, then by text.
@Suite("Config file watch")
struct FileWatchTests {
    /// A fresh directory.
    static func directory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("filewatch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test("a ConfigMap's ..data symlink swapped to a new directory is seen; the same text again is not")
    func configMapSwap() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (version, text) in [(1, "a: 1\n"), (2, "a: 2\n"), (3, "a: 2\n")] {
            let folder = dir.appendingPathComponent("..v\(version)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try text.write(to: folder.appendingPathComponent("cachesync.yaml"), atomically: false, encoding: .utf8)
        }
        #expect(symlink("..v1", dir.appendingPathComponent("..data").path) == 0)
        let path = dir.appendingPathComponent("cachesync.yaml").path
        #expect(symlink("..data/cachesync.yaml", path) == 0)
        var watch = FileWatch(path: path)
        #expect(watch.text == "a: 1\n")
        #expect(watch.changedText() == nil)

        func swap(to version: Int) {
            let temporary = dir.appendingPathComponent("..data_tmp").path
            #expect(symlink("..v\(version)", temporary) == 0)
            #expect(rename(temporary, dir.appendingPathComponent("..data").path) == 0)
        }
        swap(to: 2)
        #expect(watch.changedText() == "a: 2\n")
        #expect(watch.changedText() == nil)
        // A new inode with the same text: nothing to reload.
        swap(to: 3)
        #expect(watch.changedText() == nil)
    }

    @Test("a rewrite in place and a rename into place are seen; a missing file is not a change, its return is")
    func rewrites() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("cachesync.yaml")
        try "a: 1\n".write(to: url, atomically: false, encoding: .utf8)
        var watch = FileWatch(path: url.path)
        try "a: 22\n".write(to: url, atomically: false, encoding: .utf8)
        #expect(watch.changedText() == "a: 22\n")
        try "a: 3\n".write(to: url, atomically: true, encoding: .utf8)
        #expect(watch.changedText() == "a: 3\n")
        try FileManager.default.removeItem(at: url)
        #expect(watch.changedText() == nil)
        try "a: 4\n".write(to: url, atomically: true, encoding: .utf8)
        #expect(watch.changedText() == "a: 4\n")
        #expect(watch.read() == "a: 4\n")
    }
}
