import Testing
@testable import CacheSyncCore

/// `${NAME}` / `${NAME:-default}` / `$${` before YAML parsing.
@Suite("Config environment interpolation")
struct ConfigInterpolationTests {
    /// Interpolates `text` with `environment`.
    func expand(_ text: String, _ environment: [String: String] = [:]) throws(ConfigError) -> String {
        try EnvironmentInterpolation.interpolate(text, environment: environment, file: "c.yaml")
    }

    @Test("a set variable replaces ${NAME}")
    func setVariable() throws {
        #expect(try expand("uri: ${URI}", ["URI": "mongodb://db"]) == "uri: mongodb://db")
    }

    @Test("the default is used when the variable is unset or empty, the value when set")
    func defaults() throws {
        #expect(try expand("a: ${X:-one}") == "a: one")
        #expect(try expand("a: ${X:-one}", ["X": ""]) == "a: one")
        #expect(try expand("a: ${X:-one}", ["X": "two"]) == "a: two")
        #expect(try expand("a: ${X:-}") == "a: ")
        #expect(try expand("a: ${X:-mongodb://h:1/?w=1}") == "a: mongodb://h:1/?w=1")
    }

    @Test("a variable set to the empty string gives the empty string")
    func emptyValue() throws {
        #expect(try expand("a: \"${X}\"", ["X": ""]) == "a: \"\"")
    }

    @Test("several references on one line and a lone $ are handled")
    func severalReferences() throws {
        #expect(try expand("${A}:${B:-2} costs $5", ["A": "1"]) == "1:2 costs $5")
    }

    @Test("$${ is a literal ${ and is not interpolated")
    func escape() throws {
        #expect(try expand("a: \"$${HOME}\"", ["HOME": "/root"]) == "a: \"${HOME}\"")
        #expect(try expand("a: $$${X}", ["X": "v"]) == "a: $${X}")
    }

    @Test("line numbers are kept, so later errors point at the right line")
    func linesKept() throws {
        let text = "a: ${A:-1}\nb: ${B:-2}\nc: 3\n"
        #expect(try expand(text).split(separator: "\n").count == 3)
    }

    @Test("comments are left alone, but # inside quotes, URLs and defaults is no comment")
    func comments() throws {
        #expect(try expand("# uri: ${OLD_URI}\na: 1 # was ${OLD}\n") == "# uri: ${OLD_URI}\na: 1 # was ${OLD}\n")
        #expect(try expand("a: \"x # ${A}\" # ${B}", ["A": "1"]) == "a: \"x # 1\" # ${B}")
        #expect(try expand("a: 'it''s # ${A}'", ["A": "1"]) == "a: 'it''s # 1'")
        #expect(try expand("a: it's ${A} # ${B}", ["A": "1"]) == "a: it's 1 # ${B}")
        #expect(try expand("a: redis://h/#${A}", ["A": "1"]) == "a: redis://h/#1")
        #expect(try expand("a: ${A:-x #y}") == "a: x #y")
    }

    @Test("a missing variable names the file, line and variable")
    func missingVariable() {
        #expect(throws: ConfigError(file: "c.yaml", line: 3,
                                    message: "environment variable REDIS_URL is not set (set it, or write ${REDIS_URL:-default})")) {
            try expand("a: 1\nb: 2\nc: ${REDIS_URL}\n")
        }
    }

    @Test("an unterminated or malformed reference is an error at its line")
    func malformed() {
        #expect(throws: ConfigError(file: "c.yaml", line: 2,
                                    message: "unterminated \"${\" (write ${NAME} or ${NAME:-default}; write $${ for a literal ${)")) {
            try expand("a: 1\nb: ${OOPS\nc: }\n")
        }
        #expect(throws: ConfigError(file: "c.yaml", line: 1,
                                    message: "\"${1X}\" is not a variable reference (expected ${NAME} or ${NAME:-default}; write $${ for a literal ${)")) {
            try expand("a: ${1X}")
        }
    }

    @Test("a value with a line break is refused")
    func lineBreakInValue() {
        #expect(throws: ConfigError(file: "c.yaml", line: 1,
                                    message: "the value of ${X} contains a line break, which a config value cannot hold")) {
            try expand("a: ${X}", ["X": "1\nb: 2"])
        }
    }

    @Test("interpolation feeds the parsed config, numbers included")
    func interpolatedConfig() throws {
        let config = try ConfigLoader.parse(text: """
            mongodb: { uri: "${MONGODB_URI}", database: "${DB:-shop}" }
            redis: { url: "redis://${REDIS_HOST:-127.0.0.1}:${REDIS_PORT:-6379}/1" }
            collections:
              users: { strategy: update, ttl: { base: ${USERS_TTL:-60} } }
            """, environment: ["MONGODB_URI": "mongodb://m:27017", "REDIS_PORT": "6390", "USERS_TTL": "45"])
        #expect(config.mongodb == MongoSettings(uri: "mongodb://m:27017", database: "shop"))
        #expect(config.redis.endpoint == RedisURL(host: "127.0.0.1", port: 6390, db: 1))
        #expect(config.collections.first?.ttl.base == 45)
    }
}
