"""The evaluation report as one self-contained HTML page: tables, plots inline as base64 PNG, no scripts.

The same file shows in the Vertex AI and Kubeflow Pipelines UIs (an HTML artifact) and opens from disk.
Plots are drawn on matplotlib's Agg canvas directly, without pyplot, so no display or global state is used.
"""

from __future__ import annotations

import base64
import html
import io

from kfp_distill._implementation.task_metrics import EXAMPLE_SCORE_TITLES, METRIC_TITLES, METRICS_BY_TASK

from .results import DIFFERENCE, DIFFERENCE_TITLE, MODEL_TITLES, EvaluationResult, ModelResult
from .training_curves import LOSS_TAGS, TOKEN_ACCURACY_TAGS, Curve

_TEXT_CHARS = 1000
# Text properties for text from the data (class names): never read as mathtext (`$\\foo$` raises) or TeX.
_AS_WRITTEN = {"parse_math": False, "usetex": False}
_COLORS = {"teacher": "#4c72b0", "untuned_student": "#999999", "distilled_student": "#dd8452"}
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8em 0 1.2em; }
th, td { border: 1px solid #ccc; padding: 0.35em 0.6em; text-align: left; vertical-align: top; }
thead th { background: #f2f2f2; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
td.text { white-space: pre-wrap; max-width: 28em; overflow-wrap: anywhere; }
td.correct { background: #e8f5e9; }
td.missing { color: #888; }
img { max-width: 100%; height: auto; }
.note { color: #555; }
"""


def _png_data_uri(figure) -> str:
    """The figure as a `data:image/png;base64,...` URI, rendered on the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(columns: int, column_width: float = 4.6, height: float = 3.6):
    """A figure of `columns` side-by-side plots, sized in inches, and its axes."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(column_width * columns, height), dpi=100, layout="constrained")
    return figure, figure.subplots(1, columns, squeeze=False)[0]


def training_curves_png(scalars: dict[str, Curve]) -> str | None:
    """Loss and token accuracy against the tuning step, training and evaluation; None without those scalars."""
    from matplotlib.ticker import MaxNLocator

    panels = [("Loss", LOSS_TAGS), ("Token accuracy", TOKEN_ACCURACY_TAGS)]
    panels = [(title, tags) for title, tags in panels if any(scalars.get(tag) for tag in tags)]
    if not panels:
        return None
    figure, axes = _figure(len(panels))
    for axis, (title, tags) in zip(axes, panels):
        for tag, split in zip(tags, ("training", "evaluation")):
            if scalars.get(tag):
                steps, values = zip(*scalars[tag])
                axis.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=split)
        axis.set(title=title, xlabel="step")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend()
    return _png_data_uri(figure)


def latency_png(models: dict[str, ModelResult]) -> str | None:
    """Bars of the mean latency per example and of examples per second, for each model that was timed."""
    timed = {name: model for name, model in models.items() if model.latencies_s}
    if not timed:
        return None
    figure, (latency_axis, throughput_axis) = _figure(2)
    titles = [MODEL_TITLES[name].replace(" ", "\n", 1) for name in timed]
    colors = [_COLORS[name] for name in timed]
    bars = latency_axis.bar(titles, [model.mean_latency_s for model in timed.values()], color=colors)
    latency_axis.bar_label(bars, fmt="%.3g s")
    latency_axis.set(title="Mean latency per example (s)")
    bars = throughput_axis.bar(titles, [model.examples_per_s or 0.0 for model in timed.values()], color=colors)
    throughput_axis.bar_label(bars, fmt="%.3g")
    throughput_axis.set(title="Examples per second (one request at a time)")
    for axis in (latency_axis, throughput_axis):
        axis.margins(y=0.15)  # room for the value above the tallest bar
    return _png_data_uri(figure)


def confusion_matrix_png(categories: list[str], matrix: list[list[int]]) -> str:
    """The confusion matrix as a heat map with its counts written in the cells."""
    return _png_data_uri(confusion_matrix_figure(categories, matrix))


def confusion_matrix_figure(categories: list[str], matrix: list[list[int]]):
    """The confusion matrix's figure; the categories, text from the data, are drawn as they are written."""
    side = min(3.0 + 0.45 * len(categories), 12.0)
    figure, (axis,) = _figure(1, column_width=side + 1.0, height=side)
    axis.imshow(matrix, cmap="Blues")
    ticks = range(len(categories))
    labels = [name if len(name) <= 20 else name[:19] + "…" for name in categories]
    axis.set_xticks(ticks, labels, rotation=45, ha="right", **_AS_WRITTEN)
    axis.set_yticks(ticks, labels, **_AS_WRITTEN)
    axis.set(xlabel="predicted", ylabel="gold", title="Distilled student")
    peak = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            axis.text(j, i, str(count), ha="center", va="center", color="white" if count > peak / 2 else "black")
    return figure


def _text(value: str | None) -> str:
    if value is None:
        return "—"
    value = value if len(value) <= _TEXT_CHARS else value[: _TEXT_CHARS - 1] + "…"
    return html.escape(value) if value else "<em>(empty)</em>"


def _number(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _image(data_uri: str, alt: str) -> str:
    return f'<img src="{data_uri}" alt="{html.escape(alt)}">'


def _results_table(result: EvaluationResult) -> list[str]:
    metric_names = METRICS_BY_TASK[result.task.name]
    header = "".join(f"<th>{METRIC_TITLES[name]}</th>" for name in metric_names)
    lines = [
        '<table id="results">',
        f"<thead><tr><th>Model</th>{header}<th>Mean latency per example (s)</th><th>Examples/s</th></tr></thead>",
        "<tbody>",
    ]
    for prefix, model in result.models().items():
        title = MODEL_TITLES[prefix]
        if prefix == "untuned_student":
            title += f" (<code>{html.escape(result.student_model_reference)}</code>)"
        cells = [f'<td class="number">{result.score_text(prefix, name)}</td>' for name in metric_names]
        cells.append(f'<td class="number">{_number(model.mean_latency_s, ".3f")}</td>')
        cells.append(f'<td class="number">{_number(model.examples_per_s, ".2f")}</td>')
        lines.append(f'<tr><th scope="row">{title}</th>{"".join(cells)}</tr>')
    cells = [f'<td class="number">{result.score_text(DIFFERENCE, name)}</td>' for name in metric_names]
    lines.append(f'<tr><th scope="row">{DIFFERENCE_TITLE}</th>{"".join(cells)}<td></td><td></td></tr>')
    lines += ["</tbody>", "</table>", f'<p class="note">{html.escape(result.interval_note())}</p>']
    if result.gate is not None:
        lines.append(
            f'<p id="deploy-gate"><strong>Deploy gate: {html.escape(result.gate.decision)}</strong>: '
            f"{html.escape(result.gate.reason)}.</p>"
        )
    return lines


def _latency_table(result: EvaluationResult) -> list[str]:
    import numpy

    lines = [
        '<table id="latency">',
        "<thead><tr><th>Model</th><th>Examples timed</th><th>Mean (s)</th><th>Median (s)</th>"
        "<th>90th percentile (s)</th><th>Examples/s</th></tr></thead>",
        "<tbody>",
    ]
    for prefix, model in result.models().items():
        latencies = model.latencies_s
        median, p90 = numpy.percentile(latencies, [50, 90]).tolist() if latencies else (None, None)
        cells = [str(len(latencies)), _number(model.mean_latency_s, ".3f"), _number(median, ".3f"), _number(p90, ".3f")]
        cells.append(_number(model.examples_per_s, ".2f"))
        row = "".join(f'<td class="number">{cell}</td>' for cell in cells)
        lines.append(f'<tr><th scope="row">{MODEL_TITLES[prefix]}</th>{row}</tr>')
    lines += ["</tbody>", "</table>"]
    return lines


def _worst_examples_table(result: EvaluationResult) -> list[str]:
    worst = result.worst_examples()
    if not worst:
        return ['<p>The distilled student answered every example with full marks.</p>']
    score_title = EXAMPLE_SCORE_TITLES[result.task.name]
    lines = [
        f"<p>The {len(worst)} examples the distilled student scored lowest on (lowest first; a green cell is a "
        "correct answer, a dash an example the teacher did not answer).</p>",
        '<table id="worst-examples">',
        f"<thead><tr><th>Input</th><th>Gold</th><th>Teacher</th><th>Distilled student</th>"
        f"<th>{score_title} (distilled)</th></tr></thead>",
        "<tbody>",
    ]
    for c in worst:
        teacher_class = "missing" if c.teacher_answer is None else ("correct" if c.teacher_correct else "")
        distilled_class = "correct" if c.distilled_correct else ""
        lines.append(
            f'<tr><td class="text">{_text(c.input_text)}</td><td class="text">{_text(c.gold)}</td>'
            f'<td class="text {teacher_class}">{_text(c.teacher_answer)}</td>'
            f'<td class="text {distilled_class}">{_text(c.distilled_answer)}</td>'
            f'<td class="number">{c.distilled_score:.2f}</td></tr>'
        )
    lines += ["</tbody>", "</table>"]
    return lines


def render_html(result: EvaluationResult, scalars: dict[str, Curve], tensorboard_given: bool = False) -> str:
    """The evaluation report as a self-contained HTML page.

    Args:
        result: The evaluation of the three models.
        scalars: The tuning's TensorBoard scalars (`training_curves.read_scalars`); empty for none.
        tensorboard_given: Whether TensorBoard logs were given, so an empty `scalars` is worth saying.

    Returns:
        The page: task type, results table with 95% intervals and the deploy gate's decision, training curves, latency and throughput, the confusion matrix
        for classification, and the worst examples side by side.
    """
    task = result.task
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Evaluation: teacher vs untuned student vs distilled student</title>",
        f"<style>{_STYLE}</style></head>",
        "<body>",
        "<h1>Evaluation: teacher vs untuned student vs distilled student</h1>",
        f'<p id="task-type">{result.examples} evaluation examples. Task type: <strong>{task.name}</strong> '
        f"({html.escape(task.how_chosen)}).</p>",
        "<h2>Results</h2>",
        *_results_table(result),
    ]
    speed = result.speed_comparison()
    if speed:
        parts.append(f"<p>{speed}</p>")
    if result.teacher_unanswered:
        parts.append(
            f'<p class="note">The teacher\'s predictions miss {result.teacher_unanswered} of the {result.examples} '
            "evaluation examples; they count as wrong for the teacher.</p>"
        )

    parts.append("<h2>Training curves</h2>")
    curves = training_curves_png(scalars)
    if curves:
        parts.append(_image(curves, "Training and evaluation loss and token accuracy by tuning step"))
    elif tensorboard_given:
        parts.append('<p class="note">The TensorBoard logs hold no loss or token accuracy scalars.</p>')
    else:
        parts.append('<p class="note">No TensorBoard logs were given to this evaluation.</p>')

    parts += [
        "<h2>Latency and throughput</h2>",
        '<p class="note">Per example, one request at a time: the students timed here, the teacher as '
        "generate-rationales timed it (its time includes the rationale).</p>",
        *_latency_table(result),
    ]
    latency = latency_png(result.models())
    if latency:
        parts.append(_image(latency, "Mean latency per example and examples per second of each model"))

    confusion = result.confusion_matrix()
    if confusion:
        image = confusion_matrix_png(*confusion)
        parts += ["<h2>Confusion matrix</h2>", _image(image, "Confusion matrix of the distilled student")]

    parts += ["<h2>Worst examples</h2>", *_worst_examples_table(result), "</body>", "</html>"]
    return "\n".join(parts) + "\n"
