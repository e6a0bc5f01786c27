import Foundation

/// Debian's `stunnel4` terminating TLS in front of a plaintext server on loopback, with the server certificate of
/// `TestCertificates` (names `127.0.0.1` and `localhost`): a TLS endpoint for a server that speaks no TLS itself.
public final class TLSTerminator: @unchecked Sendable {
    /// The TLS port.
    public let port: Int
    private let process: TestProcess
    private let directory: URL

    /// Accepts TLS on a free port and forwards the plaintext to `127.0.0.1:backendPort`; returns once it accepts.
    public init(backendPort: Int) throws {
        guard let executable = TestProcess.find("stunnel4") ?? TestProcess.find("stunnel") else {
            throw TestServerError.executableNotFound(name: "stunnel4", hint: "install stunnel4 (scripts/install.sh does)")
        }
        let certificates = try TestCertificates.shared()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("cachesync-stunnel-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        port = try FreePort.next()
        let conf = directory.appendingPathComponent("stunnel.conf")
        try """
            foreground = yes
            pid =
            [backend]
            accept = 127.0.0.1:\(port)
            connect = 127.0.0.1:\(backendPort)
            cert = \(certificates.serverCertFile)
            key = \(certificates.serverKeyFile)
            """.write(to: conf, atomically: true, encoding: .utf8)
        process = TestProcess(executable: executable, arguments: [conf.path],
                              outputURL: directory.appendingPathComponent("stunnel.out"))
        try process.start()
        let end = Date().addingTimeInterval(10)
        while TCPSocket(connectingTo: port, timeout: .milliseconds(200)).map({ $0.close(); return true }) == nil {
            guard process.isRunning, Date() < end else {
                throw TestServerError.notReady(server: "stunnel4", log: process.output)
            }
            usleep(20_000)
        }
    }

    deinit {
        process.kill()
        try? FileManager.default.removeItem(at: directory)
    }

    /// What stunnel printed, for failure messages.
    public var log: String { process.output }
}
