/// How a connection speaks TLS: which certificates it trusts, which name it expects, and its own certificate for
/// mutual TLS. Files are read at every connect, so renewed certificates take effect at the next reconnect.
public struct RedisTLSOptions: Sendable, Hashable {
    /// PEM file of the certificate authorities to trust; `nil` trusts the system's.
    public var caFile: String?
    /// PEM file of the client certificate (chain), for servers that ask for one.
    public var certFile: String?
    /// PEM file of the client certificate's private key.
    public var keyFile: String?
    /// The name sent as SNI and checked against the server's certificate; `nil` uses the host connected to.
    /// An IP address is checked against the certificate's IP addresses and sent without SNI.
    public var serverName: String?
    /// Accept any certificate and name. For tests only; the caller warns.
    public var insecureSkipVerify: Bool

    /// TLS with the given trust, identity and name.
    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, serverName: String? = nil,
                insecureSkipVerify: Bool = false) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.serverName = serverName
        self.insecureSkipVerify = insecureSkipVerify
    }
}
