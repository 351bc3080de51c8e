"""The module's function bytes by crate, from a build with names.

    make profile-wasm && python bench/code_by_crate.py [dist/meshtrace-names.wasm] [--top N]

Each function body in the code section is counted under the crate its name
starts with (`<serde_json::de::Deserializer<R> as ...>::f` is serde_json's:
the code a generic's instance adds is charged to the crate that defines it).
"""
from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

from v8perf import _leb, function_names

CRATE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def body_sizes(wasm: Path) -> dict[int, int]:
    """Function index -> body bytes (imported functions come first and have none)."""
    b = wasm.read_bytes()
    i, imported, sizes = 8, 0, {}
    while i < len(b):
        sid = b[i]
        size, i = _leb(b, i + 1)
        end = i + size
        if sid == 2:  # imports: count the functions, which take the first indices
            count, j = _leb(b, i)
            for _ in range(count):
                for _ in range(2):  # module and field names
                    n, j = _leb(b, j)
                    j += n
                kind = b[j]
                j += 1
                if kind == 0:
                    _, j = _leb(b, j)
                    imported += 1
                elif kind == 1:  # table: element type, limits
                    j += 1
                    flags, j = _leb(b, j + 0)
                    _, j = _leb(b, j)
                    if flags & 1:
                        _, j = _leb(b, j)
                elif kind == 2:  # memory: limits
                    flags, j = _leb(b, j)
                    _, j = _leb(b, j)
                    if flags & 1:
                        _, j = _leb(b, j)
                elif kind == 3:  # global: type, mutability
                    j += 2
        elif sid == 10:
            count, j = _leb(b, i)
            for k in range(count):
                n, j = _leb(b, j)
                sizes[imported + k] = n
                j += n
        i = end
    return sizes


LEGACY_ESCAPES = {"$LT$": "<", "$GT$": ">", "$RF$": "&", "$BP$": "*", "$C$": ",", "$u20$": " ",
                  "$u27$": "'", "$u5b$": "[", "$u5d$": "]", "$u7b$": "{", "$u7d$": "}", "$u3b$": ";",
                  "$u2b$": "+", "$u22$": '"', "$u7e$": "~", "$SP$": "@", "..": "::"}
V0_CRATE = re.compile(r"C(?:s[0-9A-Za-z]*_)?(\d+)")


def demangle(name: str) -> str:
    """Enough of Rust's symbol mangling to read the path: legacy (`_ZN..E`) in
    full, v0 (`_R..`) down to its first crate name."""
    if name.startswith("_ZN"):
        parts, i = [], 3
        while i < len(name) and name[i].isdigit():
            j = i
            while name[j].isdigit():
                j += 1
            n = int(name[i:j])
            part = name[j:j + n]
            if part.startswith("_$"):
                part = part[1:]
            for esc, ch in LEGACY_ESCAPES.items():
                part = part.replace(esc, ch)
            parts.append(part)
            i = j + n
        if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
            parts.pop()
        return "::".join(parts)
    if name.startswith("_R"):
        m = V0_CRATE.search(name, 2)
        if m:
            n = int(m.group(1))
            return name[m.end():m.end() + n] + "::" + name
    return name


def crate_of(name: str) -> str:
    path = demangle(name).replace("dyn ", "").replace("mut ", "").replace("const ", "")
    m = CRATE.search(path)
    if m and path[m.end():m.end() + 2] != "::" and " as " in path:
        # `<f64 as serde_core::de::Deserialize>::deserialize`: the trait's crate
        m = CRATE.search(path, path.index(" as ") + 4)
    return m.group(0) if m else "?"


def main(argv: list[str]) -> None:
    args = [a for a in argv if not a.startswith("--")]
    top = int(argv[argv.index("--top") + 1]) if "--top" in argv else 0
    if top:
        args.remove(str(top))
    wasm = Path(args[0] if args else "dist/meshtrace-names.wasm")
    names, sizes = function_names(wasm), body_sizes(wasm)
    by_crate = Counter()
    for idx, n in sizes.items():
        by_crate[crate_of(names.get(idx, "?"))] += n
    total = sum(sizes.values())
    print(f"{wasm}: {len(sizes)} functions, {total:,} bytes of code")
    for crate, n in by_crate.most_common():
        print(f"{n:>9,} {100 * n / total:5.1f}%  {crate}")
    if top:
        print(f"\nthe {top} largest functions:")
        for idx, n in sorted(sizes.items(), key=lambda kv: -kv[1])[:top]:
            print(f"{n:>9,}  {demangle(names.get(idx, '?'))[:150]}")


if __name__ == "__main__":
    main(sys.argv[1:])
