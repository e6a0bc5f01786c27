/// `http:` settings.
public struct HTTPSettings: Sendable, Equatable {
    /// Host part of `listen`.
    public var host: String
    /// Port part of `listen`.
    public var port: Int
    /// Seconds without an event after which a collection is reported silent (0: never).
    public var silenceWarningSeconds: Double

    /// `host:port` as written in `http.listen` (IPv6 hosts in brackets).
    public var listen: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Settings for one listening address.
    public init(host: String = "127.0.0.1", port: Int = 9464, silenceWarningSeconds: Double = 0) {
        self.host = host
        self.port = port
        self.silenceWarningSeconds = silenceWarningSeconds
    }
}
