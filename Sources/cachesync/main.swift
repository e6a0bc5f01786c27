import CacheSync
print("cachesync \(cacheSyncVersion)")
