import Foundation

/// The secrets tests hand to cachesync (passwords, private keys), so that everything cachesync prints can be
/// searched for them: `CacheSyncProcess` checks its log and every one-shot command's output, `HTTPHarness` every
/// response body. A secret found is reported naming where and which secret, never the secret itself: on standard
/// error and in the file `CACHESYNC_SECRET_LEAKS` names, which `scripts/test.sh` fails on when it is not empty.
/// (TestSupport cannot record a Swift Testing issue itself: the benchmark links it too.)
public enum TestSecrets {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var secrets: [String: String] = [:]

    /// Registers `secret` (at least 6 characters, so it cannot match by chance) under a description, with its
    /// percent-encoded form (as it appears in URLs).
    public static func register(_ secret: String, as description: String) {
        guard secret.count >= 6 else { return }
        let encoded = percentEncoded(secret)
        lock.withLock {
            secrets[secret] = description
            secrets[encoded] = description + " (percent-encoded)"
        }
    }

    /// `text` percent-encoded as a URL's user or password part: everything but the unreserved characters
    /// (`RedisTestServer.sidecarURL` writes its password so, and a leak of that form must be found too).
    public static func percentEncoded(_ text: String) -> String {
        let unreserved = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        return text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? text
    }

    /// Registers the body of a PEM private key file (its longest base64 line).
    public static func registerPrivateKey(file: String) {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return }
        if let line = text.split(separator: "\n").filter({ !$0.hasPrefix("-----") }).max(by: { $0.count < $1.count }) {
            register(String(line), as: "the private key \(URL(fileURLWithPath: file).lastPathComponent)")
        }
    }

    /// What registered secrets `text` holds, as their descriptions.
    public static func found(in text: String) -> [String] {
        lock.withLock { secrets.filter { text.contains($0.key) }.map(\.value) }.sorted()
    }

    /// Reports every registered secret in `text`, which came from `source`.
    public static func check(_ text: String, from source: String) {
        let leaks = found(in: text).map { "\(source) printed \($0)\n" }.joined()
        guard !leaks.isEmpty else { return }
        FileHandle.standardError.write(Data(("SECRET LEAK: " + leaks).utf8))
        guard let path = ProcessInfo.processInfo.environment["CACHESYNC_SECRET_LEAKS"], !path.isEmpty else { return }
        lock.withLock {
            if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
            if let handle = FileHandle(forWritingAtPath: path) {
                handle.seekToEndOfFile()
                handle.write(Data(leaks.utf8))
                try? handle.close()
            }
        }
    }
}
