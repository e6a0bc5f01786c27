# Sourced by the other scripts: puts the Swift toolchain and the project's Python venv on PATH.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ -d /opt/swift/usr/bin ] && case ":$PATH:" in *":/opt/swift/usr/bin:"*) ;; *) PATH="/opt/swift/usr/bin:$PATH" ;; esac
PATH="$here/.venv/bin:$PATH"
export PATH
