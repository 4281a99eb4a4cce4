"""Code comments and docstrings from a Python source tree (``ast`` for docstrings, ``tokenize`` for
comments). One document per file; each function or class with a docstring or comments is a section named
by its qualified name, module-level text is the first section. Lint pragmas (``noqa``, ``type:``,
``pragma``) and comments under three words are left out: they teach nothing.
"""
from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

from rag.documents import Document, LoadError, LoadReport, stable_id
from rag.loaders._common import load_files, mtime_utc, relpath

_PRAGMAS = ("noqa", "type:", "pragma", "!", "-*-", "fmt:", "pylint:", "isort:")


def _definitions(tree: ast.AST) -> list[tuple[str, int, int, str | None]]:
    """(qualified name, first line, last line, docstring) for every class and function."""
    out = []

    def visit(node, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                out.append((name, child.lineno, child.end_lineno or child.lineno, ast.get_docstring(child)))
                visit(child, name + ".")

    visit(tree, "")
    return out


def _comments(source: str) -> list[tuple[int, str]]:
    """Blocks of consecutive comment lines: (first line, text)."""
    blocks: list[tuple[int, list[str]]] = []
    last = -2
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type != tokenize.COMMENT:
            continue
        text = tok.string.lstrip("#").strip()
        if not text or text.lower().startswith(_PRAGMAS):
            continue
        line = tok.start[0]
        if line == last + 1 and blocks:
            blocks[-1][1].append(text)
        else:
            blocks.append((line, [text]))
        last = line
    return [(line, " ".join(parts)) for line, parts in blocks if len(" ".join(parts).split()) >= 3]


def code_document(source: str, path: Path, rel: str) -> Document | None:
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise LoadError(f"{path}: line {exc.lineno}: not valid Python ({exc.msg})") from None
    defs = _definitions(tree)
    sections: dict[str, list[str]] = {"module": []}
    if ast.get_docstring(tree):
        sections["module"].append(ast.get_docstring(tree))
    for name, _, _, doc in defs:
        if doc:
            sections.setdefault(name, []).append(doc)
    for line, text in _comments(source):
        inner = [d for d in defs if d[1] <= line <= d[2]]
        owner = max(inner, key=lambda d: d[1])[0] if inner else "module"
        sections.setdefault(owner, []).append(f"- line {line}: {text}")
    body = "\n\n".join(f"## {name}\n" + "\n\n".join(parts) for name, parts in sections.items() if parts)
    if not body:
        return None
    return Document(doc_id=stable_id("code", str(path.resolve())), source=str(path.resolve()),
                    title=f"{rel} (code comments)", kind="code", text=body, metadata={"relpath": rel})


def load_code(root: str | Path) -> LoadReport:
    def one(path: Path, base: Path) -> LoadReport:
        doc = code_document(path.read_text(encoding="utf-8"), path, relpath(path, base))
        if doc is None:
            return LoadReport()
        return LoadReport(documents=[Document(**{**doc.__dict__, "updated": mtime_utc(path)})])

    return load_files(Path(root), (".py",), one)
