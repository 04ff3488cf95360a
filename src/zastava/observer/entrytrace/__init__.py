"""EntryTrace: follow a container's entrypoint statically to the program(s) that really run (spec §3.1, §10).

Modules, one concept each: :mod:`.parser` (file kinds, shebangs, tree-sitter-bash), :mod:`.interpreter`
(static shell interpretation over a set of states), :mod:`.conditions` (``test``/``[``/``[[``),
:mod:`.wrappers` (tini, gosu, su-exec, setpriv, su, env … and supervisors), :mod:`.launchers` (python, node,
java, ruby, php, perl, dotnet …), :mod:`.tracer` (following an argv; :func:`trace_entrypoint`),
:mod:`.result` (what is returned), :mod:`.cli` (``zastava entrytrace``).
"""

from __future__ import annotations

from .result import Diagnostic, EntryTraceResult, Terminal, TerminalKind
from .tracer import Limits, trace_entrypoint

__all__ = ["Diagnostic", "EntryTraceResult", "Limits", "Terminal", "TerminalKind", "trace_entrypoint"]
