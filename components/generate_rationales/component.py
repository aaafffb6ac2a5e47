"""The generate-rationales KFP component: a thin wrapper over `generation.generate_rationales`."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Output

from kfp_distill._implementation.settings import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def generate_rationales(
    dataset: Input[Dataset],
    teacher_model_reference: str,
    distilled_dataset: Output[Dataset],
    report: Output[Markdown],
    metrics: Output[Metrics],
    use_gold_labels: bool = True,
    prompt_template: str = "",
    few_shot_uri: str = "",
    max_new_tokens: int = 256,
    cache_uri: str = "",
):
    """Asks the teacher for a rationale (and a label where missing) for every example.

    Args:
        dataset: Validated JSON Lines examples.
        teacher_model_reference: `precomputed`, `<base_url>#<model>` (OpenAI-compatible endpoint; API key
            from KFP_DISTILL_TEACHER_API_KEY or OPENAI_API_KEY), or a GGUF catalog name, path or URI.
        distilled_dataset: The examples with rationales, teacher labels and agreement with the gold labels.
        report: What was answered, left out and why, agreement, latency and tokens.
        metrics: The report's numbers.
        use_gold_labels: Show the teacher the labels and ask it to explain them (False: it answers itself).
        prompt_template: The user turn, with {input_text} (and {output_text} when explaining labels).
        few_shot_uri: JSON Lines few-shot examples (input_text, rationale, output_text).
        max_new_tokens: The most tokens the teacher writes per answer.
        cache_uri: The SQLite answer cache (a local path, or a gs:// URI copied down and back); empty: the
            kfp-distill cache folder.
    """
    import contextlib

    from kfp_distill.components.generate_rationales.cache import local_cache_file
    from kfp_distill.components.generate_rationales.generation import generate_rationales as generate

    with local_cache_file(cache_uri) if cache_uri else contextlib.nullcontext() as cache_path:
        result = generate(
            dataset_path=dataset.path,
            output_path=distilled_dataset.path,
            report_path=report.path,
            teacher_model_reference=teacher_model_reference,
            use_gold_labels=use_gold_labels,
            prompt_template=prompt_template,
            few_shot_uri=few_shot_uri,
            max_new_tokens=max_new_tokens,
            cache_path=cache_path,
        )
    for name, value in result.metrics().items():
        metrics.log_metric(name, value)
