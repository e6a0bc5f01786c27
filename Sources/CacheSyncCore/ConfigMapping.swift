/// The checked entries of one YAML map, looked up by key.
struct ConfigMapping {
    /// The map's own node (for errors about missing keys).
    let owner: ConfigNode
    /// The entries in file order.
    let entries: [(key: String, value: ConfigNode)]

    /// The value at `key`, or nil when the key is absent.
    subscript(key: String) -> ConfigNode? {
        entries.first(where: { $0.key == key })?.value
    }

    /// The value at `key`; its absence is an error saying `missing` for `owner.key`.
    func required(_ key: String, _ message: String) throws(ConfigError) -> ConfigNode {
        guard let value = self[key] else {
            throw owner.missing(key, message)
        }
        return value
    }
}
