"""What every report says the same way: status symbols, colours and words, the legend,
version order, and one escaping function per output format.

Every string that came from a cell (errors, versions, warnings, metadata) is
untrusted: it may hold Markdown or HTML, control characters, ANSI colour
codes, bidirectional overrides that reorder what a reader sees, or lone
surrogates that crash an encoder. Each format has exactly one function here
that makes such text inert for it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

from compat.contract import KEYWORDS, CellResult, DriftKind, Resolution, Stage, Status

# Not a status: an incompatible cell whose failure moved when a platform fact was changed (failure.platform,
# measured by `kto-compat platform`). It fails on the platform the table ran on (CPU), not as a pair, so every
# report shows it apart from a plain installs-but-breaks.
PLATFORM = "platform"
SYMBOLS: dict[str, str] = {"compatible": "✅", "incompatible": "❌", "unresolvable": "⛔", "error": "⚠️", "flaky": "🔀",
                           PLATFORM: "🖥️"}
# The SVG's font has no colour emoji: each status also has a glyph it does have.
GLYPHS: dict[str, str] = {"compatible": "✓", "incompatible": "✗", "unresolvable": "⊘", "error": "⚠", "flaky": "≈", PLATFORM: "◐"}
# Background colours, light and dark; never the only signal (every cell also carries a symbol and a word).
COLOURS: dict[str, str] = {"compatible": "#c9ecd0", "incompatible": "#f9c6bd", "unresolvable": "#dcdcdc",
                           "error": "#ffe08a", "flaky": "#d9c8f0", PLATFORM: "#fbd9b0"}
COLOURS_DARK: dict[str, str] = {"compatible": "#1f5130", "incompatible": "#6b2620", "unresolvable": "#3c3c3c",
                                "error": "#6a5212", "flaky": "#47366a", PLATFORM: "#6b4516"}
LEGEND: dict[str, str] = {
    "compatible": "every check passed: installs, imports, builds the trainer with the tokenizer as its "
                  "processing class, 3+ BF16 steps with finite losses, the adapter trained, no cell test failed",
    "incompatible": "installs (or tried to) but fails at the stage shown",
    "unresolvable": "the resolver refuses the pair (the declared requirements conflict)",
    "error": "the harness or the machine failed (interrupt, network, index, memory or disk running out, a missing tool, a crash); says nothing about the pair",
    "flaky": "two runs of the cell disagreed; both outcomes are kept",
    PLATFORM: "fails on CPU: installs, but fails on the CPU-only platform the table ran on; measured again with "
              "that platform fact changed (e.g. triton installed), the failure moved, so it belongs to the platform, "
              "not to the pair; on a GPU it was not measured",
}
# What a status is called where a person reads it (a status not named here is called by its own word).
NAMES: dict[str, str] = {PLATFORM: "fails on CPU"}
NOT_MEASURED = "not measured"
# The probes in words, for menus and legends a person reads (the registry's labels are identifiers, which
# JUnit and the CLI keep). A probe missing here shows its label with spaces for underscores.
PROBE_WORDS: dict[str, str] = {
    "import_path": "where KTOTrainer imports from",
    "keyword.processing_class": "does processing_class= build the trainer",
    "keyword.tokenizer": "does tokenizer= build the trainer",
    "deprecated_by.processing_class": "who warns that processing_class= is deprecated",
    "deprecated_by.tokenizer": "who warns that tokenizer= is deprecated",
    "format_mode": "does the trainer apply chat templates itself",
    "prompt_roles": "roles a prompt may end with",
    "batch_size_one": "does a batch of one row per device build",
    "config_fields": "renamed or removed KTOConfig fields",
    "lm_head": "does the trainer compute log-probs through the fused, chunked LM head",
    "platform.device": "which device the cell trained on",
    "platform.triton": "does triton import beside the cell's torch",
    "platform.bitsandbytes": "does bitsandbytes import",
}


def probe_words(key: str, label: str) -> str:
    return PROBE_WORDS.get(key) or label.replace("_", " ")
INFERRED = "inferred"
DRIFT = ("drift: a third-party dependency moved under the pair (an undeclared dependency of TRL, or a "
         "third-party API that moved); the as-of-release grid resolves it as of the pair's release")

assert set(SYMBOLS) == {s.value for s in Status} | {PLATFORM} == set(LEGEND) == set(COLOURS), "one entry per status"

# The page's compact cells mark a failure's stage with one letter (resolve fails as unresolvable, an
# interrupt as error: neither is drawn as a stage).
STAGE_MARKS: dict[Stage, str] = {Stage.RESOLVE: "", Stage.INSTALL: "N", Stage.IMPORT: "I", Stage.CONSTRUCT: "C",
                                 Stage.FORMAT: "F", Stage.TRAIN: "T", Stage.ADAPTER: "A", Stage.TIMEOUT: "\u23f1",
                                 Stage.INTERRUPTED: ""}
STAGE_WORDS: dict[Stage, str] = {Stage.RESOLVE: "resolving", Stage.INSTALL: "install", Stage.IMPORT: "import",
                                 Stage.CONSTRUCT: "building the trainer", Stage.FORMAT: "formatting",
                                 Stage.TRAIN: "training", Stage.ADAPTER: "the adapter's run", Stage.TIMEOUT: "timeout",
                                 Stage.INTERRUPTED: "interrupted"}
KEYWORD_MARKS: dict[str, str] = {"processing_class": "p", "tokenizer": "t"}
RESOLUTION_WORDS: dict[Resolution, str] = {
    Resolution.LATEST: "latest: every other dependency resolved as of today",
    Resolution.AS_OF_RELEASE: "as-of-release: every other dependency resolved as of the pair's release (uv --exclude-newer)",
}
DRIFT_WORDS: dict[DriftKind, str] = {
    DriftKind.UNDECLARED_DEPENDENCY: "undeclared dependency: TRL imports a package none of its declared requirements brings",
    DriftKind.MOVED_API: "moved API: a third-party package no longer has an API the pair uses",
    DriftKind.THIRD_PARTY: "third-party: the import failed inside a third-party package, not in trl or transformers",
    DriftKind.UNKNOWN: "a third-party dependency moved (kind not recorded)",
}
assert set(STAGE_MARKS) == set(STAGE_WORDS) == set(Stage), "one mark and one word per stage"
# "N install, I import, ...": the letters a failure is drawn with, in pipeline order (the page's legend, README).
STAGE_LETTERS = ", ".join(f"{mark} {STAGE_WORDS[stage]}" for stage, mark in STAGE_MARKS.items() if mark)
assert set(KEYWORD_MARKS) == set(KEYWORDS), "one mark per keyword"
assert set(RESOLUTION_WORDS) == set(Resolution) and set(DRIFT_WORDS) == set(DriftKind), "words for every mode and kind"


def platform_reason(r: CellResult) -> str | None:
    """Why an incompatible cell's failure belongs to the platform (measured), or None."""
    f = r.failure
    return f.platform if r.status == Status.INCOMPATIBLE and f is not None and f.platform else None


def shown(r: CellResult) -> str:
    """The status a report shows a cell under: its own, or ``platform`` for a platform-bound failure."""
    return PLATFORM if platform_reason(r) else str(r.status)


def status_name(status: str) -> str:
    return NAMES.get(status, status)


# ANSI escape sequences, C0/C1 controls (tab and newline are handled per format), DEL,
# bidirectional marks/overrides/isolates, lone surrogates.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]")


def plain(text: object) -> str:
    """Safe for a terminal or any text sink: no escapes, controls, bidi overrides or surrogates."""
    return _CONTROL.sub("\ufffd", _ANSI.sub("", str(text)))


def md(text: object) -> str:
    """Inert in a Markdown table cell (COMPAT.md, the job summary, the regression issue body):
    no HTML, no column breaks, no code spans or emphasis, one line."""
    s = html.escape(plain(text), quote=False)
    s = re.sub(r"[\r\n\t]+", " ", s)
    return re.sub(r"([\\|`*_\[\]#~])", r"\\\1", s)


def code(text: object) -> str:
    """A Markdown code span: backslash escapes do not work inside one, so a backtick becomes a quote
    (it would end the span) and the rest is shown literally."""
    return "`" + plain(text).replace("`", "'").replace("\n", " ") + "`"


def xml(text: object) -> str:
    """Text XML 1.0 can carry (JUnit); line ends become \\n, as an XML parser would turn them."""
    return plain(str(text).replace("\r\n", "\n").replace("\r", "\n"))


def pip_line(trl: object, transformers: object, further: Iterable[tuple[str, object]] = ()) -> str:
    """The one way every report and `check` spell the install command of a pair (and its further axes)."""
    return " ".join([f"pip install 'trl=={trl}' 'transformers=={transformers}'", *(f"'{k}=={v}'" for k, v in further)])


# An installed module's path up to site-packages (the build machine's environment), and any other absolute
# path under a machine's working roots: a published report names the module, never the machine's layout.
_SITE = re.compile(r"(?:[A-Za-z]:)?(?:[/\\][^\s'\"():,;/\\]+)+?[/\\](?:site|dist)-packages[/\\]")
_ROOTED = re.compile(r"(?<![\w.])/(?:work|home|root|tmp|Users|opt|var|private|runner|github|builds)/[^\s'\"():,;]*/")


def unpath(text: object) -> str:
    """``/work/run/.compat/envs/x/lib/python3.11/site-packages/trl/core.py`` -> ``trl/core.py``; another absolute
    path under a working root keeps its last component only."""
    return _ROOTED.sub(".../", _SITE.sub("", str(text)))


def first_line(text: object, limit: int = 300) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0][:limit] if lines else ""
