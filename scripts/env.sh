# Sourced by the other scripts: puts the Swift toolchain and the project's Python venv on PATH.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ -d /opt/swift/usr/bin ] && case ":$PATH:" in *":/opt/swift/usr/bin:"*) ;; *) PATH="/opt/swift/usr/bin:$PATH" ;; esac
PATH="$here/.venv/bin:$PATH"
export PATH
# libmongoc keeps performance counters in a /dev/shm file per process (read only by its mongoc-stat tool). A killed
# process leaves its file behind, and a later process given the same pid then warns "Falling back to malloc for
# counters" on its output at load. Every binary and test the scripts start runs without them, as the image does.
export MONGOC_DISABLE_SHM=1
