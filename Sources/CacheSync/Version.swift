import CacheSyncCore
/// The version of cachesync.
public let cacheSyncVersion = "0.1.0"
