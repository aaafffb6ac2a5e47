"""Parameters are documented once, by their owners; docstrings, README input lists and docs/parameters.md follow.

Each setting's help text is owned by a config dataclass field (`kfp_distill/interfaces/parameters.py` says which);
the components' and the pipeline's docstrings repeat it under `Args` (KFP reads them into the compiled YAML), and
`tests/test_settings_owners.py` holds them equal. Each component README holds its inputs between `<!-- inputs -->`
and `<!-- /inputs -->`: name, type and default from the component's signature, the description from its
docstring's Args. docs/parameters.md is the pipeline's parameter reference. A test fails when any of them is
stale; rewrite the docstrings from the owners, then the lists and the reference, with

    .venv/bin/python tests/test_parameter_docs.py

The top README's contract names the pipeline's parameters in prose: a test checks the names and defaults it
gives against the pipeline's signature.
"""

from __future__ import annotations

import inspect
import re
import textwrap
import typing
from pathlib import Path

from kfp_distill.interfaces.compiling import COMPONENTS
from kfp_distill.interfaces import parameters
from kfp_distill.pipelines.distillation.pipeline import distillation

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- inputs -->", "<!-- /inputs -->"
WIDTH = 116


def _type_name(annotation) -> str:
    """`str`, `int`, ... for a parameter; the artifact class's name for an `Input[...]`."""
    return typing.get_args(annotation)[0].__name__ if typing.get_args(annotation) else annotation.__name__


def _default(value) -> str:
    """A default as the READMEs show it: `true`, `""`, `auto`, `0.7`."""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`" if value != "" else '`""`'


def inputs_markdown(component) -> str:
    """The component's inputs as a Markdown list, one wrapped item each: `name` (type, default): description."""
    parameters = inspect.signature(component.python_func).parameters
    items = []
    for name, spec in component.component_spec.inputs.items():
        parameter = parameters[name]
        facts = [_type_name(parameter.annotation)]
        if parameter.default is None:
            facts.append("optional")
        elif parameter.default is not inspect.Parameter.empty:
            facts.append(f"default {_default(parameter.default)}")
        item = f"- `{name}` ({', '.join(facts)}): {' '.join((spec.description or '').split())}"
        items += textwrap.wrap(item, WIDTH, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)
    return "\n".join(items)


def readme_path(file_name: str) -> Path:
    """The README of the component compiled to `file_name` (`compiled/components/<folder>.yaml`)."""
    return ROOT / "components" / Path(file_name).stem / "README.md"


def with_inputs(readme: str, component) -> str:
    """The README text with its inputs list made afresh from the component."""
    before, start, rest = readme.partition(START)
    _, end, after = rest.partition(END)
    if not (start and end):
        raise ValueError(f"{component.name}'s README has no {START} ... {END} list")
    return f"{before}{START}\n{inputs_markdown(component)}\n{END}{after}"


def write_readmes() -> None:
    """Rewrites every component README's inputs list from the component."""
    for file_name, component in COMPONENTS.items():
        path = readme_path(file_name)
        path.write_text(with_inputs(path.read_text(), component))


def write_reference() -> None:
    """Writes docs/parameters.md, the pipeline's parameter reference, from the owners."""
    REFERENCE.write_text(parameters.reference_markdown(distillation.pipeline_func))


def test_the_parameter_reference_is_current():
    assert REFERENCE.read_text() == parameters.reference_markdown(distillation.pipeline_func), (
        f"{REFERENCE.relative_to(ROOT)} is out of date: run .venv/bin/python {__file__}"
    )


def test_every_input_has_a_docstring_description():
    missing = [
        f"{component.name}: {name}"
        for component in COMPONENTS.values()
        for name, spec in component.component_spec.inputs.items()
        if not spec.description
    ]
    assert not missing, f"inputs the component docstrings' Args do not describe: {missing}"


def test_component_readmes_list_their_inputs_as_the_docstrings_describe_them():
    stale = []
    for file_name, component in COMPONENTS.items():
        readme = readme_path(file_name).read_text()
        if with_inputs(readme, component) != readme:
            stale.append(str(readme_path(file_name).relative_to(ROOT)))
    assert not stale, f"input lists out of date in {', '.join(stale)}: run .venv/bin/python {__file__}"


def _contract_parameters() -> str:
    readme = (ROOT / "README.md").read_text()
    contract = readme[readme.index("## The contract") :]
    return contract[contract.index("Parameters:") : contract.index("TensorBoard scalars:")]


def test_the_contract_names_the_pipeline_parameters_with_their_defaults():
    parameters = inspect.signature(distillation.pipeline_func).parameters
    text = _contract_parameters()
    stated_defaults = re.findall(r"`(\w+)`\s+\(`?([^`),]+)`?\)", text)
    named = set(re.findall(r"`(\w+)`", text)) - {stated for _, stated in stated_defaults}
    assert named <= set(parameters), f"the contract names parameters the pipeline lacks: {named - set(parameters)}"
    # `teacher_*` stands for every teacher setting.
    unnamed = {name for name in parameters if name not in named and not name.startswith("teacher_")}
    assert not unnamed, f"the contract does not name {sorted(unnamed)}"
    for name, stated in stated_defaults:
        default = parameters[name].default
        assert _default(default).strip("`") == stated, f"the contract gives {name} the default {stated}: {default!r}"


REFERENCE = ROOT / "docs" / "parameters.md"


def with_args(source: str, function_name: str, order: list[str], descriptions: dict[str, str]) -> str:
    """`source` with the named arguments of `function_name`'s docstring `Args` described afresh, wrapped.

    An argument the Args lack is added after the one before it in `order` (the signature's), so a setting added to
    an owner and a signature gets its description here too.
    """
    lines = source.split("\n")
    start = next(index for index, line in enumerate(lines) if line.lstrip().startswith(f"def {function_name}("))
    args = next(index for index in range(start, len(lines)) if lines[index].strip() == "Args:")
    indent = len(lines[args]) - len(lines[args].lstrip()) + 4
    end = args + 1
    while end < len(lines) and lines[end].strip() and len(lines[end]) - len(lines[end].lstrip()) >= indent:
        end += 1
    entries: dict[str, list[str]] = {}
    for line in lines[args + 1 : end]:
        if len(line) - len(line.lstrip()) == indent:
            current = entries.setdefault(line.strip().split(":", 1)[0], [])
        current.append(line)
    for name in order:
        if name in descriptions and name not in entries:
            before = [known for known in order[: order.index(name)] if known in entries]
            position = list(entries).index(before[-1]) + 1 if before else 0
            items = list(entries.items())
            entries = dict(items[:position] + [(name, [])] + items[position:])
    rewritten = []
    for name, entry in entries.items():
        _, _, text = " ".join(" ".join(entry).split()).partition(": ")
        if name in descriptions and text != descriptions[name]:  # one that says it already keeps its lines
            entry = textwrap.wrap(
                f"{name}: {descriptions[name]}", WIDTH, initial_indent=" " * indent,
                subsequent_indent=" " * (indent + 4), break_long_words=False, break_on_hyphens=False,
            )
        rewritten += entry
    return "\n".join(lines[: args + 1] + rewritten + lines[end:])


def test_docstring_args_are_rewritten_from_the_owners_and_a_missing_one_is_added_in_signature_order():
    source = textwrap.dedent('''
        def step(first: int, second: int, third: int):
            """Does it.

            Args:
                first: Kept as it is,
                    over two lines.
                third: Stale.

            Returns:
                Nothing.
            """
    ''')
    rewritten = with_args(
        source, "step", ["first", "second", "third"],
        {"first": "Kept as it is, over two lines.", "second": "Added.", "third": "Fresh."},
    )
    assert "first: Kept as it is,\n            over two lines.\n        second: Added.\n        third: Fresh.\n\n" \
           "    Returns:" in rewritten


def write_docstrings() -> None:
    """Rewrites the pipeline's and the components' docstring descriptions of owned settings from their owners."""
    pipeline_path = ROOT / "pipelines" / "distillation" / "pipeline.py"
    owned = {}
    for name in inspect.signature(distillation.pipeline_func).parameters:
        try:
            owned[name] = parameters.pipeline_help(name)
        except LookupError:
            pass  # tests/test_settings_owners.py says how to declare its owner
    order = list(inspect.signature(distillation.pipeline_func).parameters)
    pipeline_path.write_text(with_args(pipeline_path.read_text(), "distillation", order, owned))
    for file_name, component in COMPONENTS.items():
        folder = Path(file_name).stem
        owner = parameters.COMPONENT_OWNERS.get(folder)
        if owner is None:
            continue
        inputs = component.component_spec.inputs
        descriptions = {
            name: setting.help
            for name, setting in parameters.owned_settings(owner).items()
            if setting.scope != "internal" and name in inputs
        }
        path = ROOT / "components" / folder / "component.py"
        order = list(inspect.signature(component.python_func).parameters)
        path.write_text(with_args(path.read_text(), component.python_func.__name__, order, descriptions))


if __name__ == "__main__":
    write_docstrings()
    # Run afresh: the components and the pipeline read their docstrings when they are imported.
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); "
                    "import test_parameter_docs as docs; docs.write_readmes(); docs.write_reference()"], check=True)
