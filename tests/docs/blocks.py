"""Extract the runnable code blocks of a Markdown page, in order, for the doc tests.

A page is read as a newcomer reads it: every fenced block in order. What counts:

* ```` ```python ```` whose first line is ``# NAME.py``: a file the page asks you to write
  (written, not run; ``# NAME.py, continued`` adds to its end); any other
  ```` ```python ````: a program run with the venv's python.
* ```` ```sh ````: shell commands, run as one ``bash`` script; a ```` ```text ```` block
  right after it (or after a Python block) is what that block prints.
* ```` ```console ````: ``$ COMMAND`` lines (``\\`` continues a line), each followed by
  the lines it prints.

An HTML comment on the line just before a fence says how to treat it:
``<!-- not run: REASON -->`` (a reason is required), or ``<!-- background: REGEX -->``
(a long-running command, such as a worker or a broker, started in the background and
ready once its output matches REGEX; it runs until the next background block starts,
as the page asks the reader to stop one with Ctrl-C before starting the next, or until the
page ends), or ``<!-- output varies: REASON -->`` (the output holds timestamps or the
like: numbers are compared as "some number", the rest exactly), or, before a
```` ```text ```` block, ``<!-- file: NAME -->`` (a file the page asks you to write). In
a console block,
``$ streamlog broker ...`` or ``$ streamlog worker ...`` (with ``&`` or without) starts
it in the background, the lines shown under it must be in its log, in order, and
``$ kill %1`` stops it.
Blocks of any other language are illustrations and are not run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Block", "Command", "DocBlockError", "extract", "console_commands"]

_FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
_DIRECTIVE = re.compile(r"^<!--\s*(not run|background|output varies|file)\s*:\s*(.*?)\s*-->\s*$")
_FILE_LINE = re.compile(r"^#\s*([\w./-]+\.py)(, continued)?\s*$")
RUNNABLE = ("python", "sh", "console")


class DocBlockError(ValueError):
    """A page's block or directive is malformed (a directive without its reason, ...)."""


@dataclass(frozen=True)
class Command:
    """One ``$ COMMAND`` of a console block and the lines the page shows it printing."""

    text: str
    output: str


@dataclass
class Block:
    """One fenced block: ``lang``, its ``code``, where it starts (1-based ``line``), the
    ``##`` section it is in, and what the page says about running it."""

    lang: str
    code: str
    line: int
    section: str
    not_run: str | None = None  # the reason given
    background: str | None = None  # the regex that says it is ready
    varies: str | None = None  # why its output's numbers differ from run to run
    file: str | None = None  # a python block that is a file to write
    continued: bool = False  # ... or to add to the end of (``# NAME.py, continued``)
    expect: str | None = None  # the text block shown after it
    commands: list[Command] = field(default_factory=list)  # console blocks

    @property
    def where(self) -> str:
        return f"line {self.line} ({self.section or 'top'})"


def extract(text: str) -> list[Block]:
    """The page's runnable blocks in order (see the module docstring)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    section = ""
    directive: tuple[str, str] | None = None
    last_runnable: Block | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        fence = _FENCE.match(line)
        if fence is None:
            match = _DIRECTIVE.match(line.strip())
            if match:
                directive = (match.group(1), match.group(2))
            elif line.strip():
                directive = None
                if last_runnable is not None:
                    last_runnable = None  # prose between a block and a text block
            i += 1
            continue
        lang = fence.group(2)
        start = i + 1
        i += 1
        body: list[str] = []
        indent = fence.group(1)
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1  # the closing fence
        code = "\n".join(body) + "\n"
        if lang == "text" and directive is not None and directive[0] == "file":
            blocks.append(Block(lang, code, start, section, file=directive[1]))
            directive = None
            last_runnable = None
            continue
        if lang == "text" and last_runnable is not None and last_runnable.expect is None:
            last_runnable.expect = code
            last_runnable = None
            directive = None
            continue
        if lang in RUNNABLE:
            block = Block(lang, code, start, section)
            if directive is not None:
                kind, value = directive
                if not value:
                    raise DocBlockError(f"line {start}: <!-- {kind}: --> needs its reason")
                if kind == "not run":
                    block.not_run = value
                elif kind == "output varies":
                    block.varies = value
                else:
                    block.background = value
            named = _FILE_LINE.match(body[0]) if lang == "python" and body else None
            if named:
                block.file, block.continued = named.group(1), bool(named.group(2))
            if lang == "console":
                block.commands = console_commands(code)
            blocks.append(block)
            last_runnable = block
        else:
            last_runnable = None
        directive = None
    return blocks


def console_commands(code: str) -> list[Command]:
    """The ``$ COMMAND`` lines of a console block with the output lines under each."""
    commands: list[Command] = []
    text: list[str] = []
    output: list[str] = []
    continued = False
    for line in code.splitlines():
        if continued:
            text.append(line)
            continued = line.endswith("\\")
            continue
        if line.startswith("$ "):
            if text:
                commands.append(Command("\n".join(text), _joined(output)))
            text, output = [line[2:]], []
            continued = line.endswith("\\")
        elif text:
            output.append(line)
        else:
            raise DocBlockError(f"console block: output before any command: {line!r}")
    if text:
        commands.append(Command("\n".join(text), _joined(output)))
    return commands


def _joined(lines: list[str]) -> str:
    return "".join(f"{line}\n" for line in lines)
