import Testing
@testable import CacheSyncCore

/// One invalid config and the exact message it must give.
struct BadConfig: Sendable, CustomTestStringConvertible {
    /// What is wrong, for the test name.
    let name: String
    /// The YAML text.
    let yaml: String
    /// The expected `file:line: field: message`.
    let expected: String
    /// Environment variables for interpolation.
    var environment: [String: String] = [:]

    /// The name shown for this case in test output.
    var testDescription: String { name }
}

/// Invalid configs: each names the file, the line and the field of the problem.
@Suite("Config errors")
struct ConfigErrorTests {
    /// A valid config's first lines (1-5); cases append `collections:` from line 6 on.
    static let head = """
        mongodb:
          uri: "mongodb://127.0.0.1:27017"
          database: shop
        redis:
          url: "redis://127.0.0.1:6379/0"

        """

    /// The invalid configs and their exact messages.
    static let cases: [BadConfig] = [
        BadConfig(name: "unknown strategy", yaml: head + """
            collections:
              users:
                strategy: invalidate
              products:
                strategy: updat
            """,
            expected: #"cachesync.yaml:10: collections.products.strategy: unknown strategy "updat" (expected invalidate, update, preserve-ttl)"#),
        BadConfig(name: "misspelt collection key", yaml: head + """
            collections:
              users:
                stratgy: update
            """,
            expected: #"cachesync.yaml:8: collections.users.stratgy: unknown key "stratgy" (did you mean "strategy"?)"#),
        BadConfig(name: "misspelt top-level key", yaml: head + """
            colections:
              users: { strategy: update }
            """,
            expected: #"cachesync.yaml:6: colections: unknown key "colections" (did you mean "collections"?)"#),
        BadConfig(name: "unknown key without a near match", yaml: head + """
              flavour: vanilla
            collections:
              users: { strategy: update }
            """,
            expected: #"cachesync.yaml:6: redis.flavour: unknown key "flavour" (expected one of url, keyPrefix, passwordFile, tls, sentinel, cluster)"#),
        BadConfig(name: "missing strategy", yaml: head + """
            collections:
              users:
                idType: string
            """,
            expected: #"cachesync.yaml:7: collections.users.strategy: missing (required: one of invalidate, update, preserve-ttl)"#),
        BadConfig(name: "collection with no settings", yaml: head + """
            collections:
              users:
            """,
            expected: "cachesync.yaml:7: collections.users.strategy: missing (required: one of invalidate, update, preserve-ttl)"),
        BadConfig(name: "a top-level key that is no setting and has no x- prefix", yaml: head + """
            common: &common
              strategy: update
            collections:
              users:
                <<: *common
            """,
            expected: #"cachesync.yaml:6: common: unknown key "common" (expected one of mongodb, redis, http, checkpoint, lease, shutdownTimeout, readyAfterWarmup, defaults, collections)"#),
        BadConfig(name: "a bad value from a merged map", yaml: head + """
            collections:
              users: &base
                strategy: updat
              products:
                <<: *base
            """,
            expected: #"cachesync.yaml:8: collections.users.strategy: unknown strategy "updat" (expected invalidate, update, preserve-ttl)"#),
        BadConfig(name: "zero base TTL", yaml: head + """
            defaults:
              ttl:
                base: 0
            collections:
              users: { strategy: update }
            """,
            expected: "cachesync.yaml:8: defaults.ttl.base: must be > 0 seconds, found 0"),
        BadConfig(name: "negative tier TTL", yaml: head + """
            collections:
              users:
                strategy: update
                ttl:
                  tiers:
                    - { minAccesses: 10, ttl: -5 }
            """,
            expected: "cachesync.yaml:11: collections.users.ttl.tiers[0].ttl: must be > 0 seconds, found -5"),
        BadConfig(name: "tiers not strictly descending", yaml: head + """
            defaults:
              ttl:
                tiers:
                  - { minAccesses: 100, ttl: 1800 }
                  - { minAccesses: 1000, ttl: 3600 }
            collections:
              users: { strategy: update }
            """,
            expected: "cachesync.yaml:10: defaults.ttl.tiers[1].minAccesses: tiers must be in strictly descending minAccesses order (1000 follows 100)"),
        BadConfig(name: "same collection twice", yaml: """
            mongodb:
              uri: "mongodb://127.0.0.1:27017"
            collections:
              shop.products: { strategy: update }
              shop.users: { strategy: invalidate }
              products: { strategy: invalidate, database: shop }
            """,
            expected: #"cachesync.yaml:6: collections.products: shop.products is configured twice (also as "shop.products" at line 4)"#),
        BadConfig(name: "dotted name that could be either namespace", yaml: head + """
            collections:
              users: { strategy: invalidate }
              orders.v2: { strategy: update }
            """,
            expected: "cachesync.yaml:8: collections.orders.v2: \"orders.v2\" is ambiguous: collection \"v2\" of database "
                + "\"orders\", or collection \"orders.v2\" of mongodb.database \"shop\"; say which with a database field "
                + "(the key is then the collection's name verbatim): \"v2\" with database: orders, or \"orders.v2\" with "
                + "database: shop"),
        BadConfig(name: "bad database field", yaml: head + """
            collections:
              orders.v2:
                strategy: update
                database: "sh op"
            """,
            expected: #"cachesync.yaml:9: collections.orders.v2.database: bad database name "sh op" (it contains " ")"#),
        BadConfig(name: "unknown key placeholder", yaml: head + """
            collections:
              users:
                strategy: update
                keyTemplate: "{collection}:{id}"
            """,
            expected: #"cachesync.yaml:9: collections.users.keyTemplate: unknown placeholder "{collection}" (expected {db}, {coll}, {id})"#),
        BadConfig(name: "key template without id", yaml: head + """
            collections:
              users:
                strategy: update
                keyTemplate: "{coll}:all"
            """,
            expected: #"cachesync.yaml:9: collections.users.keyTemplate: "{coll}:all" has no {id} placeholder (every document needs its own key)"#),
        BadConfig(name: "a list where a map is expected", yaml: """
            mongodb:
              uri: "mongodb://127.0.0.1:27017"
              database: shop
            redis:
              - url: "redis://127.0.0.1:6379/0"
            collections:
              users: { strategy: update }
            """,
            expected: "cachesync.yaml:4: redis: expected a map, found a list"),
        BadConfig(name: "a string where a number is expected", yaml: head + """
            collections:
              users:
                strategy: update
                maxValueBytes: lots
            """,
            expected: #"cachesync.yaml:9: collections.users.maxValueBytes: expected a whole number, found "lots""#),
        BadConfig(name: "a quoted number where a number is expected", yaml: head + """
            shutdownTimeout: "10"
            collections:
              users: { strategy: update }
            """,
            expected: #"cachesync.yaml:6: shutdownTimeout: expected a number of seconds, found the string "10" (write numbers without quotes)"#),
        BadConfig(name: "empty collections", yaml: head + """
            collections: {}
            """,
            expected: "cachesync.yaml:6: collections: must list at least one collection"),
        BadConfig(name: "collections with nothing under it", yaml: head + """
            collections:
            """,
            expected: #"cachesync.yaml:6: collections: expected a map of collections ("<coll>" or "<db>.<coll>" to settings), found nothing"#),
        BadConfig(name: "missing collections", yaml: head,
            expected: "cachesync.yaml:1: collections: missing (required: a map of the collections to watch)"),
        BadConfig(name: "unknown idType", yaml: head + """
            collections:
              users: { strategy: update, idType: objectid }
            """,
            expected: #"cachesync.yaml:7: collections.users.idType: unknown idType "objectid" (expected auto, objectId, string, int, uuid)"#),
        BadConfig(name: "unknown operation", yaml: head + """
            collections:
              users:
                strategy: invalidate
                operations: [update, upsert]
            """,
            expected: #"cachesync.yaml:9: collections.users.operations[1]: unknown operation "upsert" (expected insert, update, replace, delete)"#),
        BadConfig(name: "operation listed twice", yaml: head + """
            collections:
              users:
                strategy: invalidate
                operations:
                  - delete
                  - delete
            """,
            expected: #"cachesync.yaml:11: collections.users.operations[1]: operation "delete" is listed twice"#),
        BadConfig(name: "unknown onHistoryLost", yaml: head + """
            defaults:
              onHistoryLost: ignore
            collections:
              users: { strategy: update }
            """,
            expected: #"cachesync.yaml:7: defaults.onHistoryLost: unknown onHistoryLost policy "ignore" (expected flush, fail)"#),
        BadConfig(name: "negative entries for more than a day", yaml: head + """
            collections:
              users: { strategy: update, notFoundTtl: 90000 }
            """,
            expected: #"cachesync.yaml:7: collections.users.notFoundTtl: must be 0 (off) to 86400 seconds, found 90000"#),
        BadConfig(name: "keys that would match the whole database", yaml: head + """
            collections:
              users: { strategy: update, keyTemplate: "{id}" }
            """,
            expected: #"cachesync.yaml:7: collections.users.keyTemplate: keys that start with {id} and no redis.keyPrefix match every key in the database, which a flush of the collection would delete: set redis.keyPrefix or start keyTemplate with a text"#),
        BadConfig(name: "a secret pasted into a number field is not repeated", yaml: head + """
            lease: { ttl: "Sup3r$ecret!" }
            collections:
              users: { strategy: update }
            """,
            expected: #"cachesync.yaml:6: lease.ttl: expected a number of seconds, found a text of 12 characters (not repeated: it may be a secret)"#),
        BadConfig(name: "API on the status port", yaml: head + """
            http:
              listen: "0.0.0.0:9464"
              api: { listen: "127.0.0.1:9464", tokenFile: /run/token }
            collections:
              users: { strategy: update }
            """,
            expected: #"cachesync.yaml:8: http.api.listen: must differ from http.listen (0.0.0.0:9464): the API gets its own port"#),
        BadConfig(name: "empty API token file", yaml: head + """
            http:
              api: { tokenFile: "" }
            collections:
              users: { strategy: update }
            """,
            expected: #"cachesync.yaml:7: http.api.tokenFile: expected a file path"#),
        BadConfig(name: "bad http port", yaml: head + """
            http:
              listen: "127.0.0.1:70000"
            collections:
              users: { strategy: update }
            """,
            expected: #"cachesync.yaml:7: http.listen: bad port "70000" in "127.0.0.1:70000" (expected 0 to 65535; 0 picks a free port)"#),
        BadConfig(name: "listen without a port", yaml: head + """
            http: { listen: "localhost" }
            collections:
              users: { strategy: update }
            """,
            expected: #"cachesync.yaml:6: http.listen: cannot parse "localhost" (expected "host:port", e.g. "0.0.0.0:9464" or "[::1]:9464")"#),
        BadConfig(name: "bad redis port", yaml: """
            mongodb: { uri: "mongodb://127.0.0.1:27017", database: shop }
            redis:
              url: "redis://cache:6379x/0"
            collections:
              users: { strategy: update }
            """,
            expected: #"cachesync.yaml:3: redis.url: bad port "6379x" (expected 1 to 65535)"#),
        BadConfig(name: "tls settings with a plaintext url", yaml: """
            mongodb: { uri: "mongodb://127.0.0.1:27017", database: shop }
            redis:
              url: "redis://cache:6380"
              tls: { caFile: /etc/ca.crt }
            collections:
              users: { strategy: update }
            """,
            expected: #"cachesync.yaml:4: redis.tls: TLS settings need a rediss:// url (redis.url is redis://, which never uses TLS)"#),
        BadConfig(name: "sentinel without nodes", yaml: """
            mongodb: { uri: "mongodb://127.0.0.1:27017", database: shop }
            redis:
              url: "redis://:pw@mymaster/0"
              sentinel:
                masterName: mymaster
            collections:
              users: { strategy: update }
            """,
            expected: #"cachesync.yaml:4: redis.sentinel.nodes: missing (the sentinels' addresses, e.g. ["sentinel-0:26379"])"#),
        BadConfig(name: "a sentinel address with a bad port", yaml: """
            mongodb: { uri: "mongodb://127.0.0.1:27017", database: shop }
            redis:
              url: "redis://:pw@mymaster/0"
              sentinel:
                masterName: mymaster
                nodes: ["sentinel-0:26379", "sentinel-1:99999"]
            collections:
              users: { strategy: update }
            """,
            expected: #"cachesync.yaml:6: redis.sentinel.nodes[1]: bad port "99999" in "sentinel-1:99999" (expected 1 to 65535)"#),
        BadConfig(name: "a cluster with a database other than 0", yaml: """
            mongodb: { uri: "mongodb://127.0.0.1:27017", database: shop }
            redis:
              url: "redis://redis-0:6379/3"
              cluster: {}
            collections:
              users: { strategy: update }
            """,
            expected: #"cachesync.yaml:3: redis.url: a Redis Cluster has only database 0, but redis.url selects database 3"#),
        BadConfig(name: "cluster and sentinel together", yaml: """
            mongodb: { uri: "mongodb://127.0.0.1:27017", database: shop }
            redis:
              url: "redis://mymaster/0"
              sentinel: { masterName: mymaster, nodes: ["s0:26379"] }
              cluster: { nodes: ["redis-1:6379"] }
            collections:
              users: { strategy: update }
            """,
            expected: #"cachesync.yaml:5: redis.cluster: cannot be used with redis.sentinel (a cluster fails over by itself)"#),
        BadConfig(name: "a cluster seed with a bad port", yaml: """
            mongodb: { uri: "mongodb://127.0.0.1:27017", database: shop }
            redis:
              url: "redis://redis-0:6379/0"
              cluster: { nodes: ["redis-1:0"] }
            collections:
              users: { strategy: update }
            """,
            expected: #"cachesync.yaml:4: redis.cluster.nodes[0]: bad port "0" in "redis-1:0" (expected 1 to 65535)"#),
        BadConfig(name: "a client certificate without its key", yaml: """
            mongodb: { uri: "mongodb://127.0.0.1:27017", database: shop }
            redis:
              url: "rediss://cache:6380"
              tls:
                certFile: /etc/tls.crt
            collections:
              users: { strategy: update }
            """,
            expected: #"cachesync.yaml:5: redis.tls.certFile: a client certificate needs its key: set redis.tls.keyFile too"#),
        BadConfig(name: "an unknown tls field", yaml: """
            mongodb: { uri: "mongodb://127.0.0.1:27017", database: shop }
            redis:
              url: "rediss://cache:6380"
              tls:
                caFiel: /etc/ca.crt
            collections:
              users: { strategy: update }
            """,
            expected: #"cachesync.yaml:5: redis.tls.caFiel: unknown key "caFiel" (did you mean "caFile"?)"#),
        BadConfig(name: "a password with an unescaped ? is refused without printing it", yaml: """
            mongodb: { uri: "mongodb://127.0.0.1:27017", database: shop }
            redis:
              url: "redis://app:pa?ss-W0rd@cache:6379/0"
            collections:
              users: { strategy: update }
            """,
            expected: ##"cachesync.yaml:3: redis.url: the user or password holds "?" or "#": percent-encode them (%3F, %23) in "redis://app:***", or use redis.passwordFile"##),
        BadConfig(name: "redis url without scheme, password redacted", yaml: """
            mongodb: { uri: "mongodb://127.0.0.1:27017", database: shop }
            redis:
              url: "redis//u:hunter2@localhost"
            collections:
              users: { strategy: update }
            """,
            expected: #"cachesync.yaml:3: redis.url: cannot parse "redis//u:***@localhost" (expected redis://[user[:password]@]host:port[/db], or rediss:// for TLS)"#),
        BadConfig(name: "mongodb uri with a wrong scheme", yaml: """
            mongodb:
              uri: "http://127.0.0.1:27017"
              database: shop
            collections:
              users: { strategy: update }
            """,
            expected: #"cachesync.yaml:2: mongodb.uri: cannot parse "http://127.0.0.1:27017" (expected mongodb://host[:port][/...] or mongodb+srv://host)"#),
        BadConfig(name: "missing mongodb uri", yaml: """
            mongodb:
              database: shop
            collections:
              users: { strategy: update }
            """,
            expected: "cachesync.yaml:1: mongodb.uri: missing (required: mongodb:// or mongodb+srv:// connection string)"),
        BadConfig(name: "collection without a database", yaml: """
            mongodb:
              uri: "mongodb://127.0.0.1:27017"
            collections:
              shop.users: { strategy: update }
              orders: { strategy: update }
            """,
            expected: #"cachesync.yaml:5: collections.orders: no database for "orders" (set mongodb.database, or write the key as "<db>.orders")"#),
        BadConfig(name: "zero lease ttl", yaml: head + """
            lease:
              ttl: 0
            collections:
              users: { strategy: update }
            """,
            expected: "cachesync.yaml:7: lease.ttl: must be > 0 seconds, found 0"),
        BadConfig(name: "not a boolean", yaml: head + """
            lease: { enabled: maybe }
            collections:
              users: { strategy: update }
            """,
            expected: #"cachesync.yaml:6: lease.enabled: expected true or false, found "maybe""#),
        BadConfig(name: "colliding key templates", yaml: head + """
            collections:
              users: { strategy: update, keyTemplate: "u:{id}" }
              admins:
                strategy: update
                keyTemplate: "u:{id}"
            """,
            expected: #"cachesync.yaml:10: collections.admins.keyTemplate: keys "u:{id}" would collide with the keys of shop.users (put {coll} or a distinct text in keyTemplate)"#),
        BadConfig(name: "broken YAML syntax", yaml: head + """
            collections:
              users: { strategy: update
              products: { strategy: update }
            """,
            expected: "cachesync.yaml:8: invalid YAML: did not find expected ',' or '}' (while parsing a flow mapping at line 7)"),
        BadConfig(name: "duplicate key", yaml: head + """
            collections:   # watched
              users: { strategy: update }
              products: { strategy: update }
              users: { strategy: invalidate }
            """,
            expected: #"cachesync.yaml:9: collections.users: duplicate key "users" (first at line 7)"#),
        BadConfig(name: "duplicate top-level key", yaml: head + """
            collections:
              users: { strategy: update }
            redis:
              keyPrefix: "x"
            """,
            expected: #"cachesync.yaml:8: redis: duplicate key "redis" (first at line 4)"#),
        BadConfig(name: "missing environment variable", yaml: head + """
            collections:
              users: { strategy: "${USERS_STRATEGY}" }
            """,
            expected: "cachesync.yaml:7: collections.users.strategy: environment variable USERS_STRATEGY is not set (set it, or write ${USERS_STRATEGY:-default})"),
        BadConfig(name: "an interpolated value is validated at its line", yaml: head + """
            collections:
              users:
                strategy: "${USERS_STRATEGY:-update}"
            """,
            expected: #"cachesync.yaml:8: collections.users.strategy: unknown strategy "delete" (expected invalidate, update, preserve-ttl)"#,
            environment: ["USERS_STRATEGY": "delete"]),
        BadConfig(name: "root is not a map", yaml: "- mongodb\n- redis\n",
            expected: "cachesync.yaml:1: expected a map with mongodb, redis and collections, found a list"),
        BadConfig(name: "empty file", yaml: "# nothing here\n",
            expected: "cachesync.yaml:1: the file is empty (expected a map with mongodb, redis and collections)"),
    ]

    @Test("an invalid config names the file, line and field", arguments: cases)
    func badConfig(_ bad: BadConfig) {
        #expect {
            _ = try ConfigLoader.parse(text: bad.yaml, path: "cachesync.yaml", environment: bad.environment)
        } throws: { error in
            let description = (error as? ConfigError)?.description
            #expect(description == bad.expected)
            return description == bad.expected
        }
    }

    @Test("the table covers at least 15 distinct bad configs")
    func enoughCases() {
        #expect(Set(Self.cases.map(\.expected)).count >= 15)
    }

    @Test("a config error keeps its parts apart")
    func errorParts() {
        let error = ConfigError(file: "a.yaml", line: 3, field: "redis.url", message: "bad")
        #expect(error.description == "a.yaml:3: redis.url: bad")
        #expect(ConfigError(file: "a.yaml", line: nil, message: "gone").description == "a.yaml: gone")
    }

    @Test("suggestions catch typos and case slips, not unrelated words")
    func suggestions() {
        let keys = ["strategy", "operations", "ttl", "keyTemplate", "idType", "onHistoryLost"]
        #expect(ConfigSuggestion.closest(to: "stragety", among: keys) == "strategy")
        #expect(ConfigSuggestion.closest(to: "keytemplate", among: keys) == "keyTemplate")
        #expect(ConfigSuggestion.closest(to: "operation", among: keys) == "operations")
        #expect(ConfigSuggestion.closest(to: "onHistoryLoss", among: keys) == "onHistoryLost")
        #expect(ConfigSuggestion.closest(to: "colour", among: keys) == nil)
        #expect(ConfigSuggestion.editDistance("kitten", "sitting") == 3)
    }
}
