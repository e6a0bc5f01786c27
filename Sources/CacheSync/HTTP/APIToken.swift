import Foundation
import Glibc
import Logging

/// The read-through API's bearer token, from `http.api.tokenFile` (its first line). Read at start, where an
/// unreadable or empty file stops the start; read again when the file changes (device, inode, size or modification
/// time through symlinks, as a mounted Secret's file is one; looked at no more than once a second), so a rotated
/// Kubernetes Secret takes effect without a restart. A file that turns unreadable or empty later keeps the last
/// token and logs a warning: a Secret being swapped neither opens the API nor locks it. Compared in constant time.
final class APIToken: @unchecked Sendable {
    /// The token file cannot be used at start.
    struct Unreadable: Error, CustomStringConvertible {
        let description: String
    }

    private let file: String
    private let logger: Logger
    private let lock = NSLock()
    /// `Bearer <token>`, as the header must read.
    private var expected: [UInt8]
    /// What `stat` (which follows symlinks, as a mounted Secret's are) said of the file at the last read.
    private var stamp: [Int]
    private var lastLook = ContinuousClock.now

    /// The token in `file`.
    init(file: String, logger: Logger) throws(Unreadable) {
        self.file = file
        self.logger = logger
        stamp = Self.stamp(of: file)
        guard let token = Self.read(file) else {
            throw Unreadable(description: "http.api.tokenFile: cannot read a token from \(file) (missing, unreadable or empty)")
        }
        expected = Array("Bearer \(token)".utf8)
    }

    /// Whether an `Authorization` header value carries the token.
    func accepts(_ authorization: String?) -> Bool {
        let expected = current()
        let given = Array((authorization ?? "").utf8)
        // Every byte of the longer is looked at whatever differs, so the time tells nothing of where.
        var difference = UInt8(truncatingIfNeeded: given.count ^ expected.count)
        for index in 0..<max(given.count, expected.count) {
            let a = index < given.count ? given[index] : 0
            let b = index < expected.count ? expected[index] : 0
            difference |= a ^ b
        }
        return difference == 0 && given.count == expected.count
    }

    /// The expected header value, read again when the file changed.
    private func current() -> [UInt8] {
        lock.withLock {
            let now = ContinuousClock.now
            guard now - lastLook >= .seconds(1) else { return expected }
            lastLook = now
            let fresh = Self.stamp(of: file)
            guard fresh != stamp else { return expected }
            stamp = fresh
            if let token = Self.read(file) {
                expected = Array("Bearer \(token)".utf8)
                logger.info("http.api.tokenFile \(file) changed: the new token is in use")
            } else {
                logger.warning("http.api.tokenFile \(file) is missing, unreadable or empty; the last token stays in use")
            }
            return expected
        }
    }

    /// The file's device, inode, size and modification time; empty when it cannot be looked at.
    private static func stamp(of file: String) -> [Int] {
        var info = stat()
        guard stat(file, &info) == 0 else { return [] }
        return [Int(info.st_dev), Int(info.st_ino), Int(info.st_size), info.st_mtim.tv_sec, info.st_mtim.tv_nsec]
    }

    /// The first line of `file`, or `nil` when it cannot be read or is empty.
    private static func read(_ file: String) -> String? {
        guard let data = FileManager.default.contents(atPath: file) else { return nil }
        let line = String(decoding: data, as: UTF8.self).prefix { $0 != "\n" && $0 != "\r\n" && $0 != "\r" }
        return line.isEmpty ? nil : String(line)
    }
}
