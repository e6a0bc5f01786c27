import Foundation

/// Certificates for TLS tests, made once per test process with the `openssl` command line: a CA, a server
/// certificate it signs for `127.0.0.1` and `localhost`, a client certificate it signs, and a second CA that signed
/// neither (the wrong-CA case). Files in PEM, in one temporary directory.
public struct TestCertificates: Sendable {
    /// The directory holding the files.
    public let directory: URL

    /// The CA that signed the server and client certificates.
    public var caFile: String { path("ca.crt") }
    /// The server's certificate (names `127.0.0.1` and `localhost`) and key.
    public var serverCertFile: String { path("server.crt") }
    public var serverKeyFile: String { path("server.key") }
    /// A client certificate signed by the CA, and its key.
    public var clientCertFile: String { path("client.crt") }
    public var clientKeyFile: String { path("client.key") }
    /// A CA that signed nothing here.
    public var otherCAFile: String { path("other-ca.crt") }

    /// The certificates of this test process, made on first use.
    public static func shared() throws -> TestCertificates {
        try made.get()
    }

    private static let made: Result<TestCertificates, Error> = Result { try TestCertificates() }

    private init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("cachesync-certs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for ca in ["ca", "other-ca"] {
            try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=cachesync test \(ca)",
                         "-keyout", path("\(ca).key"), "-out", path("\(ca).crt")])
        }
        try sign("server", subject: "/CN=localhost", extensions: "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth")
        try sign("client", subject: "/CN=cachesync client", extensions: "extendedKeyUsage=clientAuth")
        for key in ["ca.key", "other-ca.key", "server.key", "client.key"] {
            TestSecrets.registerPrivateKey(file: path(key))
        }
    }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// A key and a certificate for `name`, signed by the CA.
    private func sign(_ name: String, subject: String, extensions: String) throws {
        try openssl(["req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", path("\(name).key"),
                     "-out", path("\(name).csr")])
        try extensions.write(toFile: path("\(name).ext"), atomically: true, encoding: .utf8)
        try openssl(["x509", "-req", "-in", path("\(name).csr"), "-CA", caFile, "-CAkey", path("ca.key"),
                     "-CAcreateserial", "-days", "2", "-extfile", path("\(name).ext"), "-out", path("\(name).crt")])
    }

    /// Runs `openssl` with `arguments` and waits for it (posix_spawn through `TestProcess`: Foundation's `Process`
    /// was seen to hang in `waitUntilExit` under parallel tests).
    private func openssl(_ arguments: [String]) throws {
        guard let executable = TestProcess.find("openssl") else {
            throw TestServerError.executableNotFound(name: "openssl", hint: "install openssl (scripts/install.sh does)")
        }
        let process = TestProcess(executable: executable, arguments: arguments,
                                  outputURL: directory.appendingPathComponent("openssl.out"))
        try process.start()
        while process.isRunning { usleep(5_000) }
        guard process.exitStatus == 0 else {
            throw TestServerError.exited(server: "openssl \(arguments.first ?? "")", status: process.exitStatus ?? -1,
                                         log: process.output)
        }
    }
}
