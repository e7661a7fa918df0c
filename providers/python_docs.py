"""The built-in corpus: Python's own documentation, as the running CPython renders it offline.

Two sources, both shipped with every CPython, so the ``local`` engine needs no
network:

* the language reference topics of ``pydoc_data`` (what ``help("nonlocal")``
  shows), each split at its headings into sections, under their real
  docs.python.org pages and anchors (``reference/simple_stmts.html#nonlocal``,
  subsections by their section ids);
* every documented standard-library module that imports here, rendered by
  :mod:`pydoc`: one overview document per module (its docstring and the one-line
  summary of each public function and class) under
  ``https://docs.python.org/3/library/<module>.html``, and one document per
  public function and class under its anchor (``library/shutil.html#shutil.copyfile``).
  Built-ins go to ``functions.html``, ``stdtypes.html`` and ``exceptions.html``
  as the documentation has them; ``asyncio``'s API to its sub-pages.

Modules are imported and rendered in child interpreters (``python -m
providers.python_docs``, their output thrown away), so an import's side
effects never reach the caller's process.
:func:`build` yields ``(url, title, text)`` documents and reports
``progress(done, total)``; :mod:`providers.local_index` indexes them once per
Python version and :data:`CORPUS_VERSION` and caches the index.
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import json
import os
import queue
import re
import subprocess
import sys
import threading
import unicodedata
import warnings
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["DOCS", "CORPUS_VERSION", "TOPIC_PAGES", "build", "topic_documents", "module_documents",
           "documented_modules", "page_of"]

DOCS = "https://docs.python.org/3/"
#: Part of the cached index's name: bump it whenever the documents change shape.
CORPUS_VERSION = 2

Doc = tuple[str, str, str]  # (url, title, text)
Progress = Callable[[int, int], None]

#: Which page of docs.python.org holds each reference topic of ``pydoc_data`` (its label is the anchor).
TOPIC_PAGES: dict[str, str] = {
    **dict.fromkeys(("assert", "assignment", "augassign", "break", "continue", "del", "global", "import",
                     "nonlocal", "pass", "raise", "return", "yield"), "reference/simple_stmts.html"),
    **dict.fromkeys(("async", "class", "compound", "else", "for", "function", "if", "try", "while", "with"),
                    "reference/compound_stmts.html"),
    **dict.fromkeys(("atom-identifiers", "atom-literals", "attribute-references", "await", "binary", "bitwise",
                     "booleans", "calls", "comparisons", "conversions", "dict", "exprlists", "in", "lambda",
                     "lists", "operator-summary", "power", "shifting", "slicings", "subscriptions", "unary"),
                    "reference/expressions.html"),
    **dict.fromkeys(("floating", "id-classes", "identifiers", "imaginary", "integers", "numbers", "strings"),
                    "reference/lexical_analysis.html"),
    **dict.fromkeys(("attribute-access", "callable-types", "context-managers", "customization", "numeric-types",
                     "objects", "sequence-types", "specialnames", "types"), "reference/datamodel.html"),
    **dict.fromkeys(("dynamic-features", "exceptions", "execmodel", "naming"), "reference/executionmodel.html"),
    **dict.fromkeys(("bltin-code-objects", "bltin-ellipsis-object", "bltin-null-object", "bltin-type-objects",
                     "specialattrs", "string-methods", "truth", "typesfunctions", "typesmapping", "typesmethods",
                     "typesmodules", "typesseq", "typesseq-mutable"), "library/stdtypes.html"),
    "formatstrings": "library/string.html",
    "debugger": "library/pdb.html",
}

# Top-level standard-library modules without a page of their own on docs.python.org
# (internals, platform aliases, jokes), and packages documented elsewhere or too big to help.
_UNDOCUMENTED = frozenset({
    "antigravity", "this", "genericpath", "ntpath", "posixpath", "nturl2path", "nt", "opcode", "pydoc_data",
    "sre_compile", "sre_constants", "sre_parse", "xxsubtype", "xxlimited", "xxlimited_35", "encodings",
    "pyexpat", "idlelib", "lib2to3", "turtledemo", "test",
})
#: Private modules that have a page.
_DOCUMENTED_PRIVATE = ("_thread", "__future__")
#: Submodules with a page of their own (``library/<name lowercased>.html``).
_SUBMODULE_PAGES = (
    "os.path", "collections.abc", "concurrent.futures", "curses.ascii", "curses.panel", "email.message",
    "email.parser", "email.generator", "email.policy", "email.errors", "email.headerregistry",
    "email.contentmanager", "email.header", "email.charset", "email.encoders", "email.utils", "email.iterators",
    "html.parser", "html.entities", "http.client", "http.server", "http.cookies", "http.cookiejar",
    "importlib.resources", "importlib.metadata", "logging.config", "logging.handlers",
    "multiprocessing.shared_memory", "unittest.mock", "urllib.request", "urllib.parse", "urllib.error",
    "urllib.robotparser", "xml.etree.ElementTree", "xml.dom", "xml.dom.minidom", "xml.dom.pulldom", "xml.sax",
    "xml.sax.handler", "xml.sax.saxutils", "xml.sax.xmlreader", "xmlrpc.client", "xmlrpc.server",
    "tkinter.ttk", "tkinter.scrolledtext", "tkinter.font", "tkinter.colorchooser", "tkinter.messagebox",
    "dbm", "json",
)
#: Built-in types the documentation describes in stdtypes.html (the other built-ins: functions.html).
_STDTYPES = frozenset({"list", "dict", "str", "tuple", "set", "frozenset", "bytes", "bytearray", "range",
                       "memoryview"})
#: asyncio's API lives on sub-pages; the rest of it on asyncio.html.
_ASYNCIO_PAGES = {
    "asyncio-runner": "run Runner",
    "asyncio-task": "create_task sleep gather wait wait_for as_completed shield timeout timeout_at Timeout "
                    "TaskGroup Task current_task all_tasks run_coroutine_threadsafe to_thread iscoroutine "
                    "iscoroutinefunction eager_task_factory",
    "asyncio-future": "Future ensure_future wrap_future isfuture",
    "asyncio-sync": "Lock Event Condition Semaphore BoundedSemaphore Barrier BrokenBarrierError",
    "asyncio-queue": "Queue PriorityQueue LifoQueue QueueEmpty QueueFull QueueShutDown",
    "asyncio-stream": "open_connection start_server open_unix_connection start_unix_server StreamReader "
                      "StreamWriter",
    "asyncio-subprocess": "create_subprocess_exec create_subprocess_shell",
    "asyncio-eventloop": "get_running_loop get_event_loop set_event_loop new_event_loop AbstractEventLoop "
                         "BaseEventLoop SelectorEventLoop ProactorEventLoop AbstractServer Server Handle "
                         "TimerHandle",
    "asyncio-exceptions": "TimeoutError CancelledError InvalidStateError SendfileNotAvailableError "
                          "IncompleteReadError LimitOverrunError",
    "asyncio-policy": "get_event_loop_policy set_event_loop_policy AbstractEventLoopPolicy "
                      "DefaultEventLoopPolicy",
    "asyncio-protocol": "BaseProtocol Protocol BufferedProtocol DatagramProtocol SubprocessProtocol "
                        "BaseTransport Transport ReadTransport WriteTransport DatagramTransport SubprocessTransport",
}
_ASYNCIO = {name: page for page, names in _ASYNCIO_PAGES.items() for name in names.split()}

_HEADING = re.compile(r"^(?P<title>[^\n]+)\n(?P<rule>[=*\-~^\"]{3,})$", re.M)
_INHERITED = re.compile(r"^\S.* inherited from .*:$")
_RULE = "-" * 70


# -- reference topics ----------------------------------------------------------


def _slug(heading: str) -> str:
    """A section's id as Sphinx makes it from its title ("The "if" statement" -> ``the-if-statement``)."""
    text = unicodedata.normalize("NFKD", heading.replace('"', "")).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return re.sub(r"^[\d-]+", "", text) or "id"


def _split_topic(text: str) -> list[tuple[str, str]]:
    """``(heading, body)`` sections of a topic, split at its headings (the first is the topic's own)."""
    marks = [m for m in _HEADING.finditer(text) if len(m.group("rule")) >= len(m.group("title").rstrip()) - 1]
    if not marks:
        return [("", text.strip())]
    sections = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        sections.append((m.group("title").strip(), text[m.end():end].strip()))
    head = text[:marks[0].start()].strip()
    if head:
        sections[0] = (sections[0][0], head + "\n\n" + sections[0][1])
    return sections


def topic_documents() -> Iterator[Doc]:
    """The reference topics, one document per section, under their real pages and anchors."""
    from pydoc_data.topics import topics

    seen: set[str] = set()
    for label, text in sorted(topics.items()):
        page = TOPIC_PAGES.get(label)
        if page is None:  # a label this table does not know yet (a newer Python): the search page
            yield f"{DOCS}search.html?q={label}", label, text.strip()
            continue
        for i, (heading, body) in enumerate(_split_topic(text)):
            anchor = label if i == 0 else _slug(heading)
            url = f"{DOCS}{page}#{anchor}"
            if url in seen or not body:
                continue
            seen.add(url)
            yield url, heading or label, body


# -- modules -------------------------------------------------------------------


def documented_modules() -> list[str]:
    """The standard-library modules (and submodules) with a page on docs.python.org, by name."""
    top = [n for n in sorted(sys.stdlib_module_names)
           if (not n.startswith("_") or n in _DOCUMENTED_PRIVATE) and n not in _UNDOCUMENTED]
    return sorted(set(top) | set(_SUBMODULE_PAGES))


def page_of(module: str, member: str | None = None, obj: object = None) -> str:
    """The docs.python.org URL of a module, or of one of its members (with its anchor)."""
    if module == "builtins" and member is not None:
        if isinstance(obj, type) and issubclass(obj, BaseException):
            return f"{DOCS}library/exceptions.html#{member}"
        page = "stdtypes" if member in _STDTYPES else "functions"
        return f"{DOCS}library/{page}.html#{member}"
    if module == "asyncio" and member is not None:
        return f"{DOCS}library/{_ASYNCIO.get(member, 'asyncio')}.html#asyncio.{member}"
    url = f"{DOCS}library/{module.lower()}.html"
    return f"{url}#{module}.{member}" if member else url


def _public_members(module: object, name: str) -> list[tuple[str, object]]:
    """Functions and classes a module offers: its ``__all__``, else what it defines itself."""
    names = getattr(module, "__all__", None)
    out = []
    if isinstance(names, (list, tuple)):
        candidates = [n for n in names if isinstance(n, str)]
    else:
        candidates = [n for n in dir(module) if not n.startswith("_")]
    for member in dict.fromkeys(candidates):
        try:
            obj = getattr(module, member)
        except AttributeError:
            continue
        if not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue
        if names is None and getattr(obj, "__module__", None) not in (name, None):
            continue  # imported from elsewhere, not this module's own
        out.append((member, obj))
    return out


def _clean_class(text: str) -> str:
    """pydoc's class text without its ``|`` gutter, inherited members and boilerplate descriptors."""
    lines = [re.sub(r"^ \|  ?", "", line) for line in text.splitlines()]
    blocks: list[list[str]] = [[]]
    for line in lines:
        if line.strip() == _RULE or set(line.strip()) == {"-"} and len(line.strip()) > 40:
            blocks.append([])
        else:
            blocks[-1].append(line)
    kept = []
    for block in blocks:
        first = next((b for b in block if b.strip()), "")
        if _INHERITED.match(first.strip()):
            continue
        if first.strip() == "Data descriptors defined here:" and all(
                b.strip() in ("", "Data descriptors defined here:", "__dict__", "__weakref__")
                or b.startswith("    ") for b in block):
            continue
        kept.append("\n".join(block).rstrip())
    return "\n\n".join(k for k in kept if k.strip())


#: Special methods worth keeping in a class's document (the others are boilerplate to a reader).
_KEEP_DUNDERS = frozenset({"__init__", "__call__", "__enter__", "__exit__", "__iter__", "__next__", "__getitem__",
                           "__len__", "__contains__"})
_BOILERPLATE = re.compile(r"^\s*(Initialize self\.|Create and return a new object\.|Return repr\(self\)\.)")
_ENTRY = re.compile(r"^(?P<name>[A-Za-z_]\w*)(?:\(| = |$)")
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")
_DROP_BLOCKS = ("Method resolution order:", "Built-in subclasses:")


def _tidy(text: str) -> str:
    """Drop what tells a reader nothing: special-method boilerplate, the method resolution order,
    memory addresses (which would also make the corpus differ from run to run)."""
    out: list[str] = []
    skipping = False
    for line in _ADDRESS.sub("", text).splitlines():
        if line and not line[0].isspace():
            m = _ENTRY.match(line)
            name = m.group("name") if m else ""
            skipping = line.strip() in _DROP_BLOCKS or (
                name.startswith("__") and name.endswith("__") and name not in _KEEP_DUNDERS)
            if skipping:
                continue
        elif skipping:
            continue
        if _BOILERPLATE.match(line) and out and out[-1].startswith("__init__("):
            out.pop()  # __init__ with only the generic docstring
            continue
        out.append(line)
    text = "\n".join(out)
    text = re.sub(r"(?m)^(Methods defined here|Data and other attributes defined here|Class methods defined here|"
                  r"Static methods defined here|Readonly properties defined here|Data descriptors defined here):"
                  r"\s*(?=\n\S[^\n]*:\s*$|\Z)", "", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _summary(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().split("\n\n", 1)[0].replace("\n", " ")[:200]


def module_documents(name: str) -> list[Doc]:
    """One module's documents (overview, then one per public function and class); ``[]`` when it
    cannot be imported here. Meant for a worker process: the import runs with output silenced."""
    import pydoc

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            module = importlib.import_module(name)
        except BaseException:  # noqa: BLE001 (ImportError, a platform's SystemExit...: not here)
            return []
        docs: list[Doc] = []
        members = _public_members(module, name)
        summary = _summary(module)
        lines = [f"{name} — {summary}" if summary else name, "", (inspect.getdoc(module) or "").strip()]
        listed = [f"{m}: {_summary(o)}" if _summary(o) else m for m, o in members]
        if listed:
            lines += ["", f"Functions and classes of {name}:", *listed]
        docs.append((page_of(name), f"{name} — {summary}" if summary else name, "\n".join(lines).strip()))
        for member, obj in members:
            try:
                text = pydoc.plaintext.document(obj, member)
            except Exception:  # noqa: BLE001 (a member pydoc cannot render: skip it)
                continue
            text = _tidy(_clean_class(text) if inspect.isclass(obj) else text)
            if not text:
                continue
            qualified = member if name == "builtins" else f"{name}.{member}"
            docs.append((page_of(name, member, obj), qualified, f"{qualified}\n{text}"))
    return docs


def build(progress: Progress | None = None, *, workers: int | None = None) -> Iterator[Doc]:
    """Every document of the corpus: the reference topics, then each documented module that imports
    here, rendered by ``workers`` child interpreters (``python -m providers.python_docs``; default:
    the CPUs, at most 4). A child that dies on an import is restarted for the modules it had left."""
    yield from topic_documents()
    names = documented_modules()
    total = len(names)
    if progress:
        progress(0, total)
    workers = max(1, min(workers or os.cpu_count() or 1, 4, total))
    results: queue.Queue[tuple[int, dict[str, Any] | None]] = queue.Queue()
    pending = {i: names[i::workers] for i in range(workers)}
    children: dict[int, subprocess.Popen[bytes]] = {}

    def start(i: int) -> None:
        child = subprocess.Popen([sys.executable, "-m", "providers.python_docs", *pending[i]],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 env={**os.environ, "PYTHONWARNINGS": "ignore"})
        children[i] = child

        def read() -> None:
            assert child.stdout is not None
            for line in child.stdout:
                try:
                    results.put((i, json.loads(line)))
                except ValueError:
                    continue
            child.wait()
            results.put((i, None))  # this child is done (or died)

        threading.Thread(target=read, name=f"python-docs-{i}", daemon=True).start()

    for i in list(pending):
        if pending[i]:
            start(i)
        else:
            del pending[i]
    done = 0
    try:
        while pending:
            i, item = results.get()
            if item is None:  # the child ended: all done, or it died on the module it had started
                if pending.get(i):
                    pending[i] = pending[i][1:]  # give up the module that killed it, render the rest
                    done += 1
                    if pending[i]:
                        start(i)
                        continue
                pending.pop(i, None)
                continue
            if "docs" in item:
                pending[i] = [n for n in pending[i] if n != item["module"]]
                done += 1
                for url, title, text in item["docs"]:
                    yield url, title, text
                if progress:
                    progress(min(done, total), total)
    finally:
        for child in children.values():
            if child.poll() is None:
                child.kill()
    if progress and done < total:
        progress(total, total)


def _child(names: list[str]) -> int:
    """``python -m providers.python_docs NAME...``: one JSON line per module on the original stdout,
    everything the imports print thrown away."""
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    for name in names:
        out.write(json.dumps({"module": name, "docs": module_documents(name)}, ensure_ascii=False) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
