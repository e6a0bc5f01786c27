@testable import CacheSync
import Testing

/// `Sidecar.hosts(of:)`: what the startup log shows of the MongoDB URI.
@Suite("Sidecar.hosts(of:): the MongoDB hosts for the log, never the credentials")
struct SidecarHostsTests {
    @Test("the host list of a URI, without scheme, credentials, database or options", arguments: [
        ("mongodb://127.0.0.1:27017", "127.0.0.1:27017", ""),
        ("mongodb://127.0.0.1:27017/?directConnection=true", "127.0.0.1:27017", ""),
        ("mongodb://app:s3cret-Pw@db1.example.net:27017,db2.example.net:27018/shop?replicaSet=rs0&authSource=admin",
         "db1.example.net:27017,db2.example.net:27018", "s3cret-Pw"),
        ("mongodb+srv://reader:p%40ss%2Fw0rd@cluster0.example.net/?retryWrites=true", "cluster0.example.net", "p%40ss%2Fw0rd"),
        ("mongodb://app:s3cret-Pw@[::1]:27017,[fe80::1]:27018/?replicaSet=rs0", "[::1]:27017,[fe80::1]:27018", "s3cret-Pw"),
        ("mongodb://onlyauser@db1:27017", "db1:27017", "onlyauser"),
        ("mongodb://db1,db2?replicaSet=rs0", "db1,db2", ""),
    ])
    func hosts(uri: String, hosts: String, secret: String) {
        let shown = Sidecar.hosts(of: uri)
        #expect(shown == hosts)
        #expect(secret.isEmpty || !shown.contains(secret))
    }

    @Test("credentials written without percent-encoding (which libmongoc refuses) are not shown either", arguments: [
        ("mongodb://app:p@ss@db1:27017/shop", "db1:27017", ["p@ss", "app"]),
        ("mongodb://app:pa/ss?x@db1:27017", "db1:27017", ["pa/ss", "ss?x"]),
    ])
    func unescapedCredentials(uri: String, hosts: String, secrets: [String]) {
        let shown = Sidecar.hosts(of: uri)
        #expect(shown == hosts)
        for secret in secrets { #expect(!shown.contains(secret), "\(secret) in \(shown)") }
    }

    @Test("an @ inside an option value is not taken for the end of the credentials")
    func atSignInOptions() {
        // libmongoc accepts these URIs (appName "orders@eu"; the certificate key password "cert@Secret9"); cut by
        // hand after the last @, the log showed "eu" as the host, and part of a password.
        #expect(Sidecar.hosts(of: "mongodb://app:s3cret-Pw@db1:27017/?appName=orders@eu") == "db1:27017")
        let shown = Sidecar.hosts(of: "mongodb://db1:27017/?tls=true&tlsCertificateKeyFilePassword=cert@Secret9")
        #expect(shown == "db1:27017")
        #expect(!shown.contains("Secret9"), "part of the certificate key password is shown: \(shown)")
    }
}
