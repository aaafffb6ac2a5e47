"""The HTML report, the training curves it plots, and the evaluate component's artifacts."""

import base64
import io
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import f1_score

from kfp_distill._implementation.answers import normalize_text

from kfp_distill._implementation.jsonl import write_jsonl
from kfp_distill._implementation.student import Prediction, StudentPredictor
from kfp_distill.components.evaluate.evaluation import EvaluationRow, TeacherAnswer, compare
from kfp_distill.components.evaluate.html_report import render_html
from kfp_distill.components.evaluate.training_curves import read_scalars

CLASSIFY = "Classify the sentiment of the review: "
GOLDS = ["positive", "positive", "negative", "negative", "neutral"]
DISTILLED = ["Positive", "negative", "negative.", "negative", "maybe"]


class ReportParser(HTMLParser):
    """Collects each table's rows (cell texts, by table id), the images' sources, and every tag used."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self.tags: set[str] = set()
        self.texts: list[str] = []
        self._table = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id", ""), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._table[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        self.texts.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse(path) -> ReportParser:
    parser = ReportParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def decoded_png(source: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert source.startswith(prefix)
    data = base64.b64decode(source[len(prefix):], validate=True)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    image.load()  # decodes every pixel: fails on a truncated or corrupt PNG
    assert image.format == "PNG" and image.width > 100 and image.height > 100
    return image


def write_events(log_dir, points):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(log_dir))
    for tag, step, value in points:
        writer.add_scalar(tag, value, global_step=step)
    writer.close()


@pytest.fixture
def tensorboard_dir(tmp_path):
    log_dir = tmp_path / "tensorboard_logs"
    write_events(
        log_dir,
        [
            ("/train_total_loss", 1, 2.0),
            ("/train_total_loss", 2, 1.5),
            ("/train_fraction_of_correct_next_step_preds", 1, 0.25),
            ("/train_fraction_of_correct_next_step_preds", 2, 0.5),
            ("/eval_total_loss", 2, 1.75),
            ("/eval_fraction_of_correct_next_step_preds", 2, 0.375),
        ],
    )
    return log_dir


def test_read_scalars_reads_every_event_file_and_the_last_write_of_a_step_wins(tensorboard_dir):
    # A resumed tuning writes a second event file that logs step 2 again, then step 3.
    write_events(tensorboard_dir, [("/train_total_loss", 2, 1.25), ("/train_total_loss", 3, 1.0)])
    scalars = read_scalars(tensorboard_dir)
    assert scalars["/train_total_loss"] == [(1, 2.0), (2, 1.25), (3, 1.0)]
    assert scalars["/eval_fraction_of_correct_next_step_preds"] == [(2, 0.375)]
    assert read_scalars(tensorboard_dir / "missing") == {}
    # Across folders too the later write wins, whatever the folders' names.
    write_events(tensorboard_dir / "b", [("/train_total_loss", 3, 0.5)])
    write_events(tensorboard_dir / "a", [("/train_total_loss", 3, 0.75)])
    assert read_scalars(tensorboard_dir)["/train_total_loss"][-1] == (3, 0.75)


def classification_result():
    rows = [EvaluationRow(f"{CLASSIFY}review {i} <b>bold</b>", gold) for i, gold in enumerate(GOLDS)]
    teacher = {row.input_text: TeacherAnswer(row.gold, 2.0) for row in rows[:4]}
    return compare(rows, teacher, DISTILLED, ["x"] * 5, "tiny-student", [0.25] * 5, [0.5] * 5)


def test_html_report_renders_tables_and_inline_png_plots(tmp_path, tensorboard_dir):
    result = classification_result()
    path = tmp_path / "report.html"
    path.write_text(render_html(result, read_scalars(tensorboard_dir), tensorboard_given=True), encoding="utf-8")
    page = parse(path)

    text = " ".join(" ".join(page.texts).split())
    assert "Task type: classification (inferred: the inputs ask to classify)" in text
    # Teacher: 4 right of 5 (the fifth unanswered): accuracy 0.8; macro-F1: negative 1, neutral 0, positive 1
    # -> 2/3. Distilled: accuracy 3/5, macro-F1 0.48889 (worked out in test_task_metrics.py).
    table = page.tables["results"]
    assert [[re.sub(r" \[.*\]$", "", cell) for cell in row] for row in table] == [
        ["Model", "Accuracy", "Macro-F1", "Mean latency per example (s)", "Examples/s"],
        ["Teacher", "80.0%", "66.7%", "2.000", "0.50"],
        ["Untuned student (tiny-student)", "0.0%", "0.0%", "0.500", "2.00"],
        ["Distilled student", "60.0%", "48.9%", "0.250", "4.00"],
        ["Distilled student − teacher", "-20.0 pts", "-17.8 pts", "", ""],
    ]
    # The distilled student's macro-F1 interval, computed directly: scikit-learn on each documented resample.
    golds, predicted = [normalize_text(g) for g in GOLDS], [normalize_text(d) for d in DISTILLED]
    predicted = [p if p in golds else "(other)" for p in predicted]
    resampled = [
        f1_score([golds[i] for i in drawn], [predicted[i] for i in drawn], labels=sorted(set(golds)),
                 average="macro", zero_division=0)
        for drawn in np.random.default_rng(0).integers(0, 5, size=(1000, 5))
    ]
    low, high = np.percentile(resampled, [2.5, 97.5])
    assert table[3][2] == f"48.9% [{low * 100:.1f}, {high * 100:.1f}]"
    assert "95% intervals, from 1,000 bootstrap resamples of the 5 evaluation rows" in text
    assert "Deploy gate: off" in text and "the deploy gate is off (deploy_min_share_of_teacher is 0)" in text
    assert "The distilled student answers 8.0x faster than the teacher did." in text
    assert page.tables["latency"][1] == ["Teacher", "4", "2.000", "2.000", "2.000", "0.50"]
    # The distilled student missed rows 1 (the teacher got it right, so it comes first) and 4.
    worst = page.tables["worst-examples"]
    assert worst[0] == ["Input", "Gold", "Teacher", "Distilled student", "Correct (distilled)"]
    assert worst[1:] == [
        [f"{CLASSIFY}review 1 <b>bold</b>", "positive", "positive", "negative", "0.00"],
        [f"{CLASSIFY}review 4 <b>bold</b>", "neutral", "—", "maybe", "0.00"],
    ]
    # Training curves, latency and throughput, confusion matrix: three PNGs inline, nothing fetched from outside.
    assert len(page.images) == 3
    for source in page.images:
        decoded_png(source)
    assert page.tags.isdisjoint({"script", "link", "iframe"})
    assert "b" not in page.tags, "text from the examples is escaped, not rendered"


def test_html_report_without_tensorboard_logs_says_so(tmp_path):
    html = render_html(classification_result(), {})
    assert "No TensorBoard logs were given" in html
    assert html.count("data:image/png;base64,") == 2


def test_component_writes_metrics_markdown_html_and_the_confusion_matrix(
    tiny_student_dir, tmp_path, tensorboard_dir, monkeypatch
):
    from kfp import dsl

    from kfp_distill.components.evaluate.component import evaluate

    rows = [{"input_text": f"{CLASSIFY}review {i}", "output_text": gold} for i, gold in enumerate(GOLDS)]
    write_jsonl(tmp_path / "eval.jsonl", rows)
    write_jsonl(
        tmp_path / "teacher.jsonl",
        [{"input_text": row["input_text"], "teacher_label": row["output_text"], "latency_s": 1.0} for row in rows],
    )
    outputs = iter([DISTILLED, ["x"] * 5])  # distilled student first, then the untuned one
    monkeypatch.setattr(
        StudentPredictor, "predict", lambda self, texts, task="label", task_type="": [Prediction(t, 0.1) for t in next(outputs)]
    )
    artifacts = {
        "metrics": dsl.Metrics(uri=str(tmp_path / "out" / "metrics")),
        "report": dsl.Markdown(uri=str(tmp_path / "out" / "report")),
        "html_report": dsl.HTML(uri=str(tmp_path / "out" / "html_report")),
        "classification_metrics": dsl.ClassificationMetrics(uri=str(tmp_path / "out" / "classification_metrics")),
    }
    gate = evaluate.python_func(
        model=dsl.Model(uri=tiny_student_dir),
        evaluation_dataset=dsl.Dataset(uri=str(tmp_path / "eval.jsonl")),
        teacher_predictions=dsl.Dataset(uri=str(tmp_path / "teacher.jsonl")),
        student_model_reference=tiny_student_dir,
        tensorboard_logs=dsl.Artifact(uri=str(tensorboard_dir)),
        min_share_of_teacher=0.9,
        **artifacts,
    )
    # Accuracy, the main metric: 60% against the teacher's 100%, below 90% of it.
    assert gate.gate_decision == "failed"
    assert gate.gate_reason.endswith("on 5 evaluation rows: below 90% of the teacher's (90.0%)")
    assert artifacts["classification_metrics"].metadata == {
        "confusionMatrix": {
            "annotationSpecs": [{"displayName": name} for name in ("negative", "neutral", "positive", "(other)")],
            "rows": [{"row": [2, 0, 0, 0]}, {"row": [0, 0, 0, 1]}, {"row": [1, 0, 1, 0]}, {"row": [0, 0, 0, 0]}],
        }
    }
    metrics = artifacts["metrics"].metadata
    assert metrics["distilled_student_macro_f1"] == pytest.approx(0.48889, abs=1e-5)
    assert metrics["teacher_accuracy"] == 1.0 and metrics["speedup"] == pytest.approx(10.0)
    assert "Task type: **classification**" in (tmp_path / "out" / "report").read_text()
    page = parse(tmp_path / "out" / "html_report")
    assert [cell.split(" [")[0] for cell in page.tables["results"][3][:3]] == ["Distilled student", "60.0%", "48.9%"]
    assert len(page.images) == 3  # the training curves came from the optional tensorboard_logs input


def test_component_leaves_the_confusion_matrix_empty_for_other_tasks(tiny_student_dir, tmp_path, monkeypatch):
    from kfp import dsl

    from kfp_distill.components.evaluate.component import evaluate

    write_jsonl(tmp_path / "eval.jsonl", [{"input_text": "2 + 2?", "output_text": "4"}])
    write_jsonl(tmp_path / "teacher.jsonl", [])
    monkeypatch.setattr(StudentPredictor, "predict", lambda self, texts, task="label", task_type="": [Prediction("4", 0.1)])
    classification_metrics = dsl.ClassificationMetrics(uri=str(tmp_path / "cm"))
    evaluate.python_func(
        model=dsl.Model(uri=tiny_student_dir),
        evaluation_dataset=dsl.Dataset(uri=str(tmp_path / "eval.jsonl")),
        teacher_predictions=dsl.Dataset(uri=str(tmp_path / "teacher.jsonl")),
        student_model_reference=tiny_student_dir,
        metrics=dsl.Metrics(uri=str(tmp_path / "metrics")),
        report=dsl.Markdown(uri=str(tmp_path / "report")),
        html_report=dsl.HTML(uri=str(tmp_path / "report.html")),
        classification_metrics=classification_metrics,
        task_type="math",
    )
    assert classification_metrics.metadata == {}
    assert "No TensorBoard logs were given" in (tmp_path / "report.html").read_text()


# Classes matplotlib would read as mathtext or TeX, or cannot draw: each must be shown as the text it is.
DRAWN_AS_TEXT = ["$\\foo$", "$x$", "a$b", "$", "\\frac{1}{", "^_", "100%", "x\x00y", "\U0001f642", "x" * 40]


def test_classes_from_the_data_are_drawn_as_text_not_read_as_math(tmp_path):
    from kfp_distill._implementation.tasks import TaskType

    rows = [EvaluationRow(f"{CLASSIFY}item {i}", gold) for i, gold in enumerate(DRAWN_AS_TEXT)]
    count = len(rows)
    result = compare(
        rows, {}, DRAWN_AS_TEXT[1:] + DRAWN_AS_TEXT[:1], ["x"] * count, "tiny-student", [0.1] * count,
        [0.1] * count, TaskType("classification", "given"),
    )
    html = render_html(result, {})
    path = tmp_path / "report.html"
    path.write_text(html, encoding="utf-8")
    images = parse(path).images
    assert len(images) == 2  # latency, and the confusion matrix with every class
    decoded_png(images[1])


def test_a_class_in_dollar_signs_is_as_wide_as_its_text_with_the_dollar_signs():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from kfp_distill.components.evaluate.html_report import confusion_matrix_figure

    figure = confusion_matrix_figure(["$x$", "x", "$\\foo$"], [[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    # Read as math, "$x$" would draw as an italic x, as wide as "x"; the x axis's labels are turned 45 degrees.
    for axis_labels, wider in ((figure.axes[0].get_xticklabels(), 1.5), (figure.axes[0].get_yticklabels(), 2.5)):
        dollars, plain, _ = (label.get_window_extent(renderer).width for label in axis_labels)
        assert dollars > wider * plain
        assert [label.get_text() for label in axis_labels] == ["$x$", "x", "$\\foo$"]
