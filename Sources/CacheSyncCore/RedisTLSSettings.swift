/// `redis.tls:` how the connection to Redis speaks TLS (the URL must be `rediss://`). Files are read at every
/// connect, so renewed certificates are used at the next reconnect.
public struct RedisTLSSettings: Sendable, Equatable {
    /// PEM file of the certificate authorities to trust; `nil` trusts the system's.
    public var caFile: String?
    /// PEM file of the client certificate, for mutual TLS (with `keyFile`).
    public var certFile: String?
    /// PEM file of the client certificate's private key.
    public var keyFile: String?
    /// The name sent as SNI and checked against the certificate; `nil` uses the URL's host.
    public var serverName: String?
    /// Accept any certificate and name (logged as a warning at every start). For tests only.
    public var insecureSkipVerify = false

    /// The defaults: system CAs, the URL's host checked, no client certificate.
    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, serverName: String? = nil,
                insecureSkipVerify: Bool = false) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.serverName = serverName
        self.insecureSkipVerify = insecureSkipVerify
    }
}
