import CMongoc

/// What libmongoc reads from a connection string.
public enum MongoURI {
    /// The hosts of `uri` as libmongoc parses them (`host:port,host:port`, or the SRV name of `mongodb+srv://`):
    /// never its credentials or options. `nil` when libmongoc refuses the URI.
    public static func hosts(_ uri: String) -> String? {
        MongoRuntime.ensureInitialised()
        guard let parsed = mongoc_uri_new_with_error(uri, nil) else { return nil }
        defer { mongoc_uri_destroy(parsed) }
        if let srv = mongoc_uri_get_srv_hostname(parsed) { return String(cString: srv) }
        var hosts: [String] = []
        var host = mongoc_uri_get_hosts(parsed)
        while let current = host {
            hosts.append(String(cString: cs_host_and_port(current)))
            host = UnsafePointer(current.pointee.next)
        }
        return hosts.joined(separator: ",")
    }
}
