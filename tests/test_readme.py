"""The README is a manual: its Vertex AI examples build the job they promise, and every link leads somewhere.

The README shows one Vertex AI run twice: as the pipelineJobs request body (`kfp-distill submit request.json`)
and as an `aiplatform.PipelineJob`. Both are taken from the README as written and built offline, with Artifact
Registry, Cloud Storage and the job service replaced by stand-ins, and the create request each would send is
compared field by field. The links of every Markdown page users read are followed to their files and headings.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
import yaml
from google.auth.credentials import AnonymousCredentials

from kfp_distill._implementation.settings import IMAGE
from kfp_distill.interfaces.submitting import build_pipeline_job, validate_request

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PULLABLE_IMAGE = "us-docker.pkg.dev/project/images/kfp-distill:0.1.0"
MAX_README_LINES = 300

# Every Markdown page a user reads: the README, docs/, the benchmarks' and the components' READMEs.
PAGES = sorted(
    [README, *ROOT.glob("docs/*.md"), *ROOT.glob("benchmarks/**/README.md"), *ROOT.glob("components/*/README.md")]
)
# Words only the people who build this project would know.
IN_HOUSE = re.compile(r"\bthe seed's\b|\bissue #?\d|\bthe lead\b", re.IGNORECASE)


def _code_block(text: str, language: str, containing: str) -> str:
    """The one fenced code block of `language` that contains `containing`."""
    blocks = [body for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", text, re.M | re.S) if lang == language]
    found = [body for body in blocks if containing in body]
    assert len(found) == 1, f"README.md should hold one ```{language} block with {containing!r}, not {len(found)}"
    return found[0]


@pytest.fixture
def vertex_ai_stand_ins(monkeypatch):
    """Artifact Registry serves the compiled template (with a pullable image), the job service records each
    create request, Cloud Storage's bucket check is recorded, credentials are anonymous and the network is shut.
    Yields the list of recorded create requests."""
    import google.auth
    from google.cloud.aiplatform.utils import gcs_utils, yaml_utils
    from google.cloud.aiplatform_v1.services.pipeline_service import PipelineServiceClient

    template = (ROOT / "compiled" / "distillation.yaml").read_text().replace(IMAGE, PULLABLE_IMAGE)
    fetched, created = [], []

    class TemplateAnswer:
        def read(self) -> bytes:
            return template.encode()

    def artifact_registry(request, *args, **kwargs):
        fetched.append(request.full_url)
        return TemplateAnswer()

    def create_pipeline_job(self, parent=None, pipeline_job=None, pipeline_job_id=None, timeout=None, **kwargs):
        created.append({"parent": parent, "pipeline_job": pipeline_job})
        answer = type(pipeline_job)(pipeline_job)
        answer.name = f"{parent}/pipelineJobs/{pipeline_job_id}"
        return answer

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(google.auth, "default", lambda *args, **kwargs: (AnonymousCredentials(), None))
    monkeypatch.setattr(yaml_utils.request, "urlopen", artifact_registry)
    monkeypatch.setattr(PipelineServiceClient, "create_pipeline_job", create_pipeline_job)
    monkeypatch.setattr(
        gcs_utils, "create_gcs_bucket_for_pipeline_artifacts_if_it_does_not_exist", lambda **kwargs: None
    )
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield created, fetched, yaml.safe_load(template)


def _sent(created: dict) -> dict:
    """The parts of a create request the README's two forms must agree on."""
    job = created["pipeline_job"]
    return {
        "parent": created["parent"],
        "display_name": job.display_name,
        "template_uri": job.template_uri,
        "pipeline_root": job.runtime_config.gcs_output_directory,
        "parameter_values": dict(job.runtime_config.parameter_values),
        "service_account": job.service_account,
        "kms_key_name": job.encryption_spec.kms_key_name,
        "pipeline_name": job.pipeline_spec["pipelineInfo"]["name"],
    }


def test_readme_pipeline_job_and_request_body_send_the_same_job(vertex_ai_stand_ins):
    created, fetched, template = vertex_ai_stand_ins
    readme = README.read_text()
    body = json.loads(_code_block(readme, "json", '"templateUri"'))

    # The request body, as `kfp-distill submit request.json --project PROJECT --location us-central1` sends it.
    checked = validate_request(body, template=template)
    assert not checked.notes, checked.notes
    build_pipeline_job(checked, project="PROJECT", location="us-central1").submit(
        service_account=checked.service_account
    )
    # The README's aiplatform.PipelineJob snippet, run as written.
    exec(compile(_code_block(readme, "python", "aiplatform.PipelineJob("), str(README), "exec"), {})

    assert fetched == [body["templateUri"]] * 2, "each form reads the template from the Artifact Registry URI"
    from_body, from_snippet = (_sent(request) for request in created)
    assert from_snippet == from_body
    assert from_snippet == {
        "parent": "projects/PROJECT/locations/us-central1",
        "display_name": body["displayName"],
        "template_uri": body["templateUri"],
        "pipeline_root": body["runtimeConfig"]["gcsOutputDirectory"],
        "parameter_values": body["runtimeConfig"]["parameterValues"],
        "service_account": body["serviceAccount"],
        "kms_key_name": body["encryptionSpec"]["kmsKeyName"],
        "pipeline_name": "distillation",
    }


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    anchors, seen = set(), {}
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        slug = _slug(heading)
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _links(page: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.findall(r"\]\(([^)\s]+)\)", text)


def test_every_relative_link_leads_to_a_file_and_heading():
    broken = []
    for page in PAGES:
        for link in _links(page):
            if re.match(r"[a-z]+://", link):
                continue
            path, _, anchor = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists():
                broken.append(f"{page.relative_to(ROOT)}: {link} (no such file)")
            elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
                broken.append(f"{page.relative_to(ROOT)}: {link} (no such heading)")
    assert not broken, "\n".join(broken)


def test_pages_use_no_in_house_words():
    found = [
        f"{page.relative_to(ROOT)}:{number}: {line.strip()}"
        for page in PAGES
        for number, line in enumerate(page.read_text().splitlines(), 1)
        if IN_HOUSE.search(line)
    ]
    assert not found, "\n".join(found)


def test_readme_stays_a_manual():
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, (
        f"README.md has {lines} lines (at most {MAX_README_LINES}): move measurements to benchmarks/ and "
        "how-tos to docs/, and link them"
    )


def test_benchmark_tables_live_in_the_benchmarks_readmes():
    """`report.py --readme` and `unlabeled_route.py --readme` rewrite tables between these markers."""
    quality = (ROOT / "benchmarks" / "quality" / "README.md").read_text()
    benchmarks = (ROOT / "benchmarks" / "README.md").read_text()
    readme = README.read_text()
    names = sorted(path.name for path in (ROOT / "benchmarks" / "quality" / "results").iterdir() if path.is_dir())
    expected = {(quality, f"quality:{name}") for name in names} | {(benchmarks, "unlabeled-route")}
    for page, marker in expected:
        assert page.count(f"<!-- {marker} -->") == 1 and page.count(f"<!-- /{marker} -->") == 1, marker
    assert "<!-- quality:" not in readme and "<!-- unlabeled-route" not in readme, "the README holds no benchmark table"
