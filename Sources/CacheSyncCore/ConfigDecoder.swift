import Yams

/// Turns the YAML tree of a config file into a validated `CacheSyncConfig` (docs/ARCHITECTURE.md §3).
///
/// Top-level keys starting with `x-` are ignored, so they can hold YAML anchors to merge (`<<: *name`).
struct ConfigDecoder {
    /// The config file name, for messages.
    let file: String

    /// Settings under `defaults:` that collections inherit.
    private struct Defaults {
        var ttl = TTLPolicy()
        var accessWindow = 86400
        var maxValueBytes = 1 << 20
        var notFoundTTL = 5
        var onHistoryLost = HistoryLostPolicy.flush
        var warmup = WarmupSettings.none
    }

    /// The validated config of a whole document.
    func decode(_ root: Node) throws(ConfigError) -> CacheSyncConfig {
        let top = ConfigNode(node: root, path: [], file: file, keyLine: nil)
        let map = try top.mapping(
            allowed: ["mongodb", "redis", "http", "checkpoint", "lease", "shutdownTimeout", "readyAfterWarmup", "defaults",
                      "collections"],
            what: "a map with mongodb, redis and collections", extensionPrefix: "x-")
        let mongodb = try mongoSettings(map.required("mongodb", "missing (required: the MongoDB to watch)"))
        let redis = try map["redis"].map(redisSettings) ?? RedisSettings(url: "redis://127.0.0.1:6379/0")
        let http = try map["http"].map(httpSettings) ?? HTTPSettings()
        let checkpoint = try map["checkpoint"].map(checkpointSettings) ?? CheckpointSettings()
        let lease = try map["lease"].map(leaseSettings) ?? LeaseSettings()
        var shutdownTimeout = 10.0
        if let node = map["shutdownTimeout"] {
            shutdownTimeout = try positiveSeconds(node)
        }
        let defaults = try map["defaults"].map(defaultsSettings) ?? Defaults()
        let collections = try collectionList(
            map.required("collections", "missing (required: a map of the collections to watch)"),
            mongodb: mongodb, redis: redis, defaults: defaults)
        var config = CacheSyncConfig(mongodb: mongodb, redis: redis, http: http, checkpoint: checkpoint, lease: lease,
                                     collections: collections, shutdownTimeout: shutdownTimeout, sourcePath: file)
        if let node = map["readyAfterWarmup"] {
            config.readyAfterWarmup = try node.bool()
        }
        return config
    }

    // MARK: Sections

    private func mongoSettings(_ node: ConfigNode) throws(ConfigError) -> MongoSettings {
        let map = try node.mapping(allowed: ["uri", "database"])
        let uriNode = try map.required("uri", "missing (required: mongodb:// or mongodb+srv:// connection string)")
        let uri = try uriNode.string()
        let scheme = ["mongodb://", "mongodb+srv://"].first(where: { uri.hasPrefix($0) })
        guard let scheme, uri.count > scheme.count else {
            throw uriNode.error("cannot parse \"\(ConfigRenderer.redactedURI(uri))\" (expected mongodb://host[:port][/...] or mongodb+srv://host)")
        }
        var database = ""
        if let databaseNode = map["database"] {
            database = try databaseNode.string()
            try checkDatabaseName(database, databaseNode)
        }
        return MongoSettings(uri: uri, database: database)
    }

    private func redisSettings(_ node: ConfigNode) throws(ConfigError) -> RedisSettings {
        let map = try node.mapping(allowed: ["url", "keyPrefix", "passwordFile", "tls", "sentinel", "cluster"])
        var url = "redis://127.0.0.1:6379/0"
        var endpoint = RedisURL()
        if let urlNode = map["url"] {
            url = try urlNode.string()
            do {
                endpoint = try RedisURL(parsing: url)
            } catch {
                throw urlNode.error(error.message)
            }
        }
        let keyPrefix = try map["keyPrefix"]?.string() ?? ""
        let passwordFile = try map["passwordFile"].map { node throws(ConfigError) in try nonEmptyPath(node) }
        var tls: RedisTLSSettings?
        if let tlsNode = map["tls"] {
            guard endpoint.tls else {
                throw tlsNode.error("TLS settings need a rediss:// url (redis.url is redis://, which never uses TLS)")
            }
            tls = try redisTLSSettings(tlsNode)
        }
        let sentinel = try map["sentinel"].map { node throws(ConfigError) in try redisSentinelSettings(node) }
        var cluster: RedisClusterSettings?
        if let clusterNode = map["cluster"] {
            if sentinel != nil {
                throw clusterNode.error("cannot be used with redis.sentinel (a cluster fails over by itself)")
            }
            if endpoint.db != 0 {
                throw (map["url"] ?? clusterNode).error("""
                    a Redis Cluster has only database 0, but redis.url selects database \(endpoint.db)
                    """)
            }
            cluster = try redisClusterSettings(clusterNode)
        }
        return RedisSettings(url: url, endpoint: endpoint, keyPrefix: keyPrefix, passwordFile: passwordFile, tls: tls,
                             sentinel: sentinel, cluster: cluster)
    }

    /// `cluster: {}` or `cluster: { nodes: [host:port, …] }`.
    private func redisClusterSettings(_ node: ConfigNode) throws(ConfigError) -> RedisClusterSettings {
        let map = try node.mapping(allowed: ["nodes"])
        var nodes: [RedisSentinelSettings.Node] = []
        if let nodesNode = map["nodes"] {
            for entry in try nodesNode.sequence(what: "a list of host:port") {
                nodes.append(try nodeAddress(entry, defaultPort: 6379, example: "redis-0:6379"))
            }
        }
        return RedisClusterSettings(nodes: nodes)
    }

    private func redisSentinelSettings(_ node: ConfigNode) throws(ConfigError) -> RedisSentinelSettings {
        let map = try node.mapping(allowed: ["masterName", "nodes", "username", "password"])
        let nameNode = try map.required("masterName", "missing (the name the sentinels monitor the master under)")
        let name = try nameNode.string()
        guard !name.isEmpty, !name.contains(where: { $0 == " " }) else {
            throw nameNode.error("expected a master name without spaces, found \"\(name)\"")
        }
        let nodesNode = try map.required("nodes", "missing (the sentinels' addresses, e.g. [\"sentinel-0:26379\"])")
        var nodes: [RedisSentinelSettings.Node] = []
        for entry in try nodesNode.sequence(what: "a list of host:port") {
            nodes.append(try nodeAddress(entry, defaultPort: 26379, example: "sentinel-0:26379"))
        }
        guard !nodes.isEmpty else { throw nodesNode.error("needs at least one sentinel address") }
        let username = try map["username"]?.string()
        let password = try map["password"]?.string()
        return RedisSentinelSettings(masterName: name, nodes: nodes, username: username?.isEmpty == true ? nil : username,
                                     password: password?.isEmpty == true ? nil : password)
    }

    /// `host:port`, `[v6]:port`, or a host alone (`defaultPort`).
    private func nodeAddress(_ node: ConfigNode, defaultPort: Int, example: String) throws(ConfigError) -> RedisSentinelSettings.Node {
        let text = try node.string()
        guard let (host, portText) = Self.splitHostPort(text), !host.isEmpty,
              !host.contains(where: { $0 == " " || $0 == "/" }) else {
            throw node.error("cannot parse \"\(text)\" (expected host:port, e.g. \"\(example)\")")
        }
        guard let portText else { return RedisSentinelSettings.Node(host: String(host), port: defaultPort) }
        guard portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portText), (1...65535).contains(port) else {
            throw node.error("bad port \"\(portText)\" in \"\(text)\" (expected 1 to 65535)")
        }
        return RedisSentinelSettings.Node(host: String(host), port: port)
    }

    private func redisTLSSettings(_ node: ConfigNode) throws(ConfigError) -> RedisTLSSettings {
        let map = try node.mapping(allowed: ["caFile", "certFile", "keyFile", "serverName", "insecureSkipVerify"])
        var settings = RedisTLSSettings()
        settings.caFile = try map["caFile"].map { node throws(ConfigError) in try nonEmptyPath(node) }
        settings.certFile = try map["certFile"].map { node throws(ConfigError) in try nonEmptyPath(node) }
        settings.keyFile = try map["keyFile"].map { node throws(ConfigError) in try nonEmptyPath(node) }
        if settings.certFile != nil, settings.keyFile == nil, let certNode = map["certFile"] {
            throw certNode.error("a client certificate needs its key: set redis.tls.keyFile too")
        }
        if settings.keyFile != nil, settings.certFile == nil, let keyNode = map["keyFile"] {
            throw keyNode.error("a client key needs its certificate: set redis.tls.certFile too")
        }
        if let nameNode = map["serverName"] {
            let name = try nameNode.string()
            guard !name.isEmpty, !name.contains(where: { $0 == " " || $0 == "/" }) else {
                throw nameNode.error("expected a host name or IP address, found \"\(name)\"")
            }
            settings.serverName = name
        }
        settings.insecureSkipVerify = try map["insecureSkipVerify"]?.bool() ?? false
        return settings
    }

    /// A file path that is not empty.
    private func nonEmptyPath(_ node: ConfigNode) throws(ConfigError) -> String {
        let path = try node.string()
        guard !path.trimmingCharacters(in: .whitespaces).isEmpty else { throw node.error("expected a file path") }
        return path
    }

    private func httpSettings(_ node: ConfigNode) throws(ConfigError) -> HTTPSettings {
        let map = try node.mapping(allowed: ["listen", "silenceWarning", "api"])
        var settings = HTTPSettings()
        if let listenNode = map["listen"] {
            (settings.host, settings.port) = try hostAndPort(listenNode)
        }
        if let apiNode = map["api"] {
            let api = try apiNode.mapping(allowed: ["listen", "tokenFile"])
            if let listenNode = api["listen"] {
                let (host, port) = try hostAndPort(listenNode)
                guard port != settings.port || (host != settings.host && host != "0.0.0.0" && settings.host != "0.0.0.0")
                else {
                    throw listenNode.error("must differ from http.listen (\(settings.listen)): the API gets its own port")
                }
                settings.apiAddress = .init(host: host, port: port)
            }
            settings.apiTokenFile = try api["tokenFile"].map { node throws(ConfigError) in try nonEmptyPath(node) }
        }
        if let silenceNode = map["silenceWarning"] {
            let seconds = try silenceNode.seconds()
            guard seconds >= 0 else {
                throw silenceNode.error("must be >= 0 seconds (0 turns the warning off), found \(ConfigRenderer.number(seconds))")
            }
            settings.silenceWarningSeconds = seconds
        }
        return settings
    }

    private func checkpointSettings(_ node: ConfigNode) throws(ConfigError) -> CheckpointSettings {
        let map = try node.mapping(allowed: ["keyPrefix"])
        return CheckpointSettings(keyPrefix: try map["keyPrefix"]?.string() ?? "cachesync:")
    }

    private func leaseSettings(_ node: ConfigNode) throws(ConfigError) -> LeaseSettings {
        let map = try node.mapping(allowed: ["enabled", "ttl", "instanceId"])
        var settings = LeaseSettings()
        if let enabledNode = map["enabled"] {
            settings.enabled = try enabledNode.bool()
        }
        if let ttlNode = map["ttl"] {
            settings.ttlSeconds = try positiveSeconds(ttlNode)
        }
        if let idNode = map["instanceId"] {
            let id = try idNode.string()
            guard !id.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw idNode.error("must not be empty (leave it out to use CACHESYNC_INSTANCE_ID or the hostname)")
            }
            settings.instanceId = id
        }
        return settings
    }

    private func defaultsSettings(_ node: ConfigNode) throws(ConfigError) -> Defaults {
        let map = try node.mapping(allowed: ["ttl", "accessCounts", "maxValueBytes", "notFoundTtl", "onHistoryLost", "warmup"])
        var defaults = Defaults()
        if let ttlNode = map["ttl"] {
            defaults.ttl = try ttlPolicy(ttlNode, inherited: defaults.ttl)
        }
        if let countsNode = map["accessCounts"] {
            defaults.accessWindow = try accessWindow(countsNode)
        }
        if let bytesNode = map["maxValueBytes"] {
            defaults.maxValueBytes = try positiveInt(bytesNode, unit: "bytes")
        }
        if let notFoundNode = map["notFoundTtl"] {
            defaults.notFoundTTL = try notFoundTTL(notFoundNode)
        }
        if let historyNode = map["onHistoryLost"] {
            defaults.onHistoryLost = try historyNode.choice(HistoryLostPolicy.self, what: "onHistoryLost policy")
        }
        if let warmupNode = map["warmup"] {
            defaults.warmup = try warmup(warmupNode)
        }
        return defaults
    }

    // MARK: Collections

    private func collectionList(_ node: ConfigNode, mongodb: MongoSettings, redis: RedisSettings,
                                defaults: Defaults) throws(ConfigError) -> [CollectionConfig] {
        let entries = try node.entries(what: "a map of collections (\"<coll>\" or \"<db>.<coll>\" to settings)")
        guard !entries.isEmpty else {
            throw node.error("must list at least one collection")
        }
        var collections: [CollectionConfig] = []
        var seen: [String: (key: String, line: Int?)] = [:]
        var keyShapes: [String: String] = [:]
        for (key, value) in entries {
            let config = try collectionConfig(value, key: key, defaultDatabase: mongodb.database, defaults: defaults,
                                              keyPrefix: redis.keyPrefix)
            let (database, collection) = (config.database, config.collection)
            if let earlier = seen[config.namespace] {
                let place = earlier.line.map { " at line \($0)" } ?? ""
                throw ConfigError(file: file, line: value.keyLine, field: value.field,
                                  message: "\(config.namespace) is configured twice (also as \"\(earlier.key)\"\(place))")
            }
            seen[config.namespace] = (key, value.keyLine)
            let shape = redis.keyPrefix + config.keyTemplate
                .replacingOccurrences(of: "{db}", with: database)
                .replacingOccurrences(of: "{coll}", with: collection)
            let templateNode = (try? value.mapping(allowed: CollectionFields.all))?["keyTemplate"]
            if shape.hasPrefix("{id}") {
                // A flush (first start, history lost, drop) deletes what the pattern matches: here, every key.
                throw ConfigError(
                    file: file, line: templateNode?.line ?? value.keyLine,
                    field: ConfigNode.join(value.path + ["keyTemplate"]),
                    message: "keys that start with {id} and no redis.keyPrefix match every key in the database, which "
                        + "a flush of the collection would delete: set redis.keyPrefix or start keyTemplate with a text")
            }
            if let other = keyShapes[shape] {
                throw ConfigError(
                    file: file, line: templateNode?.line ?? value.keyLine,
                    field: ConfigNode.join(value.path + ["keyTemplate"]),
                    message: "keys \"\(shape)\" would collide with the keys of \(other) (put {coll} or a distinct text in keyTemplate)")
            }
            keyShapes[shape] = config.namespace
            collections.append(config)
        }
        return collections
    }

    /// The names every collection may set.
    private enum CollectionFields {
        static let all = ["strategy", "database", "operations", "ttl", "keyTemplate", "idType", "onHistoryLost",
                          "maxValueBytes", "notFoundTtl", "accessCounts", "project", "filter", "indexes",
                          "preImages", "format", "warmup"]
    }

    /// The database and collection a key names: with a `database` field the key is the collection's name verbatim;
    /// else `<db>.<coll>` (split at the first dot, as database names hold none) or `<coll>` in `mongodb.database`.
    /// A dotted key without the field while `mongodb.database` is set could be either, and is refused.
    private func namespace(_ key: String, _ node: ConfigNode, databaseNode: ConfigNode?,
                           defaultDatabase: String) throws(ConfigError) -> (String, String) {
        let keyError = { (message: String) in
            ConfigError(file: file, line: node.keyLine, field: node.field, message: message)
        }
        var database = defaultDatabase
        var collection = key
        if let databaseNode {
            database = try databaseNode.string()
            try checkDatabaseName(database, databaseNode)
        } else if let dot = key.firstIndex(of: ".") {
            database = String(key[..<dot])
            collection = String(key[key.index(after: dot)...])
            if !defaultDatabase.isEmpty {
                throw keyError("\"\(key)\" is ambiguous: collection \"\(collection)\" of database \"\(database)\", or "
                    + "collection \"\(key)\" of mongodb.database \"\(defaultDatabase)\"; say which with a database field "
                    + "(the key is then the collection's name verbatim): \"\(collection)\" with database: \(database), "
                    + "or \"\(key)\" with database: \(defaultDatabase)")
            }
            if let problem = databaseNameProblem(database) {
                throw keyError("bad database name \"\(database)\" (\(problem))")
            }
        } else if database.isEmpty {
            throw keyError("no database for \"\(key)\" (set mongodb.database, or write the key as \"<db>.\(key)\")")
        }
        if collection.isEmpty || collection.contains("$") || collection.contains("\0") {
            throw keyError("bad collection name \"\(collection)\" (expected a non-empty name without $)")
        }
        if collection.hasPrefix("system.") {
            throw keyError("cannot watch the system collection \"\(collection)\"")
        }
        return (database, collection)
    }

    private func collectionConfig(_ node: ConfigNode, key: String, defaultDatabase: String,
                                  defaults: Defaults, keyPrefix: String) throws(ConfigError) -> CollectionConfig {
        if case let .scalar(scalar) = node.node, scalar.string.isEmpty, scalar.style == .plain {
            throw node.missing("strategy", "missing (required: one of \(StrategyKind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let map = try node.mapping(allowed: CollectionFields.all, what: "a map of collection settings")
        let (database, collection) = try namespace(key, node, databaseNode: map["database"],
                                                   defaultDatabase: defaultDatabase)
        let strategies = StrategyKind.allCases.map(\.rawValue).joined(separator: ", ")
        let strategy = try map.required("strategy", "missing (required: one of \(strategies))")
            .choice(StrategyKind.self, what: "strategy")
        var config = CollectionConfig(database: database, collection: collection, strategy: strategy,
                                      ttl: defaults.ttl, accessWindow: defaults.accessWindow,
                                      onHistoryLost: defaults.onHistoryLost, maxValueBytes: defaults.maxValueBytes,
                                      notFoundTTL: defaults.notFoundTTL)
        if let operationsNode = map["operations"] {
            config.operations = try operations(operationsNode)
        }
        if let ttlNode = map["ttl"] {
            config.ttl = try ttlPolicy(ttlNode, inherited: defaults.ttl)
        }
        if let templateNode = map["keyTemplate"] {
            config.keyTemplate = try keyTemplate(templateNode)
        }
        if let idNode = map["idType"] {
            config.idType = try idNode.choice(IDType.self, what: "idType")
        }
        if let historyNode = map["onHistoryLost"] {
            config.onHistoryLost = try historyNode.choice(HistoryLostPolicy.self, what: "onHistoryLost policy")
        }
        if let bytesNode = map["maxValueBytes"] {
            config.maxValueBytes = try positiveInt(bytesNode, unit: "bytes")
        }
        if let notFoundNode = map["notFoundTtl"] {
            config.notFoundTTL = try notFoundTTL(notFoundNode)
        }
        if let countsNode = map["accessCounts"] {
            config.accessWindow = try accessWindow(countsNode)
        }
        if let projectNode = map["project"] {
            config.projection = try projection(projectNode)
        }
        if let filterNode = map["filter"] {
            guard strategy != .invalidate else {
                throw filterNode.error("""
                    needs the full document, which strategy: invalidate never reads (a change only deletes the key): \
                    use strategy: update or preserve-ttl
                    """)
            }
            config.filter = try documentFilter(filterNode)
        }
        if let indexesNode = map["indexes"] {
            config.indexes = try secondaryIndexes(indexesNode, collection: config, keyPrefix: keyPrefix)
        }
        if let formatNode = map["format"] {
            config.format = try formatNode.choice(ValueFormat.self, what: "format")
        }
        if let preImagesNode = map["preImages"] {
            config.preImages = try preImagesNode.bool()
        }
        let warmupNode = map["warmup"]
        config.warmup = try warmupNode.map(warmup) ?? defaults.warmup
        if config.warmup.enabled {
            // Only a collection's own `warmup` is refused; one from `defaults` just does not apply to it.
            if strategy == .invalidate {
                guard let warmupNode else {
                    config.warmup = .none
                    return config
                }
                throw warmupNode.error("""
                    strategy: invalidate never caches a document, so there is nothing to warm up: use strategy: update \
                    or preserve-ttl, or warmup: none
                    """)
            }
            if !config.operations.contains(.insert) {
                throw (warmupNode ?? node).error("""
                    warm-up caches each document as an insert would, and operations leaves insert out: add insert to \
                    operations, or set warmup: none
                    """)
            }
        }
        return config
    }

    /// `warmup`: `none`, `all`, or `{ limit, sort, chunkSize, share }` (a map turns warm-up on).
    private func warmup(_ node: ConfigNode) throws(ConfigError) -> WarmupSettings {
        if case .scalar = node.node {
            switch try node.string() {
            case "none": return .none
            case "all": return .all
            case let other:
                throw node.error("unknown warmup \"\(other)\" (expected none, all, or a map { limit, sort, chunkSize, share })")
            }
        }
        let map = try node.mapping(allowed: ["limit", "sort", "chunkSize", "share"],
                                   what: "none, all, or a map { limit, sort, chunkSize, share }")
        var settings = WarmupSettings.all
        if let limitNode = map["limit"] {
            settings.limit = try positiveInt(limitNode, unit: "documents")
        }
        if let sortNode = map["sort"] {
            let entries = try sortNode.entries(what: "a map of field paths to 1 or -1, e.g. { updatedAt: -1 }")
            guard !entries.isEmpty else {
                throw sortNode.error("must name at least one field, e.g. { updatedAt: -1 }")
            }
            for (path, directionNode) in entries {
                guard !path.isEmpty, !path.hasPrefix("$"), !path.split(separator: ".", omittingEmptySubsequences: false).contains(where: \.isEmpty) else {
                    throw directionNode.error("is not a field path (dotted names, not starting with $)")
                }
                let direction = try directionNode.int()
                guard direction == 1 || direction == -1 else {
                    throw directionNode.error("must be 1 (ascending) or -1 (descending), found \(direction)")
                }
                settings.sort.append(WarmupSortKey(path: path, descending: direction == -1))
            }
            guard let limit = settings.limit else {
                throw sortNode.error("needs limit: sort picks which documents to warm, limit says how many (e.g. { limit: 10000, sort: { updatedAt: -1 } })")
            }
            guard limit <= WarmupSettings.maxSortedLimit else {
                throw (map["limit"] ?? sortNode).error("""
                    must be at most \(WarmupSettings.maxSortedLimit) documents with sort (the picked _ids are ordered by \
                    the server in one command), found \(limit)
                    """)
            }
        }
        if let chunkNode = map["chunkSize"] {
            let size = try chunkNode.int()
            guard (1...100_000).contains(size) else {
                throw chunkNode.error("must be 1 to 100000 documents, found \(size)")
            }
            settings.chunkSize = size
        }
        if let shareNode = map["share"] {
            let share = try shareNode.seconds()
            guard share > 0, share <= 1 else {
                throw shareNode.error("must be above 0 and at most 1 (the share of time spent reading), found \(shareNode.describe())")
            }
            settings.share = share
        }
        return settings
    }

    /// `notFoundTtl`: whole seconds, 0 (no negative entries) to one day.
    private func notFoundTTL(_ node: ConfigNode) throws(ConfigError) -> Int {
        let seconds = try node.int()
        guard (0...86400).contains(seconds) else {
            throw node.error("must be 0 (off) to 86400 seconds, found \(seconds)")
        }
        return seconds
    }

    private func operations(_ node: ConfigNode) throws(ConfigError) -> Set<DocumentOperation> {
        let items = try node.sequence(what: "a list of operations (insert, update, replace, delete)")
        guard !items.isEmpty else {
            throw node.error("must list at least one operation (insert, update, replace, delete)")
        }
        var result = Set<DocumentOperation>()
        for item in items {
            let operation = try item.choice(DocumentOperation.self, what: "operation")
            guard result.insert(operation).inserted else {
                throw item.error("operation \"\(operation.rawValue)\" is listed twice")
            }
        }
        return result
    }

    private func keyTemplate(_ node: ConfigNode) throws(ConfigError) -> String {
        let template = try node.string()
        var placeholders: [String] = []
        var rest = Substring(template)
        while let open = rest.firstIndex(where: { $0 == "{" || $0 == "}" }) {
            guard rest[open] == "{" else {
                throw node.error("unmatched \"}\" in \"\(template)\" (placeholders are {db}, {coll}, {id})")
            }
            guard let close = rest[open...].firstIndex(of: "}") else {
                throw node.error("unclosed \"{\" in \"\(template)\" (placeholders are {db}, {coll}, {id})")
            }
            let name = String(rest[rest.index(after: open)..<close])
            guard ["db", "coll", "id"].contains(name) else {
                throw node.error("unknown placeholder \"{\(name)}\" (expected {db}, {coll}, {id})")
            }
            placeholders.append(name)
            rest = rest[rest.index(after: close)...]
        }
        guard placeholders.contains("id") else {
            throw node.error("\"\(template)\" has no {id} placeholder (every document needs its own key)")
        }
        return template
    }

    // MARK: Values

    /// A `ttl` map over `inherited`, field by field: `base` alone keeps the inherited tiers, `tiers: []` drops them.
    private func ttlPolicy(_ node: ConfigNode, inherited: TTLPolicy) throws(ConfigError) -> TTLPolicy {
        let map = try node.mapping(allowed: ["base", "tiers"])
        var policy = inherited
        if let baseNode = map["base"] {
            policy.base = try positiveInt(baseNode, unit: "seconds")
        }
        guard let tiersNode = map["tiers"] else {
            return policy
        }
        policy.tiers = []
        let items = try tiersNode.sequence(what: "a list of tiers ({ minAccesses: N, ttl: seconds })")
        for item in items {
            let tier = try item.mapping(allowed: ["minAccesses", "ttl"], what: "a tier ({ minAccesses: N, ttl: seconds })")
            let minNode = try tier.required("minAccesses", "missing (required: accesses needed for this tier)")
            let minAccesses = try minNode.int()
            guard minAccesses >= 1 else {
                throw minNode.error("must be >= 1, found \(minAccesses)")
            }
            if let previous = policy.tiers.last, minAccesses >= previous.minAccesses {
                throw minNode.error("tiers must be in strictly descending minAccesses order (\(minAccesses) follows \(previous.minAccesses))")
            }
            let ttl = try positiveInt(tier.required("ttl", "missing (required: TTL in seconds for this tier)"),
                                      unit: "seconds")
            policy.tiers.append(TTLTier(minAccesses: minAccesses, ttl: ttl))
        }
        return policy
    }

    private func accessWindow(_ node: ConfigNode) throws(ConfigError) -> Int {
        let map = try node.mapping(allowed: ["window"])
        guard let windowNode = map["window"] else {
            return 86400
        }
        return try positiveInt(windowNode, unit: "seconds")
    }

    private func positiveInt(_ node: ConfigNode, unit: String) throws(ConfigError) -> Int {
        let value = try node.int()
        guard value > 0 else {
            throw node.error("must be > 0 \(unit), found \(value)")
        }
        return value
    }

    private func positiveSeconds(_ node: ConfigNode) throws(ConfigError) -> Double {
        let value = try node.seconds()
        guard value > 0 else {
            throw node.error("must be > 0 seconds, found \(ConfigRenderer.number(value))")
        }
        return value
    }

    private func hostAndPort(_ node: ConfigNode) throws(ConfigError) -> (String, Int) {
        let text = try node.string()
        let expected = "(expected \"host:port\", e.g. \"0.0.0.0:9464\" or \"[::1]:9464\")"
        guard let (host, port) = Self.splitHostPort(text), let portText = port else {
            throw node.error("cannot parse \"\(text)\" \(expected)")
        }
        guard !host.isEmpty else {
            throw node.error("no host in \"\(text)\" \(expected)")
        }
        guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
              let port = Int(portText), (0...65535).contains(port) else {
            throw node.error("bad port \"\(portText)\" in \"\(text)\" (expected 0 to 65535; 0 picks a free port)")
        }
        return (String(host), port)
    }

    /// `host:port` or `[v6]:port` split into its parts, the port `nil` when there is none; `nil` when the text
    /// cannot be read that way (an IPv6 address without brackets, text after `]` that is not a port).
    private static func splitHostPort(_ text: String) -> (host: Substring, port: Substring?)? {
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            let host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if after.isEmpty { return (host, nil) }
            return after.hasPrefix(":") ? (host, after.dropFirst()) : nil
        }
        guard let colon = text.lastIndex(of: ":") else { return (Substring(text), nil) }
        return text[..<colon].contains(":") ? nil : (text[..<colon], text[text.index(after: colon)...])
    }

    private func checkDatabaseName(_ name: String, _ node: ConfigNode) throws(ConfigError) {
        if let problem = databaseNameProblem(name) {
            throw node.error("bad database name \"\(name)\" (\(problem))")
        }
    }

    /// Why `name` cannot be a MongoDB database name, or nil when it can.
    private func databaseNameProblem(_ name: String) -> String? {
        if name.isEmpty {
            return "it is empty"
        }
        if let bad = name.first(where: { "/\\. \"$*<>:|?".contains($0) || $0 == "\0" }) {
            return "it contains \"\(bad)\""
        }
        if name.utf8.count >= 64 {
            return "it is longer than 63 bytes"
        }
        return nil
    }
}
