"""text-analysis-v1 on real text in English, German and Spanish."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any
from uuid import uuid4

import pytest
from innosystem_text_analysis import (
    MAX_TEXT_CHARS,
    MAX_TEXTS,
    MAX_TOTAL_CHARS,
    TextAnalysis,
    innosystem_processors,
)
from innosystem_text_analysis.analysis import (
    READING_WPM,
    count_words,
    detect_language,
    reading_time_seconds,
    sentiment,
    split_sentences,
)

from innosystem import JobContext
from innosystem.errors import ValidationFailed

POSITIVE_EN = (
    "I absolutely love this new phone. The battery life is fantastic, the screen is gorgeous "
    "and the camera takes beautiful pictures. Best purchase I have made all year!"
)
NEGATIVE_EN = (
    "This was the worst hotel I have ever stayed in. The room was dirty, the staff were rude "
    "and the noise kept us awake all night. Terrible, I hated it."
)
GERMAN = (
    "Die Deutsche Bahn hat angekündigt, den Fahrplan im nächsten Jahr grundlegend zu "
    "überarbeiten. Zwischen Berlin und München sollen die Züge künftig jede halbe Stunde "
    "fahren. Fahrgastverbände begrüßen die Pläne, fordern aber mehr Pünktlichkeit."
)
SPANISH = (
    "El ayuntamiento de Madrid presentó ayer un nuevo plan para ampliar la red de bicicletas "
    "públicas. Según el proyecto, se instalarán cincuenta estaciones nuevas antes del verano y "
    "los vecinos podrán usar el servicio con la misma tarjeta del transporte público."
)

PROC = TextAnalysis()


def ctx() -> JobContext:
    return JobContext(
        job_id=uuid4(), attempt=1, job_type_id=uuid4(), customer_id=uuid4(), runner_id="test"
    )


def analyse(data: dict[str, Any]) -> dict[str, Any]:
    return PROC.process(ctx(), PROC.validate_input(data))


# --- registration and laziness ------------------------------------------------------------------
def test_hook_returns_the_processor() -> None:
    [proc] = innosystem_processors()
    assert proc.logic_id == "text-analysis-v1"
    assert (proc.processor_type, proc.kind) == ("async", "cpu")
    schema = proc.describe()["input_schema"]
    assert set(schema["properties"]) == {"text", "texts"}
    assert schema["additionalProperties"] is False


def test_plugin_import_does_not_load_heavy_libraries() -> None:
    code = (
        "import sys, innosystem_text_analysis, innosystem_text_analysis.analysis\n"
        "heavy = [m for m in ('vaderSentiment', 'yake', 'langdetect', 'segtok', 'numpy') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "input_data"),
        ({"text": "a", "texts": ["b"]}, "input_data"),
        ({"text": None}, "input_data"),
        ({"text": ""}, "input_data.text"),
        ({"text": " \n\t "}, "input_data.text"),
        ({"text": 42}, "input_data.text"),
        ({"text": "x" * (MAX_TEXT_CHARS + 1)}, "input_data.text"),
        ({"texts": []}, "input_data.texts"),
        ({"texts": ["fine", "   "]}, "input_data.texts.1"),
        ({"texts": ["a"] * (MAX_TEXTS + 1)}, "input_data.texts"),
        ({"texts": ["x" * MAX_TEXT_CHARS] * 11}, "input_data"),
        ({"text": "hello", "language": "en"}, "input_data.language"),
        ("just a string", "input_data"),
    ],
)
def test_bad_input_is_refused(data: Any, field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        PROC.validate_input(data)
    fields = [d["field"] for d in info.value.details]
    assert fields and all(f.startswith("input_data") for f in fields)
    assert field in fields, fields


def test_validated_input_keeps_only_the_given_field() -> None:
    assert PROC.validate_input({"text": "Hi there"}) == {"text": "Hi there"}
    assert PROC.validate_input({"texts": ["a", "b"]}) == {"texts": ["a", "b"]}


def test_limits_are_inclusive() -> None:
    assert PROC.validate_input({"text": "x" * MAX_TEXT_CHARS})["text"]
    assert len(PROC.validate_input({"texts": ["ok"] * MAX_TEXTS})["texts"]) == MAX_TEXTS
    assert MAX_TOTAL_CHARS == 10 * MAX_TEXT_CHARS
    assert PROC.validate_input({"texts": ["x" * MAX_TEXT_CHARS] * 10})


# --- processing ---------------------------------------------------------------------------------
def test_english_positive_and_negative() -> None:
    out = analyse({"texts": [POSITIVE_EN, NEGATIVE_EN]})
    assert out["count"] == 2
    pos, neg = out["results"]
    assert [pos["index"], neg["index"]] == [0, 1]
    for r in (pos, neg):
        assert r["language"]["code"] == "en"
        assert r["language"]["probability"] > 0.9
        assert r["sentiment_reliable"] is True and r["sentiment_note"] is None
        assert r["key_phrases"] and r["key_phrases_language"] == "en"
        assert r["reading_wpm"] == READING_WPM
    assert pos["sentiment"]["label"] == "positive" and pos["sentiment"]["compound"] > 0.5
    assert neg["sentiment"]["label"] == "negative" and neg["sentiment"]["compound"] < -0.5
    assert pos["sentiment"]["pos"] > pos["sentiment"]["neg"]
    assert pos["word_count"] == 28 and pos["sentence_count"] == 3
    assert pos["reading_time_seconds"] == 8  # 28 words at 238 wpm = 7.06 s, rounded up
    phrases = [p["phrase"].lower() for p in pos["key_phrases"]]
    assert any("battery" in p or "camera" in p or "phone" in p for p in phrases), phrases
    scores = [p["score"] for p in pos["key_phrases"]]
    assert scores == sorted(scores)  # most relevant (lowest YAKE score) first


def test_german_and_spanish() -> None:
    out = analyse({"texts": [GERMAN, SPANISH]})
    de, es = out["results"]
    assert de["language"]["code"] == "de"
    assert es["language"]["code"] == "es"
    for r, lang in ((de, "de"), (es, "es")):
        assert r["sentiment_reliable"] is False
        assert "English" in r["sentiment_note"]
        assert r["key_phrases"] and r["key_phrases_language"] == lang
        assert r["sentiment"]["label"] in ("positive", "negative", "neutral")
    assert any("Bahn" in p["phrase"] or "Berlin" in p["phrase"] for p in de["key_phrases"])
    assert de["sentence_count"] == 3 and es["sentence_count"] == 2


def test_single_text_has_the_same_shape_and_is_deterministic() -> None:
    one = analyse({"text": GERMAN})
    assert one["count"] == 1 and one["results"][0]["index"] == 0
    again = analyse({"texts": [GERMAN]})
    assert json.dumps(one, sort_keys=True) == json.dumps(again, sort_keys=True)
    json.dumps(one, allow_nan=False)  # storable


def test_text_without_letters() -> None:
    r = analyse({"text": "12345 !!! ???"})["results"][0]
    assert r["language"] == {"code": None, "probability": 0.0}
    assert r["sentiment_reliable"] is False
    assert r["key_phrases_language"] is None
    assert r["sentiment"]["label"] == "neutral"


def test_helpers() -> None:
    assert count_words("Don't stop the e-mail, it's 2025.") == 6
    assert split_sentences("Dr. Smith arrived. He sat down!\n\nNew paragraph") == [
        "Dr. Smith arrived.",
        "He sat down!",
        "New paragraph",
    ]
    # "\u3002" and "\uff01" are the ideographic full stop and exclamation mark
    assert split_sentences("今天天气很好\u3002我们去公园吧\uff01") == [
        "今天天气很好\u3002",
        "我们去公园吧\uff01",
    ]
    assert reading_time_seconds(0) == 0 and reading_time_seconds(238) == 60
    assert detect_language(SPANISH)["code"] == "es"
    assert sentiment("I hate this. I hate that.")["label"] == "negative"


def test_long_text_is_scored_in_pieces() -> None:
    text = ("The service was excellent and friendly. " * 2500).strip()  # 100,000 characters
    assert len(text) <= MAX_TEXT_CHARS
    r = analyse({"text": text})["results"][0]
    assert r["sentiment"]["label"] == "positive"
    assert r["sentence_count"] == 2500 and r["word_count"] == 15000


def test_runs_in_the_forkserver_pool_like_the_platform_does() -> None:
    """kind = "cpu": the platform resolves the processor by logic id in a child process."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from innosystem.services.jobs import run_in_child

    data = PROC.validate_input({"texts": [POSITIVE_EN, GERMAN]})
    ids = (str(uuid4()), 1, str(uuid4()), str(uuid4()), "test")
    mp = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=1, mp_context=mp) as pool:
        out = pool.submit(run_in_child, "text-analysis-v1", data, ids).result(timeout=120)
    assert [r["language"]["code"] for r in out["results"]] == ["en", "de"]
