/// `http:` settings.
public struct HTTPSettings: Sendable, Equatable {
    /// Host part of `listen`.
    public var host: String
    /// Port part of `listen`.
    public var port: Int
    /// Seconds without an event after which a collection is reported silent (0: never).
    public var silenceWarningSeconds: Double
    /// `http.api.listen`: where the read-through API (`/v1/cache`) is served instead of `listen`; `nil` serves it on
    /// `listen`.
    public var apiAddress: Address?
    /// `http.api.tokenFile`: the read-through API then requires `Authorization: Bearer <the file's first line>`.
    public var apiTokenFile: String?

    /// A listening address.
    public struct Address: Sendable, Equatable, CustomStringConvertible {
        /// Host name or IP address (IPv6 without brackets).
        public var host: String
        /// TCP port.
        public var port: Int

        /// `host:port`.
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// `host:port` as written in the config (IPv6 hosts in brackets).
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// `host:port` as written in `http.listen` (IPv6 hosts in brackets).
    public var listen: String { Address(host: host, port: port).description }

    /// Settings for one listening address.
    public init(host: String = "127.0.0.1", port: Int = 9464, silenceWarningSeconds: Double = 0) {
        self.host = host
        self.port = port
        self.silenceWarningSeconds = silenceWarningSeconds
    }
}
