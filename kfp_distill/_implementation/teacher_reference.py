"""What `teacher_model_reference` names, read here once into a `TeacherReference` that every part takes.

A reference, surrounding spaces left out, is read by the first rule of this table that it matches:

| rule | reference | teacher (`TeacherKind`) |
|---|---|---|
| 1 | `precomputed` | none: the rows carry their rationales (`PRECOMPUTED`) |
| 2 | `hf:<model>`: a catalog name, a model folder or `.gguf` file, a URI of one, or a Hub id (`hf:Qwen/Qwen2.5-7B-Instruct`) | a Hugging Face model run in-process by `transformers`, batched, on a GPU when there is one (`HUGGING_FACE`) |
| 3 | `vertex:<model>`: any model name or resource path `google-genai` takes (`vertex:projects/P/locations/L/endpoints/E`) | Gemini on Vertex AI in `project` (required) and `location` (`VERTEX_AI`); a retired PaLM model (rule 7) is refused (`RETIRED_PALM`) |
| 4 | `http://` or `https://` `<base_url>#<model>` (`http://127.0.0.1:8080/v1#qwen`, `https://api.openai.com/v1#gpt-4o-mini`) | the model `<model>` of the OpenAI-compatible server at `<base_url>` (`OPENAI_COMPATIBLE`) |
| 5 | a path or URI ending in `.gguf` (`/models/x.gguf`, `gs://bucket/x.gguf`, `https://host/x.gguf`) | that GGUF file (a URI downloaded once), run by the embedded llama.cpp (`GGUF_FILE`) |
| 6 | a catalog name: `qwen2.5-coder-1.5b-instruct` (the default), `smollm2-135m-instruct` | a GGUF model shipped in PyPI wheels, run by the embedded llama.cpp (`CATALOG_GGUF`) |
| 7 | `gemini-<...>` (`gemini-2.5-flash`); a retired PaLM name (`text-unicorn@001`, `text-bison`, `chat-bison`, `code-bison`, `codechat-bison`, `code-gecko`, any version, or a resource path ending in one) | Gemini on Vertex AI as in rule 3 (`VERTEX_AI`); a PaLM name is refused with the Gemini models to use instead (`RETIRED_PALM`) |
| 8 | anything else: an empty reference, `http(s)://` without `#<model>` or `.gguf`, an unknown name | refused, saying what to write (`ValueError`) |

So `#` makes an `http(s)://` reference an endpoint even when its model's name ends in `.gguf` (llama.cpp's
server may list its model by file name), and `.gguf` makes any other reference a file, even `gemini-x.gguf`.
Prefixes and names are written in lowercase; PaLM names are known in any case.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kfp_distill._implementation.models import CATALOG
from kfp_distill._implementation.redaction import redact_uri
from kfp_distill._implementation.retired_models import is_retired

PRECOMPUTED = "precomputed"
HUGGING_FACE_PREFIX = "hf:"
VERTEX_PREFIX = "vertex:"
GEMINI_PREFIX = "gemini-"
HTTP_SCHEMES = ("http://", "https://")
MODEL_SEPARATOR = "#"
GGUF_SUFFIX = ".gguf"
FORMS = (
    "a catalog name ({catalog}), the path or URI of a .gguf file, '<base_url>#<model>' for an OpenAI-compatible "
    "server (e.g. 'http://127.0.0.1:8080/v1#qwen'), 'gemini-<...>' or 'vertex:<model>' for Vertex AI, "
    "'hf:<model>' for a Hugging Face model, or 'precomputed'"
).format(catalog=", ".join(CATALOG))


class TeacherKind(enum.Enum):
    """Which kind of teacher a reference names (the module docstring's table)."""

    PRECOMPUTED = "precomputed teacher"
    HUGGING_FACE = "Hugging Face model"
    VERTEX_AI = "Vertex AI model"
    OPENAI_COMPATIBLE = "OpenAI-compatible server"
    GGUF_FILE = "GGUF file"
    CATALOG_GGUF = "catalog GGUF model"
    RETIRED_PALM = "retired PaLM model"


@dataclass(frozen=True)
class TeacherReference:
    """A teacher reference, read (see the module docstring).

    Attributes:
        text: The reference as given, surrounding spaces left out.
        kind: What it names.
        model: The model: a Hugging Face model reference, a Vertex AI model name or resource path, the model
            an endpoint is asked for, a GGUF file's path or URI, a catalog name; empty for `precomputed`.
        base_url: An OpenAI-compatible server's base URL (`http://127.0.0.1:8080/v1`); empty for the others.
    """

    text: str
    kind: TeacherKind
    model: str = ""
    base_url: str = ""

    def __repr__(self) -> str:
        # References are logged: an endpoint's password stays out.
        return f"TeacherReference({redact_uri(self.text)!r}, {self.kind.name})"

    @property
    def needs_google_cloud_project(self) -> bool:
        """Whether the teacher runs in a Google Cloud project (Vertex AI), so that it cannot run without one."""
        return self.kind is TeacherKind.VERTEX_AI

    @property
    def is_hosted(self) -> bool:
        """Whether the model answers from a server that may bill it by the token (an endpoint, Vertex AI)."""
        return self.kind in (TeacherKind.OPENAI_COMPATIBLE, TeacherKind.VERTEX_AI)

    @property
    def is_retired(self) -> bool:
        """Whether it names a PaLM model Google has retired on Vertex AI."""
        return self.kind is TeacherKind.RETIRED_PALM

    def expect(self, *kinds: TeacherKind) -> TeacherReference:
        """This reference, when it is of one of `kinds` (what a backend checks it was given).

        Raises:
            ValueError: A reference of another kind.
        """
        if self.kind not in kinds:
            wanted = " or ".join(kind.value for kind in kinds)
            raise ValueError(
                f"teacher_model_reference '{redact_uri(self.text)}' names a {self.kind.value}, not a {wanted}"
            )
        return self

    def project_problem(self, project: str) -> str | None:
        """Why this teacher cannot run with `project` (a Vertex AI teacher without one), or None."""
        if not self.needs_google_cloud_project or project.strip():
            return None
        return (
            f"teacher_model_reference '{self.text}' runs on Vertex AI and needs a Google Cloud project: set the "
            "pipeline's `project` parameter (and `location`, else the global endpoint is used)"
        )


def parse_teacher_reference(text: str) -> TeacherReference:
    """Reads a teacher reference by the rules of the module docstring's table, first match first.

    Args:
        text: A `teacher_model_reference` value.

    Raises:
        ValueError: A reference that names no teacher (rule 8), or a prefix with nothing after it (`hf:`,
            `vertex:`, an endpoint without a model after `#`); the message names `teacher_model_reference` and
            what to write, with any credentials in it redacted.
    """
    reference = text.strip()
    shown = redact_uri(reference)
    if reference == PRECOMPUTED:
        return TeacherReference(reference, TeacherKind.PRECOMPUTED)
    if reference.startswith(HUGGING_FACE_PREFIX):
        model = _named_after(reference, HUGGING_FACE_PREFIX, "hf:/models/qwen2.5-7b-instruct")
        return TeacherReference(reference, TeacherKind.HUGGING_FACE, model)
    if reference.startswith(VERTEX_PREFIX):
        model = _named_after(reference, VERTEX_PREFIX, "vertex:gemini-2.5-pro")
        kind = TeacherKind.RETIRED_PALM if is_retired(model) else TeacherKind.VERTEX_AI
        return TeacherReference(reference, kind, model)
    if reference.startswith(HTTP_SCHEMES) and MODEL_SEPARATOR in reference:
        base_url, _, model = reference.rpartition(MODEL_SEPARATOR)
        if not model.strip():
            raise ValueError(
                f"teacher_model_reference '{shown}': an OpenAI-compatible endpoint is written '<base_url>#<model>', "
                "e.g. 'http://127.0.0.1:8080/v1#qwen'; the model after '#' is missing"
            )
        return TeacherReference(reference, TeacherKind.OPENAI_COMPATIBLE, model.strip(), base_url)
    if reference.endswith(GGUF_SUFFIX):
        return TeacherReference(reference, TeacherKind.GGUF_FILE, reference)
    if reference.startswith(HTTP_SCHEMES):
        raise ValueError(
            f"teacher_model_reference '{shown}' is neither an OpenAI-compatible endpoint, written "
            "'<base_url>#<model>' (e.g. 'http://127.0.0.1:8080/v1#qwen'), nor the URL of a .gguf file"
        )
    if reference in CATALOG:
        return TeacherReference(reference, TeacherKind.CATALOG_GGUF, reference)
    if reference.startswith(GEMINI_PREFIX):
        return TeacherReference(reference, TeacherKind.VERTEX_AI, reference)
    if is_retired(reference):
        return TeacherReference(reference, TeacherKind.RETIRED_PALM, reference)
    if not reference:
        raise ValueError(f"teacher_model_reference is empty: write {FORMS}")
    raise ValueError(f"teacher_model_reference '{shown}' names no teacher (nor a GGUF model): write {FORMS}")


def _named_after(reference: str, prefix: str, example: str) -> str:
    """The model named after `prefix`, or a ValueError when nothing is."""
    model = reference.removeprefix(prefix).strip()
    if not model:
        raise ValueError(
            f"teacher_model_reference '{reference}' names no model: write '{prefix}<model>', e.g. '{example}'"
        )
    return model
