"""Text analysis helpers, shared with other plugins (``innosystem-email-processing`` uses
``detect_language``, ``sentiment`` and ``sentiment_reliable``).

Importing this module is cheap: vaderSentiment, yake, langdetect and segtok are imported on first
use, inside the functions, and the loaded models are cached per process (thread-safe).
"""

from __future__ import annotations

import math
import os
import re
import threading
from functools import cache
from typing import Any

#: Average silent reading speed of adults for non-fiction (Brysbaert 2019), words per minute.
READING_WPM = 238
#: VADER's recommended thresholds on the compound score.
POSITIVE_THRESHOLD = 0.05
NEGATIVE_THRESHOLD = -0.05
#: VADER is run per sentence; sentences longer than this many tokens are scored in chunks
#: (VADER's cost grows quadratically with the length of one piece of text).
VADER_CHUNK_TOKENS = 200
#: How many key phrases YAKE returns, and their maximum length in words.
KEY_PHRASES_TOP = 10
KEY_PHRASES_MAX_WORDS = 3
#: Languages whose lexicon VADER has: only English.
VADER_LANGUAGES = frozenset({"en"})
SENTIMENT_NOTE = "VADER's lexicon is English; scores for text in other languages are not reliable"

_WORD = re.compile(r"[^\W_]+(?:['\u2019\-][^\W_]+)*")  # ' or \u2019 (typographic)
_HAS_WORD_CHAR = re.compile(r"[^\W_]")
_CJK_SENTENCE_END = re.compile(r"(?<=[\u3002\uff01\uff1f])\s*")  # ideographic . ! ?
#: langdetect code -> the code of YAKE's stop-word list, where they differ.
_YAKE_CODES = {"cs": "cz", "zh-cn": "zh", "zh-tw": "zh"}

_lock = threading.Lock()
_detector_factory: Any = None
_vader: Any = None


# --- counting ---------------------------------------------------------------------------------
def count_words(text: str) -> int:
    """Runs of letters or digits; inner apostrophes and hyphens join (``don't``, ``e-mail``).
    Scripts written without spaces (Chinese, Japanese, Thai) are undercounted."""
    return sum(1 for _ in _WORD.finditer(text))


def split_sentences(text: str) -> list[str]:
    """Sentences by segtok (knows abbreviations; blank lines also end a sentence), then split at
    CJK full stops; pieces without a letter or digit are dropped."""
    from segtok.segmenter import split_multi

    out: list[str] = []
    for sentence in split_multi(text):
        for piece in _CJK_SENTENCE_END.split(sentence):
            piece = piece.strip()
            if piece and _HAS_WORD_CHAR.search(piece):
                out.append(piece)
    return out


def reading_time_seconds(words: int, wpm: int = READING_WPM) -> int:
    """Seconds to read ``words`` at ``wpm`` words per minute, rounded up."""
    return math.ceil(words * 60 / wpm) if words > 0 else 0


# --- language ---------------------------------------------------------------------------------
def _factory() -> Any:
    global _detector_factory
    with _lock:
        if _detector_factory is None:
            from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

            DetectorFactory.seed = 0  # deterministic: the same text always gives the same answer
            factory = DetectorFactory()
            factory.set_seed(0)
            factory.load_profile(PROFILES_DIRECTORY)
            _detector_factory = factory
        return _detector_factory


def detect_language(text: str) -> dict[str, Any]:
    """``{"code": ISO 639-1 code or None, "probability": 0..1}`` by langdetect (seed 0).

    langdetect's ``zh-cn``/``zh-tw`` become ``zh``. ``code`` is None when the text has nothing
    to detect from (e.g. only digits or punctuation).
    """
    from langdetect.lang_detect_exception import LangDetectException

    detector = _factory().create()
    detector.append(text)
    try:
        candidates = detector.get_probabilities()
    except LangDetectException:
        candidates = []
    if not candidates:
        return {"code": None, "probability": 0.0}
    best = candidates[0]
    code = best.lang.split("-")[0]
    return {"code": code, "probability": round(float(best.prob), 4)}


# --- sentiment --------------------------------------------------------------------------------
def _analyzer() -> Any:
    global _vader
    with _lock:
        if _vader is None:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

            _vader = SentimentIntensityAnalyzer()
        return _vader


def _vader_pieces(text: str, sentences: list[str] | None) -> list[str]:
    pieces: list[str] = []
    if sentences is None:
        sentences = split_sentences(text)
    for sentence in sentences or [text]:
        tokens = sentence.split()
        if len(tokens) <= VADER_CHUNK_TOKENS:
            pieces.append(sentence)
        else:
            for start in range(0, len(tokens), VADER_CHUNK_TOKENS):
                pieces.append(" ".join(tokens[start : start + VADER_CHUNK_TOKENS]))
    return pieces


def sentiment_label(compound: float) -> str:
    if compound >= POSITIVE_THRESHOLD:
        return "positive"
    if compound <= NEGATIVE_THRESHOLD:
        return "negative"
    return "neutral"


def sentiment(text: str, sentences: list[str] | None = None) -> dict[str, Any]:
    """VADER scores of ``text``: the mean of the scores of its sentences (long sentences in
    chunks of 200 tokens), ``{"compound", "pos", "neu", "neg", "label"}``.

    The label is positive at compound >= 0.05, negative at <= -0.05, else neutral. Pass
    ``sentences`` (from ``split_sentences``) when already known.
    """
    analyzer = _analyzer()
    pieces = _vader_pieces(text, sentences)
    totals = {"compound": 0.0, "pos": 0.0, "neu": 0.0, "neg": 0.0}
    for piece in pieces:
        scores = analyzer.polarity_scores(piece)
        for key in totals:
            totals[key] += float(scores[key])
    n = len(pieces)
    mean = {key: round(value / n, 4) for key, value in totals.items()}
    return {**mean, "label": sentiment_label(mean["compound"])}


def sentiment_reliable(language_code: str | None) -> bool:
    """VADER's lexicon is English: scores are meaningful only for English text."""
    return language_code in VADER_LANGUAGES


# --- key phrases ------------------------------------------------------------------------------
def _yake_stopword_folder() -> str:
    import yake.core.yake as yake_core

    return os.path.join(os.path.dirname(os.path.realpath(yake_core.__file__)), "StopwordsList")


@cache
def _yake_stopword_lists() -> frozenset[str]:
    folder = _yake_stopword_folder()
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return frozenset(
        n[len("stopwords_") : -len(".txt")]
        for n in names
        if n.startswith("stopwords_") and n.endswith(".txt") and n != "stopwords_noLang.txt"
    )


@cache
def _stopwords(yake_code: str | None) -> frozenset[str]:
    """YAKE's stop-word list for ``yake_code`` (None: its language-agnostic list), read the way
    YAKE reads it (UTF-8, else ISO-8859-1) but without YAKE's print to stdout."""
    name = f"stopwords_{yake_code}.txt" if yake_code else "stopwords_noLang.txt"
    with open(os.path.join(_yake_stopword_folder(), name), "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("iso-8859-1")
    return frozenset(text.lower().split("\n"))


def yake_language(language_code: str | None) -> str | None:
    """The YAKE stop-word list for a detected language, or None when YAKE has none for it."""
    if not language_code:
        return None
    code = _YAKE_CODES.get(language_code, language_code)
    return code if code in _yake_stopword_lists() else None


def key_phrases(text: str, language_code: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Up to 10 key phrases of 1-3 words by YAKE, most relevant first (a lower YAKE score is more
    relevant). Uses the stop words of ``language_code`` when YAKE has them, else YAKE's
    language-agnostic list. Returns ``(phrases, language of the stop words used or None)``."""
    import yake

    lan = yake_language(language_code)
    extractor = yake.KeywordExtractor(
        lan=lan or "en",  # only names the list; the stop words themselves are passed below
        n=KEY_PHRASES_MAX_WORDS,
        top=KEY_PHRASES_TOP,
        stopwords=set(_stopwords(lan)),
    )
    phrases = []
    for phrase, score in extractor.extract_keywords(text):
        value = float(score)
        if not math.isfinite(value):
            continue
        phrases.append({"phrase": str(phrase), "score": float(f"{value:.6g}")})
    return phrases, (language_code if lan else None)


# --- everything for one text -------------------------------------------------------------------
def analyze_text(text: str) -> dict[str, Any]:
    """The per-text result of ``text-analysis-v1``."""
    language = detect_language(text)
    reliable = sentiment_reliable(language["code"])
    phrases, phrases_language = key_phrases(text, language["code"])
    words = count_words(text)
    sentences = split_sentences(text)
    return {
        "language": language,
        "sentiment": sentiment(text, sentences),
        "sentiment_reliable": reliable,
        "sentiment_note": None if reliable else SENTIMENT_NOTE,
        "key_phrases": phrases,
        "key_phrases_language": phrases_language,
        "character_count": len(text),
        "word_count": words,
        "sentence_count": len(sentences),
        "reading_time_seconds": reading_time_seconds(words),
        "reading_wpm": READING_WPM,
    }
