"""Through the API, on the configured backend: a job of each seeded type reaches `succeeded` with
its documented output, run by the processor plugins shipped under plugins/ (issue 6)."""

from __future__ import annotations

import base64
import io

import pytest
from helpers import create_job_type, create_tenant, wait_for_status

SEEDED = {
    "text-analysis-v1": "00000000-0000-4000-8000-000000000101",
    "image-recog-v2": "00000000-0000-4000-8000-000000000102",
    "data-proc-v1": "00000000-0000-4000-8000-000000000103",
    "report-gen-v1": "00000000-0000-4000-8000-000000000104",
    "email-proc-v1": "00000000-0000-4000-8000-000000000105",
}


def run_job(api, customer_id: str, job_type_id: str, input_data: dict) -> dict:
    response = api.post(
        "/jobs",
        json={"customer_id": customer_id, "job_type_id": job_type_id, "input_data": input_data},
    )
    # Sync types (report-gen-v1) answer in the request when they finish in time.
    assert response.status_code in (200, 201, 202), response.text
    done = wait_for_status(api, response.json()["id"], timeout=90)
    assert done["status"] == "succeeded", done["error"]
    return done["result"]


@pytest.fixture(scope="module")
def tenant(api):
    return create_tenant(api, balance_cents=100_000)


def test_processors_for_the_seeded_types_are_installed(api):
    installed = {p["logic_id"] for p in api.get("/processors").json()["items"]}
    missing = set(SEEDED) - installed
    assert not missing, f"plugins not installed: {missing}"


def test_image_recognition_finds_the_astronauts_face(api, tenant):
    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, format="JPEG", quality=90)
    result = run_job(
        api,
        tenant.customer_id,
        SEEDED["image-recog-v2"],
        {"image_base64": base64.b64encode(buffer.getvalue()).decode()},
    )
    assert (result["format"], result["width"], result["height"]) == ("JPEG", 512, 512)
    assert result["object_counts"]["face"] >= 1
    assert len(result["phash"]) == 16
    assert len(result["dominant_colors"]) == 5


def test_data_processing_describes_and_queries_a_csv(api, tenant):
    csv = "id,name,score\n1,Alice,9.5\n2,Bob,\n3,Carol,7.0\n"
    result = run_job(
        api,
        tenant.customer_id,
        SEEDED["data-proc-v1"],
        {
            "items": [{"name": "people", "format": "csv", "content": csv}],
            "query": "SELECT name FROM people WHERE score > 8",
        },
    )
    dataset = result["datasets"][0]
    assert dataset["status"] == "ok" and dataset["row_count"] == 3
    score = next(c for c in dataset["columns"] if c["name"] == "score")
    assert score["null_count"] == 1 and score["min"] == 7.0 and score["max"] == 9.5
    assert result["query_result"]["rows"] == [["Alice"]]
    assert result["summary"] == {"total": 1, "succeeded": 1, "failed": 0}


def test_text_analysis_in_two_languages(api, tenant):
    result = run_job(
        api,
        tenant.customer_id,
        SEEDED["text-analysis-v1"],
        {
            "texts": [
                "I absolutely love this product. It works wonderfully and the team is great.",
                "Das Wetter ist heute sehr schön und wir gehen am Nachmittag im Park spazieren.",
            ]
        },
    )
    english, german = result["results"]
    assert result["count"] == 2
    assert english["language"]["code"] == "en"
    assert english["sentiment"]["label"] == "positive"
    assert english["key_phrases"]
    assert english["word_count"] == 13
    assert german["language"]["code"] == "de"
    assert german["sentiment_reliable"] is False


def test_email_processing_of_a_multipart_message_with_an_attachment(api, tenant):
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "Billing <billing@shop.example>"
    message["To"] = "customer@example.com"
    message["Subject"] = "Your invoice INV-2041"
    message["Message-ID"] = "<inv-2041@shop.example>"
    message.set_content("Hello,\n\nplease find attached your invoice INV-2041 for 49.00 EUR.\n")
    message.add_alternative(
        "<p>Please find attached your <b>invoice</b> INV-2041.</p>", subtype="html"
    )
    message.add_attachment(
        b"%PDF-1.4 test", maintype="application", subtype="pdf", filename="INV-2041.pdf"
    )
    # The seeded Email Processing type is disabled (seed table); operators enable or create one.
    job_type = create_job_type(api, "email-proc-v1", cost=25, processor_type="batch")
    result = run_job(
        api, tenant.customer_id, job_type["id"], {"items": [{"raw": message.as_string()}]}
    )
    item = result["items"][0]
    assert item["headers"]["subject"] == "Your invoice INV-2041"
    assert item["headers"]["from"]["address"] == "billing@shop.example"
    assert "INV-2041" in item["body"]["text"]
    assert [a["filename"] for a in item["attachments"]] == ["INV-2041.pdf"]
    assert item["classification"]["category"] == "invoice_receipt"
    assert result["summary"]["succeeded"] == 1


def test_report_generation_serves_a_pdf_whose_text_matches(api, tenant):
    from pypdf import PdfReader

    result = run_job(
        api,
        tenant.customer_id,
        SEEDED["report-gen-v1"],
        {
            "template_name": "table-report",
            "title": "Quarterly Sales",
            "data": {
                "intro": "Sales by region for the first quarter.",
                "tables": [
                    {
                        "title": "Regions",
                        "columns": ["Region", "Revenue"],
                        "rows": [["North", 1200.5], ["South", 980]],
                    }
                ],
                "charts": [
                    {
                        "type": "bar",
                        "title": "Revenue",
                        "series": [{"name": "2024", "points": [["North", 1200.5], ["South", 980]]}],
                    }
                ],
            },
            "filename": "sales.pdf",
        },
    )
    assert result["artifact"]["name"] == "sales.pdf"
    assert (result["tables"], result["charts"]) == (1, 1)
    jobs = api.get("/jobs", params={"customer_id": tenant.customer_id, "limit": 1}).json()
    job_id = jobs["items"][0]["id"]
    download = api.get(f"/jobs/{job_id}/artifacts/sales.pdf")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/pdf"
    assert int(download.headers["content-length"]) == result["artifact"]["size_bytes"]
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(download.content)).pages)
    for expected in ("Quarterly Sales", "Regions", "North", "South"):
        assert expected in text
