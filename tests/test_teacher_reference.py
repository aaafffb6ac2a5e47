"""The teacher reference's grammar: a table of references and what they read as, any text read without a crash,
the one documented table, and no other module of the package reading references by their prefixes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kfp_distill._implementation import teacher_reference
from kfp_distill._implementation.teacher_reference import TeacherKind, TeacherReference, parse_teacher_reference

ROOT = Path(__file__).resolve().parent.parent
K = TeacherKind

# (reference, kind, model, base_url): every rule of the module's table, and the cases where rules meet.
READS_AS = [
    ("precomputed", K.PRECOMPUTED, "", ""),
    ("  precomputed\n", K.PRECOMPUTED, "", ""),
    # Rule 2: hf: comes first, whatever follows it.
    ("hf:/models/qwen2.5-7b-instruct", K.HUGGING_FACE, "/models/qwen2.5-7b-instruct", ""),
    ("hf: Qwen/Qwen2.5-7B-Instruct ", K.HUGGING_FACE, "Qwen/Qwen2.5-7B-Instruct", ""),
    ("hf:gs://bucket/model-dir", K.HUGGING_FACE, "gs://bucket/model-dir", ""),
    ("hf:smollm2-135m-instruct", K.HUGGING_FACE, "smollm2-135m-instruct", ""),
    ("hf:https://host/v1#m", K.HUGGING_FACE, "https://host/v1#m", ""),
    ("hf:/models/x.gguf", K.HUGGING_FACE, "/models/x.gguf", ""),
    # Rule 3: vertex: names any Vertex AI model; a PaLM one is retired.
    ("vertex:gemini-2.5-pro", K.VERTEX_AI, "gemini-2.5-pro", ""),
    ("vertex:projects/P/locations/L/endpoints/E", K.VERTEX_AI, "projects/P/locations/L/endpoints/E", ""),
    ("vertex:x.gguf", K.VERTEX_AI, "x.gguf", ""),
    ("vertex:text-bison", K.RETIRED_PALM, "text-bison", ""),
    ("vertex:publishers/google/models/Text-Bison@002", K.RETIRED_PALM, "publishers/google/models/Text-Bison@002", ""),
    # Rule 4 before rule 5: with '#' an http(s) reference is an endpoint, even for a model named like a file.
    ("http://127.0.0.1:8080/v1#qwen", K.OPENAI_COMPATIBLE, "qwen", "http://127.0.0.1:8080/v1"),
    ("https://api.openai.com/v1#gpt-4o-mini", K.OPENAI_COMPATIBLE, "gpt-4o-mini", "https://api.openai.com/v1"),
    ("https://host/v1#models/qwen.gguf", K.OPENAI_COMPATIBLE, "models/qwen.gguf", "https://host/v1"),
    ("http://h:8000/v1#Qwen/Qwen2.5-7B-Instruct", K.OPENAI_COMPATIBLE, "Qwen/Qwen2.5-7B-Instruct", "http://h:8000/v1"),
    ("https://h/v1#a#b", K.OPENAI_COMPATIBLE, "b", "https://h/v1#a"),  # the model follows the last '#'
    ("http://h/v1# qwen ", K.OPENAI_COMPATIBLE, "qwen", "http://h/v1"),
    ("https://ana:pw@h/v1#m", K.OPENAI_COMPATIBLE, "m", "https://ana:pw@h/v1"),
    # Rule 5: '.gguf' makes any other reference a file, even one that looks like a Vertex AI or catalog name.
    ("https://host/model.gguf", K.GGUF_FILE, "https://host/model.gguf", ""),
    ("/models/x.gguf", K.GGUF_FILE, "/models/x.gguf", ""),
    ("gs://bucket/x.gguf", K.GGUF_FILE, "gs://bucket/x.gguf", ""),
    ("file:///models/x.gguf", K.GGUF_FILE, "file:///models/x.gguf", ""),
    ("gemini-x.gguf", K.GGUF_FILE, "gemini-x.gguf", ""),
    ("text-bison.gguf", K.GGUF_FILE, "text-bison.gguf", ""),
    # Rule 6: catalog names.
    ("qwen2.5-coder-1.5b-instruct", K.CATALOG_GGUF, "qwen2.5-coder-1.5b-instruct", ""),
    ("smollm2-135m-instruct", K.CATALOG_GGUF, "smollm2-135m-instruct", ""),
    # Rule 7: gemini- names, and retired PaLM names however written.
    ("gemini-2.5-flash", K.VERTEX_AI, "gemini-2.5-flash", ""),
    ("gemini-2.0-flash-001", K.VERTEX_AI, "gemini-2.0-flash-001", ""),
    ("text-unicorn@001", K.RETIRED_PALM, "text-unicorn@001", ""),
    ("code-bison-32k", K.RETIRED_PALM, "code-bison-32k", ""),
    ("publishers/google/models/codechat-bison", K.RETIRED_PALM, "publishers/google/models/codechat-bison", ""),
    ("Chat-Bison@002", K.RETIRED_PALM, "Chat-Bison@002", ""),
]

# (reference, what the refusal says): rule 8 and prefixes with nothing after them.
REFUSED = [
    ("", "teacher_model_reference is empty: write a catalog name"),
    ("   ", "teacher_model_reference is empty"),
    ("no-such-model", "teacher_model_reference 'no-such-model' names no teacher"),
    ("gs://bucket/model-dir", "names no teacher (nor a GGUF model)"),
    ("Gemini-2.5-flash", "names no teacher"),  # prefixes are written in lowercase
    ("PRECOMPUTED", "names no teacher"),
    ("hf:", "teacher_model_reference 'hf:' names no model: write 'hf:<model>'"),
    ("hf:   ", "names no model"),
    ("vertex:", "write 'vertex:<model>'"),
    ("http://127.0.0.1:8080/v1", "is neither an OpenAI-compatible endpoint, written '<base_url>#<model>'"),
    ("https://host/models/text-bison", "is neither an OpenAI-compatible endpoint"),
    ("http://127.0.0.1:8080/v1#", "the model after '#' is missing"),
    ("http://h/v1#  ", "the model after '#' is missing"),
    ("https://ana:hunter2@h/v1", "'https://***@h/v1' is neither"),  # credentials redacted
]


@pytest.mark.parametrize(("reference", "kind", "model", "base_url"), READS_AS)
def test_each_reference_reads_as_its_row_of_the_table(reference, kind, model, base_url):
    assert parse_teacher_reference(reference) == TeacherReference(reference.strip(), kind, model, base_url)


@pytest.mark.parametrize(("reference", "message"), REFUSED)
def test_a_reference_that_names_no_teacher_is_refused_saying_what_to_write(reference, message):
    with pytest.raises(ValueError) as raised:
        parse_teacher_reference(reference)
    assert message in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_what_each_kind_needs_and_how_it_is_billed():
    vertex, endpoint, local = map(parse_teacher_reference, ("gemini-2.5-flash", "http://h/v1#m", "hf:/models/m"))
    assert vertex.needs_google_cloud_project and not endpoint.needs_google_cloud_project
    assert vertex.project_problem("") and vertex.project_problem("  ") and vertex.project_problem("my-project") is None
    assert endpoint.project_problem("") is None and local.project_problem("") is None
    assert vertex.is_hosted and endpoint.is_hosted and not local.is_hosted
    assert parse_teacher_reference("text-bison").is_retired and not vertex.is_retired
    assert endpoint.expect(K.OPENAI_COMPATIBLE) is endpoint
    with pytest.raises(ValueError, match="names a Hugging Face model, not a GGUF file or catalog GGUF model"):
        local.expect(K.GGUF_FILE, K.CATALOG_GGUF)
    # A reference is logged: its repr shows no password.
    shown = repr(parse_teacher_reference("https://ana:hunter2@h/v1#m"))
    assert shown == "TeacherReference('https://***@h/v1#m', OPENAI_COMPATIBLE)"


# Text near the grammar's edges as well as any text at all.
_PIECES = st.sampled_from(
    ["hf:", "vertex:", "http://", "https://", "gemini-", "precomputed", "text-bison", "#", ".gguf", "/", " ", "@",
     "smollm2-135m-instruct", "publishers/google/models/", ":", "\n", "\x00", "é"]
)
_NEAR_THE_GRAMMAR = st.lists(st.one_of(_PIECES, st.text(max_size=4)), max_size=6).map("".join)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), _NEAR_THE_GRAMMAR))
def test_any_text_reads_as_a_reference_or_is_refused_with_a_value_error(text):
    try:
        reference = parse_teacher_reference(text)
    except ValueError as error:
        assert "teacher_model_reference" in str(error)
        return
    assert reference.text == text.strip() and isinstance(reference.kind, TeacherKind)
    assert reference == parse_teacher_reference(reference.text)  # read again, the same
    if reference.kind is K.PRECOMPUTED:
        assert reference.model == ""
    else:
        assert reference.model and reference.model == reference.model.strip()
    if reference.kind is K.OPENAI_COMPATIBLE:
        assert reference.text.startswith(reference.base_url + "#") and reference.text.endswith(reference.model)
    else:
        assert reference.base_url == ""


def _table(text: str) -> list[str]:
    """The lines of the first Markdown table in `text`."""
    lines = [line.strip() for line in text.splitlines()]
    start = next(index for index, line in enumerate(lines) if line.startswith("|"))
    end = next((index for index in range(start, len(lines)) if not lines[index].startswith("|")), len(lines))
    return lines[start:end]


def test_the_users_guide_shows_the_modules_table_as_it_is():
    table = _table(teacher_reference.__doc__)
    assert len(table) == 10  # header, separator and the 8 rules
    guide = (ROOT / "docs" / "teachers.md").read_text(encoding="utf-8")
    assert _table(guide[guide.index("## Which teacher"):]) == table, (
        "docs/teachers.md's table of teacher references differs from kfp_distill/_implementation/"
        "teacher_reference.py's docstring: copy the module's table there"
    )


# What reads a teacher reference by its prefixes: the strings only the grammar knows, and splitting at '#'.
# `.gguf` and `http(s)://` are read elsewhere too, of other things (model files, data URIs), so not listed.
TEACHER_PREFIXES = frozenset({"hf:", "vertex:", "gemini-", "precomputed"})
PREFIX_METHODS = frozenset({"startswith", "endswith", "removeprefix", "removesuffix"})
SPLIT_METHODS = frozenset({"partition", "rpartition", "split", "rsplit", "find", "rfind", "index", "rindex"})
GRAMMAR_NAMES = frozenset(
    {"PRECOMPUTED", "HUGGING_FACE_PREFIX", "VERTEX_PREFIX", "GEMINI_PREFIX", "HTTP_SCHEMES", "MODEL_SEPARATOR"}
)


def _strings(node: ast.AST | None, constants: dict[str, ast.AST]) -> set[str]:
    """The string constants `node` stands for: a string, a tuple of them, or a module-level name of either."""
    if isinstance(node, ast.Name) and node.id in constants:
        node = constants[node.id]
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return set().union(*(_strings(element, constants) for element in node.elts))
    return set()


def prefix_reading(source: str) -> list[tuple[int, str]]:
    """Where `source` reads teacher references by their prefixes: (line, what), for the AST scan below."""
    tree = ast.parse(source)
    constants = {
        target.id: statement.value
        for statement in tree.body
        if isinstance(statement, ast.Assign)
        for target in statement.targets
        if isinstance(target, ast.Name)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("teacher_reference"):
            found += [(node.lineno, f"imports {alias.name}") for alias in node.names if alias.name in GRAMMAR_NAMES]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            strings = set().union(*(_strings(argument, constants) for argument in node.args))
            if node.func.attr in PREFIX_METHODS and strings & TEACHER_PREFIXES:
                found.append((node.lineno, f".{node.func.attr}({sorted(strings & TEACHER_PREFIXES)})"))
            if node.func.attr in SPLIT_METHODS and "#" in strings:
                found.append((node.lineno, f".{node.func.attr}('#')"))
        elif isinstance(node, ast.Compare):
            strings = set().union(*(_strings(part, constants) for part in (node.left, *node.comparators)))
            if strings & TEACHER_PREFIXES or (
                "#" in strings and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops)
            ):
                found.append((node.lineno, f"compares with {sorted(strings & (TEACHER_PREFIXES | {'#'}))}"))
    return sorted(found)


def test_the_scan_finds_each_way_of_reading_a_reference_by_its_prefixes():
    source = """
from kfp_distill._implementation.teacher_reference import HUGGING_FACE_PREFIX
GEMINI = "gemini-"
REMOTE = ("vertex:", "gs://")
a = reference.startswith("hf:")
b = reference.startswith(GEMINI)
c = reference.removeprefix(REMOTE[0]) if reference.startswith(REMOTE) else reference
d = reference.rpartition("#")
e = reference == "precomputed"
f = "#" in reference
g = reference.split("#", 1)
"""
    assert [line for line, _ in prefix_reading(source)] == [2, 5, 6, 7, 8, 9, 10, 11]
    clean = """
identity = "precomputed"
heading = "# Teacher rationales"
name = model.rsplit("/", 1)[-1]
data = uri.startswith("gs://")
"""
    assert prefix_reading(clean) == []


def test_no_other_module_reads_teacher_references_by_their_prefixes():
    owner = ROOT / "kfp_distill" / "_implementation" / "teacher_reference.py"
    found = []
    for folder in ("kfp_distill", "components", "pipelines"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == owner or "tests" in path.relative_to(ROOT).parts:
                continue
            found += [
                f"{path.relative_to(ROOT)}:{line}: {what}"
                for line, what in prefix_reading(path.read_text(encoding="utf-8"))
            ]
    assert not found, (
        "teacher references are read in kfp_distill/_implementation/teacher_reference.py alone; take a "
        "TeacherReference (parse_teacher_reference) instead of:\n" + "\n".join(found)
    )
