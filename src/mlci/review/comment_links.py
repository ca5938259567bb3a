"""Check every reference in the untrusted report against the link policy, and rewrite the ones
that name attachments.

Every reference in the markdown (images, links, reference definitions, autolinks, bare URLs, HTML
``src``/``href``/... attributes) must be an in-page anchor, an https link to the GitHub server
itself, or an attachment that ``pr.json`` declares; anything else raises
``RefusedReferenceError`` (an ``ArtifactError``) and refuses the whole comment. Attachments are
not shown inline (nothing is uploaded anywhere): their references become links to the workflow
run, whose artifact holds them. The scan is deliberately wider than markdown and linear in the
report's size. Standard library only.
"""

from __future__ import annotations

import html
import itertools
import re
import urllib.parse
from dataclasses import dataclass

from mlci.review.comment_artifact import ArtifactError

MAX_DESTINATION = 4096  # a link destination is read up to this many characters


class RefusedReferenceError(ArtifactError):
    """A reference in the report points somewhere it may not."""


@dataclass(frozen=True)
class Reference:
    kind: str  # "image", "link", "reference definition", "autolink", "URL", "HTML src", ...
    target: str  # as written
    start: int  # span of the target in the report
    end: int


@dataclass(frozen=True)
class LinkPolicy:
    """Where references may point: in-page anchors, https on the GitHub server's host, and the
    declared attachments (which are rewritten to ``artifact_url``, the ``model-report``
    artifact itself, when known; else to ``run_url``, the workflow run holding it)."""

    host: str
    port: int | None
    attachments: frozenset[str]
    run_url: str
    artifact_url: str | None = None

    @property
    def attachment_url(self) -> str:
        return self.artifact_url or self.run_url


_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f\s]")


def _normalise(target: str) -> str:
    text = target.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    return _ESCAPED.sub(r"\1", html.unescape(text))


def classify(target: str, policy: LinkPolicy) -> str | None:
    """Return the attachment a reference names, None for an allowed link; or refuse it."""
    text = _normalise(target)
    if text == "" or text.startswith("#"):
        return None  # this comment itself, or an anchor in it
    if _CONTROL.search(text) or "\\" in text:
        raise RefusedReferenceError("contains whitespace, control characters or a backslash")
    scheme = _SCHEME.match(text)
    if scheme:
        if scheme.group(1).lower() != "https":
            raise RefusedReferenceError(
                f"uses the scheme {scheme.group(1).lower()}: (only https links to "
                f"{policy.host} are allowed)"
            )
        parts = urllib.parse.urlsplit(text)
        try:
            port = parts.port
        except ValueError:
            raise RefusedReferenceError("has an invalid port") from None
        if "@" in parts.netloc or (parts.hostname or "") != policy.host or port != policy.port:
            raise RefusedReferenceError(f"links outside {policy.host} (only https links to it)")
        return None
    if text.startswith("//"):
        raise RefusedReferenceError("is a scheme-relative URL")
    path = urllib.parse.unquote(text)
    if _CONTROL.search(path) or "\\" in path:
        raise RefusedReferenceError("contains whitespace, control characters or a backslash")
    if path.startswith("/"):
        raise RefusedReferenceError("is an absolute path")
    parts = path.split("/")
    if ".." in parts:
        raise RefusedReferenceError("leaves the artifact folder ('..')")
    name = "/".join(p for p in parts if p not in ("", "."))
    if name in policy.attachments:
        return name
    raise RefusedReferenceError('is not a declared attachment (pr.json "attachments")')


def _escaped(text: str, i: int) -> bool:
    """True if text[i] is backslash-escaped."""
    n = 0
    while i - n - 1 >= 0 and text[i - n - 1] == "\\":
        n += 1
    return n % 2 == 1


def _bracket_pairs(text: str) -> dict[int, int]:
    """Matching square brackets, both ways (``[`` index <-> ``]`` index), skipping backslash
    escapes: one linear pass, so a hostile report cannot make the scan quadratic."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            stack.append(i)
        elif ch == "]" and stack:
            opener = stack.pop()
            pairs[opener], pairs[i] = i, opener
        i += 1
    return pairs


def _destination_end(text: str, pos: int) -> int:
    """End of an inline link destination starting at ``pos`` (balanced parentheses)."""
    if text.startswith("<", pos):
        end = text.find(">", pos)
        newline = text.find("\n", pos)
        if end != -1 and (newline == -1 or end < newline):
            return end + 1
    depth, i, stop = 0, pos, min(len(text), pos + MAX_DESTINATION)
    while i < stop:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch.isspace() or ord(ch) < 0x20:
            break
        if ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                break
            depth -= 1
        i += 1
    return min(i, stop)


_DEFINITION = re.compile(
    # conservative: also inside block quotes and list items, at any indentation
    r"^[ \t>]*(?:(?:[-+*]|\d{1,9}[.)])[ \t>]+)*"
    r"\[((?:[^\[\]\\]|\\.){1,999})\]:[ \t]*(?:\r?\n[ \t>]*)?(<[^<>\n]*>|\S+)",
    re.M,
)
_AUTOLINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*)>")
# GitHub links URLs with a scheme, and "www." after a space, start of line, "*", "_", "~" or "("
_BARE_URL = re.compile(
    r"(?:(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,31}://|(?<![^\s*_~(])www\.)[^\s<>]*"
)
_URL_ATTRIBUTES = (
    "href|src|srcset|cite|longdesc|poster|action|formaction|background|xlink:href|lowsrc|"
    "dynsrc|ping|manifest|codebase|archive|usemap|icon"
)
_ATTRIBUTE = re.compile(
    rf"(?<![\w:-])({_URL_ATTRIBUTES})\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s\"'>]+)", re.I
)
_IMG_TAG = re.compile(r"<img\b[^<>]*>", re.I)
_ALT = re.compile(r"(?<![\w-])alt\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s\"'>]+)", re.I)


def _unquote_attribute(value: str) -> tuple[str, int]:
    """The attribute value without quotes, and the offset of that value in ``value``."""
    if value[:1] in "\"'" and len(value) >= 2:
        return value[1:-1], 1
    return value, 0


def _label(text: str) -> str:
    return " ".join(text.split()).casefold()


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _refuse(text: str, ref: Reference, err: RefusedReferenceError) -> RefusedReferenceError:
    target = ref.target if len(ref.target) <= 80 else ref.target[:77] + "..."
    return RefusedReferenceError(
        f"report.md line {_line_of(text, ref.start)}: {ref.kind} {target!r} {err}"
    )


def rewrite_report(text: str, policy: LinkPolicy) -> str:
    """Check every reference in the report; rewrite references to attachments as links to the
    workflow run (there is no image host: nothing but the API ever receives a byte).

    The scan is deliberately wider than markdown: it reads code blocks, HTML comments and text
    that would not render as a link, so a parser difference can only cause a refusal."""
    edits: list[tuple[int, int, str]] = []
    pairs = _bracket_pairs(text)

    def check(ref: Reference) -> str | None:
        try:
            return classify(ref.target, policy)
        except RefusedReferenceError as err:
            raise _refuse(text, ref, err) from None

    # inline links and images: every "](", whatever the (possibly bracketed) text before it
    for match in re.finditer(r"\]\(", text):
        close, pos = match.start(), match.end()
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        end = _destination_end(text, pos)
        opener = pairs.get(close)
        image = (opener is not None and opener > 0 and text[opener - 1] == "!") and not _escaped(
            text, opener - 1
        )
        ref = Reference("image" if image else "link", text[pos:end], pos, end)
        name = check(ref)
        if name is None:
            continue
        edits.append((pos, end, policy.attachment_url))
        if image:
            assert opener is not None
            alt = text[opener + 1 : close].strip()
            edits.append((opener - 1, opener, ""))
            edits.append((close, close, f" ({name}, PNG)" if alt else f"{name} (PNG)"))

    # reference definitions; images that use them
    attachment_labels: set[str] = set()
    for match in _DEFINITION.finditer(text):
        ref = Reference("reference definition", match.group(2), match.start(2), match.end(2))
        if check(ref) is not None:
            attachment_labels.add(_label(match.group(1)))
            edits.append((ref.start, ref.end, policy.attachment_url))
    if attachment_labels:
        for match in re.finditer(r"!\[", text):
            bang = match.start()
            close = pairs.get(bang + 1)
            if _escaped(text, bang) or close is None or text.startswith("(", close + 1):
                continue
            label = text[bang + 2 : close]
            if text.startswith("[", close + 1):
                end = pairs.get(close + 1)
                if end is not None and end > close + 2:
                    label = text[close + 2 : end]
            if _label(label) in attachment_labels:
                edits.append((bang, bang + 1, ""))
                edits.append((close, close, " (PNG)"))

    # autolinks and bare URLs (GitHub links http://, https://, www. in plain text)
    for match in _AUTOLINK.finditer(text):
        check(Reference("autolink", match.group(1), match.start(1), match.end(1)))
    for match in _BARE_URL.finditer(text):
        url = match.group(0).rstrip(".,:;!?*_~'\")]}|")
        if url.lower().startswith("www."):
            url = "http://" + url
        check(Reference("URL", url, match.start(), match.start() + len(url)))

    # HTML: every URL-valued attribute anywhere; <img> of an attachment becomes a link
    replaced: set[int] = set()  # src values whose whole <img> tag is replaced
    for tag in _IMG_TAG.finditer(text):
        for attribute in _ATTRIBUTE.finditer(tag.group(0)):
            if attribute.group(1).lower() != "src":
                continue
            value, offset = _unquote_attribute(attribute.group(2))
            start = tag.start() + attribute.start(2) + offset
            name = check(Reference("HTML src", value, start, start + len(value)))
            if name is not None:
                alt_match = _ALT.search(tag.group(0))
                alt = html.unescape(_unquote_attribute(alt_match.group(1))[0]) if alt_match else ""
                alt = re.sub(r"[\[\]\\\n<>]", " ", alt).strip()
                label = f"{alt} ({name}, PNG)" if alt else f"{name} (PNG)"
                edits.append((tag.start(), tag.end(), f"[{label}]({policy.attachment_url})"))
                replaced.add(start)
    for attribute in _ATTRIBUTE.finditer(text):
        kind = f"HTML {attribute.group(1).lower()}"
        value, offset = _unquote_attribute(attribute.group(2))
        start = attribute.start(2) + offset
        if kind == "HTML srcset":
            for candidate in html.unescape(value).split(","):
                url = (candidate.split() or [""])[0]
                if check(Reference(kind, url, start, start + len(value))) is not None:
                    raise _refuse(
                        text,
                        Reference(kind, url, start, start),
                        RefusedReferenceError("names an attachment: use src (it becomes a link)"),
                    )
            continue
        if check(Reference(kind, value, start, start + len(value))) is None:
            continue
        if start not in replaced:
            edits.append((start, start + len(value), html.escape(policy.attachment_url)))

    return _apply(text, edits)


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    edits = sorted(set(edits), key=lambda e: (e[0], e[1]))
    for (_s1, e1, _), (s2, _e2, _) in itertools.pairwise(edits):
        if s2 < e1:
            raise RefusedReferenceError(
                f"report.md line {_line_of(text, s2)}: overlapping references to attachments"
            )
    out, last = [], 0
    for start, end, new in edits:
        out += [text[last:start], new]
        last = end
    out.append(text[last:])
    return "".join(out)
