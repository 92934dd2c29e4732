#!/usr/bin/env python3
"""Lists dependency cycles between the top-level modules of each crate of the workspace.

A module depends on another when its files name `crate::<other>` (in a path or a `use crate::{…}`
group). Cycles between crates are refused by cargo itself. Exits 1 when a crate has a cycle.

    python3 scripts/module-cycles.py
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def crates():
    for manifest in sorted(ROOT.glob("**/Cargo.toml")):
        if "target" in manifest.parts or not (manifest.parent / "src").is_dir():
            continue
        yield manifest.parent


def strip_tests(text):
    """Drops `#[cfg(test)] mod tests { … }` blocks: test code may reach anywhere."""
    at = text.find("#[cfg(test)]\nmod tests {")
    return text if at < 0 else text[:at]


def graph(src):
    edges = {}
    for path in sorted(src.rglob("*.rs")):
        rel = path.relative_to(src)
        module = rel.parts[0].removesuffix(".rs")
        if module in ("lib", "main"):
            continue
        text = strip_tests(path.read_text())
        named = set(re.findall(r"\bcrate::([a-z_][a-z0-9_]*)", text))
        for group in re.findall(r"\bcrate::\{([^}]*)\}", text):
            named.update(re.findall(r"(?:^|,)\s*([a-z_][a-z0-9_]*)", group))
        edges.setdefault(module, set()).update(m for m in named if m != module)
    return edges


def cycles(edges):
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in edges:
                continue
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    return found


def main():
    bad = False
    for crate in crates():
        edges = graph(crate / "src")
        shown = ", ".join(f"{m} → {{{', '.join(sorted(d & edges.keys()))}}}" for m, d in sorted(edges.items()))
        print(f"{crate.relative_to(ROOT) or '.'}: {shown or 'one module'}")
        for cycle in cycles(edges):
            bad = True
            print("  cycle: " + " → ".join(cycle))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
