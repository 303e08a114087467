"""The viewer modules a report needs, joined into one script (``bundle``).

Module scripts do not load from ``file://`` (the origin is opaque, so every module fetch fails
CORS). Of the two ways around it, keeping each module's text in the page and importing it through
``blob:`` URLs made at load time, or joining the modules into one script here, the report joins,
because:

- the page runs exactly one inline script, allowed by its hash; the policy needs no ``blob:`` in
  ``script-src`` (which would let any script the page makes run) and the page needs no loader;
- nothing at run time depends on how a browser treats ``blob:`` module imports in an opaque origin
  (they differ, and a mail client's preview or a locked-down browser may refuse them);
- it is small and strict: only import and export lines are rewritten, and the viewer writes them in
  one form (``import { a, b as c } from "./x.js";``, ``export function|class|const NAME``,
  ``export { a } from "./x.js";``). Any other form, a name imported that the module does not
  export, an import cycle or a ``</script`` in the code is refused with the file and line, so a
  change in the viewer breaks the export tests, never a report.

Each module's body is wrapped in its own function scope (its top-level names stay its own, as in a
module; the whole runs as one inline module script, so in strict mode), modules in dependency
order, and an import becomes a destructuring of the exporting module's object. Live bindings are
not kept, so an exported ``let`` is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["VIEWER", "bundle"]

#: The viewer's files, where the server finds them (app.py).
VIEWER: Any = resources.files("tailboard.viewer")

_IMPORT = re.compile(r'import \{([^}]*)\} from "\./([\w-]+)\.js";')
_REEXPORT = re.compile(r'export \{([^}]*)\} from "\./([\w-]+)\.js";')
_EXPORT = re.compile(r"export (?:async function\*?|function\*?|class|const) ([A-Za-z_$][\w$]*)\b")


def _names(spec: str) -> list[tuple[str, str]]:
    """``"a, b as c"`` -> ``[("a", "a"), ("b", "c")]`` (exported name, local name)."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, local = part.partition(" as ")
        out.append((name.strip(), (local or name).strip()))
    return out


@dataclass
class _Module:
    name: str
    body: list[str]
    exports: list[str]
    imports: list[tuple[str, list[tuple[str, str]], int]]  # (module, names, line number)


def _parse(folder: Path, name: str) -> _Module:
    path = folder / f"{name}.js"
    text = path.read_text(encoding="utf-8")
    if re.search(r"</script|<!--", text, re.IGNORECASE):
        raise ValueError(f"{name}.js: holds '</script' or '<!--', which would end the report's script element")
    module = _Module(name, [], [], [])
    for n, line in enumerate(text.splitlines(), 1):
        if m := _IMPORT.fullmatch(line.strip()):
            module.imports.append((m[2], _names(m[1]), n))
            module.body.append(f"const {{ {', '.join(f'{a}: {b}' for a, b in _names(m[1]))} }} = $m_{m[2]};")
        elif m := _REEXPORT.fullmatch(line.strip()):
            module.imports.append((m[2], _names(m[1]), n))
            module.body.append(f"const {{ {', '.join(f'{a}: {b}' for a, b in _names(m[1]))} }} = $m_{m[2]};")
            module.exports += [b for _, b in _names(m[1])]
        elif line.startswith("export "):
            m = _EXPORT.match(line)
            if m is None:
                raise ValueError(f"{name}.js:{n}: an export the report's bundler does not know: {line.strip()}")
            module.exports.append(m[1])
            module.body.append(line[len("export "):])
        elif re.match(r"\s*(import|export)\b", line):
            raise ValueError(f"{name}.js:{n}: an import or export the report's bundler does not know: {line.strip()}")
        else:
            module.body.append(line)
    return module


def bundle(entry: str = "report", folder: Any = VIEWER) -> str:
    """The viewer module ``entry`` and every module it imports, as one script (see the module
    docstring), ending with a call of the entry's ``start()``."""
    modules: dict[str, _Module] = {}
    order: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in modules:
            return
        if name in visiting:
            raise ValueError(f"import cycle: {' -> '.join(visiting + [name])}")
        visiting.append(name)
        module = _parse(folder, name)
        for dep, _, _ in module.imports:
            visit(dep)
        visiting.pop()
        modules[name] = module
        order.append(name)

    visit(entry)
    for module in modules.values():
        for dep, names, line in module.imports:
            missing = [a for a, _ in names if a not in modules[dep].exports]
            if missing:
                raise ValueError(f"{module.name}.js:{line}: {dep}.js does not export {', '.join(missing)}")
    parts = []
    for name in order:
        m = modules[name]
        parts.append(f"// ---- {name}.js\nconst $m_{name} = (() => {{\n" + "\n".join(m.body)
                     + f"\nreturn {{ {', '.join(m.exports)} }};\n}})();")
    parts.append(f"$m_{entry}.start();\n")
    return "\n".join(parts)
