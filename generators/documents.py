"""Source documents as plain text: .txt, .md, .html and .pdf files, or folders of them."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from tunewiz.errors import TunewizError
from tunewiz.formats import BOMS

SUPPORTED = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf")


def find_documents(project) -> list[Path]:
    """The files named by `generator.documents`, folders expanded (sorted, hidden files skipped)."""
    files: list[Path] = []
    for entry in project.config.generator.documents:
        path = project.path(entry)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in SUPPORTED
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                raise TunewizError(f"generator.documents: the folder {path} holds no "
                                   f"{', '.join(SUPPORTED)} files")
            files.extend(found)
        elif path.is_file():
            if path.suffix.lower() not in SUPPORTED:
                raise TunewizError(f"generator.documents: {path} is not a supported document "
                                   f"({', '.join(SUPPORTED)})")
            files.append(path)
        else:
            raise TunewizError(f"generator.documents: {path} does not exist")
    # A file named twice ("docs" and "docs/a.md") is one document: asked twice, it cost twice.
    unique = {file.resolve(): file for file in reversed(files)}
    return [file for file in files if unique[file.resolve()] is file]


def source_name(project, path: Path) -> str:
    """How a document is named in a pair's source: relative to the project when inside it."""
    try:
        return path.resolve().relative_to(project.root.resolve()).as_posix()
    except ValueError:
        return str(path)


def read_document(path: Path) -> str:
    """The text of one document."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return _read_pdf(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TunewizError(f"{path}: cannot read it: {exc.strerror}") from None
    # UTF-16 and UTF-32 by their byte-order mark (Windows Notepad's "Unicode"), else UTF-8.
    bom, encoding = next(((b, name) for b, name in BOMS if data.startswith(b)), (b"", "utf-8"))
    try:
        text = data[len(bom):].decode(encoding)
    except UnicodeDecodeError as exc:
        raise TunewizError(f"{path}: not {encoding} text ({exc.reason} at byte {exc.start}); save it as "
                           "UTF-8") from None
    if suffix in (".html", ".htm"):
        return html_to_text(text)
    return text


def _read_pdf(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise TunewizError(f"{path}: the PDF is encrypted; save an unencrypted copy first")
        pages = [page.extract_text() or "" for page in reader.pages]
    except PdfReadError as exc:
        raise TunewizError(f"{path}: not a readable PDF ({exc})") from None
    except OSError as exc:
        raise TunewizError(f"{path}: cannot read it: {exc.strerror}") from None
    # Page breaks end paragraphs; the chunker splits on blank lines.
    return "\n\n".join(page.strip() for page in pages if page.strip())


_BLOCK_TAGS = {"p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "header",
               "footer", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "dd", "dt", "hr"}
_SKIPPED_TAGS = {"script", "style", "head", "noscript", "template"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag == "body":
            self._skipping = 0  # </head> may be left out: the body ends the head all the same
        elif tag in _SKIPPED_TAGS:
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag in _SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if not self._skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Visible text of an HTML page, one paragraph per block element."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    text = "".join(parser.parts)  # entities are read already (convert_charrefs): "&amp;lt;" stays "&lt;"
    paragraphs = (" ".join(block.split()) for block in text.split("\n\n"))
    return "\n\n".join(p for p in paragraphs if p)
