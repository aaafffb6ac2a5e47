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
    task_type: str = "auto",
    self_consistency_samples: int = 1,
    self_consistency_temperature: float = 0.7,
    drop_contradicting_rationales: bool = False,
    cache_uri: str = "",
    pipeline_root: str = "",
    max_concurrency: int = 8,
    requests_per_minute: int = 0,
    tokens_per_minute: int = 0,
    max_total_tokens: int = 0,
    min_answered_fraction: float = 0.9,
    project: str = "",
    location: str = "",
    answer_format: str = "auto",
    class_names: str = "",
    probe_rows: int = 8,
    rationale_length: str = "detailed",
    teacher_api_key_secret: str = "",
):
    """Asks the teacher for a rationale (and a label where missing) for every example.

    Args:
        dataset: Validated JSON Lines examples.
        teacher_model_reference: The teacher, e.g. `qwen2.5-coder-1.5b-instruct` (llama.cpp),
            `http://127.0.0.1:8080/v1#qwen` (an OpenAI-compatible server), `gemini-2.5-flash` (Vertex AI, in
            `project` and `location`), `hf:Qwen/Qwen2.5-7B-Instruct` or `precomputed`; every form, and which wins
            where two could apply: docs/teachers.md.
        distilled_dataset: The examples with rationales, teacher labels and agreement with the gold labels.
        report: What was answered, left out and why, agreement, latency and tokens.
        metrics: The report's numbers.
        use_gold_labels: Show the teacher the labels and ask it to explain them (false: it answers itself).
        prompt_template: The teacher's user turn, with `{input_text}` (and `{output_text}` when it explains labels);
            empty: the question as it is.
        few_shot_uri: JSON Lines of worked examples (`input_text`, `rationale`, `output_text`); empty: up to 4
            labeled rows explained by the teacher, or zero-shot when no row has a label.
        max_new_tokens: The most tokens the teacher writes per answer.
        task_type: `classification`, `extractive_qa`, `summarization`, `math` or `free_text` (the teacher's
            instruction and how answers are compared, with gold labels and in votes); `auto`: inferred from the
            examples.
        self_consistency_samples: Answers sampled per example, each with its own seed at the self-consistency
            temperature (0.7 unless set otherwise); above 1 the majority answer becomes the teacher's label. Tokens
            and cost count every sample.
        self_consistency_temperature: The sampling temperature of those samples (above 0).
        drop_contradicting_rationales: Leave out of the training data the labeled examples whose teacher answer
            contradicts the label (the evaluation step keeps them, to score the teacher fairly).
        cache_uri: Where the teacher's answers are kept, so a re-run re-asks nothing: an SQLite file, a local path
            or a gs:// URI copied down and back as answers arrive; empty: `<pipeline
            root>/teacher-cache/<teacher>-<digest>.sqlite`, found again by retried tasks and later runs (outside a
            pipeline, the kfp-distill cache folder).
        pipeline_root: The pipeline root (pipelines pass `dsl.PIPELINE_ROOT_PLACEHOLDER`).
        max_concurrency: Teacher requests in flight at once (HTTP endpoints; llama.cpp asks one at a time).
        requests_per_minute: Client-side limit on requests per minute, retries included; 0: none.
        tokens_per_minute: Client-side limit on prompt and completion tokens in any minute (a request counts with an
            estimate until the server reports its usage); 0: none.
        max_total_tokens: Token budget of each teacher step's requests (answers from the cache are free); the rows
            left are reported "not asked: budget reached". 0: no cap.
        min_answered_fraction: A teacher step fails when a smaller share of the rows it asked about got a usable
            answer; it stops as soon as that is certain.
        project: Google Cloud project of a Vertex AI teacher (required for those; unused otherwise).
        location: Vertex AI region of such a teacher; empty: the global endpoint.
        answer_format: `json` (rationale and answer held to a JSON schema where the teacher's backend supports it:
            llama.cpp, OpenAI-compatible servers, Gemini), `text` ("... The answer is X."), or `auto`: `json` where
            supported, else `text` (also when a server refuses it).
        class_names: Comma-separated classes of a classification task (the teacher's answer is held to them); empty:
            from the labels, else from the instruction in the inputs (`classes: [a, b]`).
        probe_rows: Rows each teacher step asks first; it stops, saying what the teacher said and what to do, when
            fewer than half of them got a usable answer. 0: no probe.
        rationale_length: `concise` (one or two sentences, as the paper's rationales are) or `detailed` (as long as
            the task needs): what the teacher is asked to write.
        teacher_api_key_secret: A Secret Manager secret version (`projects/P/secrets/S/versions/latest`) holding
            an OpenAI-compatible teacher's API key, read at run time with the job's service account; it is the
            secret's name, never the key, that is recorded. Empty: the key comes from the environment.
    """
    inputs = dict(locals())  # first, while the inputs are all that is bound here
    from kfp_distill._implementation.teacher_key import teacher_api_key_from_secret
    from kfp_distill.components.generate_rationales.backends import backend_for
    from kfp_distill.components.generate_rationales.cache import teacher_cache_file
    from kfp_distill.components.generate_rationales.config import GenerationConfig
    from kfp_distill.components.generate_rationales.generation import generate_rationales as generate

    config = GenerationConfig.from_component_inputs(inputs)
    with teacher_api_key_from_secret(teacher_api_key_secret):
        # Made first: the default cache file is named after the teacher's identity (an endpoint's model).
        teacher = backend_for(config.teacher, config.request_timeout_s, project, location)
        cache_file = teacher_cache_file(config.cache_uri, pipeline_root, teacher.identity, config.teacher)
        with cache_file as cache_path:
            result = generate(
                dataset.path, distilled_dataset.path, report.path, config, cache_path=cache_path, backend=teacher
            )
    from kfp_distill.components.generate_rationales.report import GenerationReport

    for name, value in GenerationReport.of(result).metrics().items():
        metrics.log_metric(name, value)
