#!/usr/bin/env python3
"""Check that the Dockerfile's runtime stage installs exactly the Debian packages
whose shared libraries the cachesync binary needs.

    scripts/check_runtime_libs.py BINARY [--dockerfile Dockerfile] [--stage runtime]

The binary's direct dependencies are its ELF DT_NEEDED entries (read here, no
binutils needed); `ldd BINARY` tells where each one resolves, and `dpkg -S`
which Debian package ships that file. Libraries that debian:bookworm-slim
already has (libc, libstdc++, libgcc) are ignored. Packages the binary does not
link but needs at run time (CA certificates) are listed in EXTRA_PACKAGES.
Exit 0 when the runtime apt-get line and the needed set agree, 1 otherwise.
"""

from __future__ import annotations

import argparse
import re
import shlex
import struct
import subprocess
import sys
from pathlib import Path

# Shipped by debian:bookworm-slim itself: never installed by the runtime stage.
BASE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6"}
# Needed at run time without being linked: TLS to MongoDB Atlas and rediss://.
EXTRA_PACKAGES = {"ca-certificates"}

DT_NEEDED = 1
PT_DYNAMIC = 2


def needed_libraries(binary: Path) -> list[str]:
    """The DT_NEEDED sonames of an ELF file, in file order."""
    data = binary.read_bytes()
    if data[:4] != b"\x7fELF":
        raise ValueError(f"{binary}: not an ELF file")
    is64 = data[4] == 2
    endian = "<" if data[5] == 1 else ">"
    if is64:
        phoff, = struct.unpack_from(endian + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x36)
    else:
        phoff, = struct.unpack_from(endian + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x2A)

    segments = []
    for index in range(phnum):
        base = phoff + index * phentsize
        if is64:
            p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(endian + "IIQQQQ", data, base)
        else:
            p_type, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(endian + "IIIII", data, base)
        segments.append((p_type, p_offset, p_vaddr, p_filesz))

    dynamic = [s for s in segments if s[0] == PT_DYNAMIC]
    if not dynamic:
        return []
    _, dyn_offset, _, dyn_size = dynamic[0]
    entry = struct.Struct(endian + ("qQ" if is64 else "iI"))
    needed_offsets, strtab_vaddr = [], None
    for offset in range(dyn_offset, dyn_offset + dyn_size, entry.size):
        tag, value = entry.unpack_from(data, offset)
        if tag == 0:
            break
        if tag == DT_NEEDED:
            needed_offsets.append(value)
        elif tag == 5:  # DT_STRTAB, a virtual address
            strtab_vaddr = value
    if strtab_vaddr is None:
        raise ValueError(f"{binary}: dynamic section without a string table")

    def file_offset(vaddr: int) -> int:
        for p_type, p_offset, p_vaddr, p_filesz in segments:
            if p_type == 1 and p_vaddr <= vaddr < p_vaddr + p_filesz:  # PT_LOAD
                return vaddr - p_vaddr + p_offset
        raise ValueError(f"{binary}: address {vaddr:#x} is in no loaded segment")

    strtab = file_offset(strtab_vaddr)
    names = []
    for value in needed_offsets:
        start = strtab + value
        names.append(data[start:data.index(b"\0", start)].decode())
    return names


def ldd_paths(binary: Path) -> dict[str, str]:
    """soname -> resolved path, from `ldd`; a missing library fails loudly."""
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ldd {binary} failed: {result.stderr.strip() or result.stdout.strip()}")
    paths = {}
    for line in result.stdout.splitlines():
        match = re.match(r"\s*(\S+)\s+=>\s+(.+?)\s+\(0x[0-9a-f]+\)\s*$", line)
        if match:
            paths[match.group(1)] = match.group(2)
        elif "=> not found" in line:
            raise RuntimeError(f"ldd {binary}: {line.strip()}")
    return paths


def debian_package(path: str) -> str:
    """The Debian package that ships `path` (merged-/usr aware), without the architecture."""
    candidates = [path, str(Path(path).resolve())]
    for candidate in list(candidates):
        if candidate.startswith("/lib"):
            candidates.append("/usr" + candidate)
        elif candidate.startswith("/usr/lib"):
            candidates.append(candidate[len("/usr"):])
    for candidate in dict.fromkeys(candidates):
        result = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if result.returncode == 0:
            return result.stdout.split(":", 1)[0].split(",")[0].strip()
    raise RuntimeError(f"dpkg -S: no Debian package ships {path}")


def runtime_packages(dockerfile: Path, stage: str) -> set[str]:
    """Packages named by `apt-get install` in the given stage of the Dockerfile."""
    logical, current = [], ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    if current:
        logical.append(current)

    in_stage, found_stage, packages = False, False, set()
    for instruction in logical:
        words = instruction.split()
        keyword = words[0].upper()
        if keyword == "FROM":
            in_stage = len(words) >= 4 and words[-2].upper() == "AS" and words[-1] == stage
            found_stage = found_stage or in_stage
        elif in_stage and keyword == "RUN":
            for command in re.split(r"&&|;|\|\|", instruction[len(words[0]):]):
                args = shlex.split(command)
                if len(args) >= 2 and args[0] in ("apt-get", "apt") and "install" in args:
                    after = args[args.index("install") + 1:]
                    packages.update(a.split("=")[0] for a in after if not a.startswith("-"))
    if not found_stage:
        raise RuntimeError(f"{dockerfile}: no stage named {stage!r}")
    return packages


def main() -> int:
    """Compare the binary's needs with the runtime stage; print the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary", type=Path)
    parser.add_argument("--dockerfile", type=Path, default=Path(__file__).resolve().parent.parent / "Dockerfile")
    parser.add_argument("--stage", default="runtime")
    args = parser.parse_args()

    try:
        sonames = needed_libraries(args.binary)
        paths = ldd_paths(args.binary)
        needed: dict[str, list[str]] = {}
        unpackaged = []
        for soname in sonames:
            if soname not in paths:
                if soname.startswith("ld-linux") or soname.startswith("linux-vdso"):
                    continue
                raise RuntimeError(f"ldd does not resolve {soname}")
            try:
                needed.setdefault(debian_package(paths[soname]), []).append(soname)
            except RuntimeError:
                unpackaged.append(paths[soname])
        installed = runtime_packages(args.dockerfile, args.stage)
    except (OSError, ValueError, RuntimeError) as error:
        print(f"check_runtime_libs: {error}", file=sys.stderr)
        return 1
    if unpackaged:
        print("check_runtime_libs: no Debian package ships these libraries, so the runtime image cannot"
              " provide them:", file=sys.stderr)
        for path in unpackaged:
            print(f"  {path}", file=sys.stderr)
        if any("swift" in path for path in unpackaged):
            print("  (Swift runtime libraries: build with `swift build -c release --static-swift-stdlib`)",
                  file=sys.stderr)
        return 1

    for package, libs in sorted(needed.items()):
        note = " (in bookworm-slim)" if package in BASE_PACKAGES else ""
        print(f"  {package}{note}: {', '.join(libs)}")
    expected = (set(needed) - BASE_PACKAGES) | EXTRA_PACKAGES
    missing = sorted(expected - installed)
    extra = sorted(installed - expected)
    if missing:
        print(f"check_runtime_libs: runtime stage of {args.dockerfile} lacks: {' '.join(missing)}", file=sys.stderr)
    if extra:
        print(f"check_runtime_libs: runtime stage of {args.dockerfile} installs unneeded: {' '.join(extra)}", file=sys.stderr)
    if missing or extra:
        return 1
    print(f"check_runtime_libs: runtime stage installs exactly {' '.join(sorted(expected))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
