"""Words of goals and products, in English and Chinese, as search compares them.

English: lowercase words, possessives and plurals folded ("shoes", "shoe's" and "shoe" are one
word). Chinese has no spaces, so it is segmented with jieba (rjieba, the jieba-rs binding), whose
dictionary is loaded on the first Chinese text, never at import (most goals never need it). The bilingual
lexicon (``lexicon.yaml``, data, not code) bridges the two languages for the words a Chinese goal
and an English catalog (or the other way round) must share.
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LEXICON_FILE = Path(__file__).with_name("lexicon.yaml")

_LATIN_WORD = re.compile(r"[a-z0-9]+(?:['’\-][a-z0-9]+)*")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
_DIGITS = re.compile(r"\d+")

# Words that say nothing about which product is meant, in any product text.
STOPWORDS = frozenset(
    {
        "a", "an", "and", "the", "for", "of", "to", "in", "on", "with", "by", "or", "at", "from", "is", "it",
        "its", "this", "that", "these", "those", "as", "be", "are", "our", "your",
        "的", "了", "和", "与", "及", "或", "在", "是", "款", "个",
    }
)  # fmt: skip


def fold(word: str) -> str:
    """One form per English word: possessive and plural endings off, so goal and product agree.

    Singular and plural must land on the same form, not on the dictionary's: "hoodie" and
    "hoodies", "battery" and "batteries" all end in "ie".
    """
    word = word.replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    word = word.strip("'")
    if len(word) > 2 and word.endswith("y") and word[-2] not in "aeiouy" and word.isalpha():
        return word[:-1] + "ie"
    if len(word) <= 3 or not word.endswith("s") or word.isdigit():
        return word
    if word.endswith("ives"):
        return word[:-4] + "ife"
    if word.endswith(("sses", "ches", "shes", "xes", "zes")):
        return word[:-2]
    if word.endswith(("ss", "us", "is")):
        return word
    return word[:-1]


def is_cjk(text: str) -> bool:
    return _CJK_RUN.search(text) is not None


# --- the lexicon -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lexicon:
    """Equivalent words across languages; each English phrase is kept as its folded words."""

    entries: tuple[tuple[tuple[str, ...], tuple[tuple[str, ...], ...]], ...]
    """(Chinese words, English phrases as folded words), each in the order the file lists them."""

    @functools.cached_property
    def chinese_words(self) -> frozenset[str]:
        return frozenset(word for zh, _ in self.entries for word in zh)

    @functools.cached_property
    def heads(self) -> frozenset[str]:
        """Single characters that name a kind of product (鞋, 包): they match inside longer words."""
        return frozenset(word for word in self.chinese_words if len(word) == 1)

    def translations(self, word: str) -> list[str]:
        """``word`` in the other language, the lexicon's first choice first ("马克杯" -> "mug", "cup")."""
        found: list[str] = []
        for zh, en in self.entries:
            if word in zh:
                found += [" ".join(phrase) for phrase in en]
            elif (word,) in en:
                found += list(zh)
        return list(dict.fromkeys(found))

    def alternatives(self, word: str) -> set[tuple[str, ...]]:
        """The phrases that name what ``word`` names (``word`` included), bridging languages only: a
        Chinese word also matches its entry's English phrases and Chinese synonyms; an English word
        its entry's Chinese words, never other English words ("headphones" are not "earbuds")."""
        found: set[tuple[str, ...]] = {(word,)}
        for zh, en in self.entries:
            if word in zh:
                found.update((other,) for other in zh)
                found.update(en)
            elif (word,) in en:
                found.update((other,) for other in zh)
        return found


def _phrase(text: str) -> tuple[str, ...]:
    return tuple(fold(word) for word in _LATIN_WORD.findall(text.lower()))


@functools.cache
def lexicon(path: Path = LEXICON_FILE) -> Lexicon:
    import yaml  # read once, with the first goal's words, not when the planner's modules load

    document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    entries = []
    for entry in document["entries"]:
        zh = tuple(str(word).lower() for word in entry.get("zh", []))
        en = tuple(phrase for phrase in (_phrase(str(text)) for text in entry.get("en", [])) if phrase)
        entries.append((zh, en))
    return Lexicon(entries=tuple(entries))


# --- Chinese segmentation ----------------------------------------------------------------------------

_segmenter_lock = threading.Lock()
_segmenter: Any = None


def _jieba() -> Any:
    """The segmenter with the lexicon's words added; built on first use and shared.

    rjieba binds jieba-rs: jieba's dictionary and algorithm, with binary wheels for Lambda's
    arm64 and a fraction of the Python package's size and load time.
    """
    global _segmenter
    with _segmenter_lock:
        if _segmenter is None:
            import rjieba  # Imported here: the segmenter and its dictionary are only for Chinese text.

            segmenter = rjieba.Jieba()
            for word in sorted(lexicon().chinese_words):
                if len(word) > 1 and not segmenter.has_word(word):
                    segmenter.add_word(word, None, None)
            _segmenter = segmenter
        return _segmenter


def chinese_words(run: str, *, for_search: bool = False) -> list[str]:
    """A run of Chinese characters as words; ``for_search`` adds the shorter words inside long ones."""
    segmenter = _jieba()
    segmented: list[str] = segmenter.cut_for_search(run) if for_search else segmenter.cut(run)
    return [word for word in segmented if word.strip()]


# --- goals and products as words ---------------------------------------------------------------------

Group = frozenset[tuple[str, ...]]
"""One goal word as the phrases that would match it: {("running",), ("跑步",)}."""


@functools.cache
def _token_pattern() -> re.Pattern[str]:
    # Words that mix scripts ("t恤") first, so they stay whole; then English words, then Chinese runs.
    mixed = sorted(
        (word for word in lexicon().chinese_words if re.search(r"[a-z0-9]", word)), key=len, reverse=True
    )
    alternatives = [*(re.escape(word) for word in mixed), _LATIN_WORD.pattern, _CJK_RUN.pattern]
    return re.compile("|".join(alternatives))


def _runs(text: str) -> list[tuple[str, bool]]:
    """The text's words and Chinese runs, each with whether it still needs segmenting."""
    return [
        (match.group(), _CJK_RUN.fullmatch(match.group()) is not None)
        for match in _token_pattern().finditer(text.lower())
    ]


def words(text: str) -> list[str]:
    """The words of ``text`` in order, lowercased as written: what a search box would be sent."""
    found: list[str] = []
    for run, chinese in _runs(text):
        found.extend(chinese_words(run) if chinese else [run])
    return found


def document_terms(text: str) -> list[str]:
    """What a product's text is indexed under: folded English words and the parts of hyphenated ones,
    Chinese words with the shorter words inside them, and the kind a Chinese compound names last."""
    heads = lexicon().heads
    terms: list[str] = []
    for run, chinese in _runs(text):
        if chinese:
            for word in chinese_words(run, for_search=True):
                terms.append(word)
                if len(word) > 1 and word[-1] in heads:
                    terms.append(word[-1])
        else:
            folded = fold(run)
            terms.append(folded)
            if "-" in folded:
                terms.extend(fold(part) for part in folded.split("-") if len(part) > 1)
    return [term for term in terms if term and term not in STOPWORDS]


def term_groups(goal_words: list[str]) -> list[Group]:
    """Each goal word (from ``words``) as the phrases that match it, in either language; stopwords
    and bare numbers are left out. A Chinese word the lexicon does not know also matches its last
    character when that names a kind of product (登山鞋 is a 鞋)."""
    vocabulary = lexicon()
    groups: list[Group] = []
    for word in goal_words:
        term = word if is_cjk(word) else fold(word)
        if not term or term in STOPWORDS or _DIGITS.fullmatch(term):
            continue
        alternatives = vocabulary.alternatives(term)
        if len(alternatives) == 1 and is_cjk(term) and len(term) > 1 and term[-1] in vocabulary.heads:
            alternatives |= vocabulary.alternatives(term[-1])
        group = frozenset(alternatives)
        if group not in groups:
            groups.append(group)
    return groups
