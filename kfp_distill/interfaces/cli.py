"""The `kfp-distill` command: a thin layer over the same functions the components call."""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
from pathlib import Path

from kfp_distill.interfaces.serving import API_KEY_ENV, DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUT_S, HEALTH_ROUTE, PREDICT_ROUTE

DEMO_SETTINGS = {
    # Sized for a 2-core laptop CPU: ~100 teacher calls, a few minutes of tuning.
    "train_steps": 50,
    "evaluation_interval": 10,
    "batch_size": 8,
    "model_display_name": "demo-arithmetic",
}


LISTED_METRICS = ("steps_run", "final_train_loss", "best_eval_token_accuracy")


def _pipeline_parameters() -> dict[str, inspect.Parameter]:
    from kfp_distill.pipelines.distillation.pipeline import distillation

    return dict(inspect.signature(distillation.pipeline_func).parameters)


def _boolean(text: str) -> bool:
    """A boolean flag's value; anything but true/false (or yes/no, 1/0) is refused, not read as false."""
    answers = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    if text.lower() not in answers:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return answers[text.lower()]


def _parameter_help(name: str) -> str:
    """A pipeline parameter's help text, from its owner, with the pipeline's default (argparse's % escaped)."""
    from kfp_distill.interfaces.parameters import pipeline_help

    default = _pipeline_parameters()[name].default
    if default is inspect.Parameter.empty:
        shown = "required"
    else:
        shown = "default: " + (str(default).lower() if isinstance(default, bool) else repr(default))
    return f"{pipeline_help(name)} ({shown})".replace("%", "%%")


def _add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    for name, parameter in _pipeline_parameters().items():
        flag = "--" + name.replace("_", "-")
        kind = parameter.annotation if parameter.annotation in (int, float) else str
        if parameter.annotation is bool:
            parser.add_argument(flag, type=_boolean, default=None, metavar="true|false", help=_parameter_help(name))
        else:
            parser.add_argument(flag, type=kind, default=None, help=_parameter_help(name))


def run(args: argparse.Namespace) -> int:
    """Runs the distillation pipeline locally through kfp.local, showing its steps and progress bars (the rest
    goes to run.log in the run folder), then says where everything is and prints the results."""
    from kfp_distill.pipelines.distillation.pipeline import distillation
    from kfp_distill.pipelines.local_runner import StepFailed, init_local_runner, logged_run

    output_dir = Path(args.output_dir).resolve()
    parameters = {name: getattr(args, name) for name in _pipeline_parameters() if getattr(args, name) is not None}
    if args.demo:
        from kfp_distill.interfaces.demo import write_demo_data

        files = write_demo_data(output_dir / "demo-data")
        defaults = {
            **DEMO_SETTINGS,
            "dataset_uri": files["train"],
            "evaluation_data_uri": files["evaluation"],
            "teacher_few_shot_uri": files["few_shot"],
        }
        parameters = {**defaults, **parameters}
    if "dataset_uri" not in parameters:
        print("kfp-distill run: give --dataset-uri, or --demo for the built-in demo", file=sys.stderr)
        return 2

    init_local_runner(output_dir)
    started = time.perf_counter()
    try:
        with logged_run(output_dir, verbose=args.verbose) as logged:
            task = distillation(**parameters)
    except StepFailed as failure:
        print(f"kfp-distill run: {failure}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    run_dir = logged.run_dir
    if run_dir is None:
        print(f"kfp-distill run: the pipeline finished, but there is no run folder (distillation-*) under "
              f"{output_dir}", file=sys.stderr)
        return 1
    print(f"\nDistillation finished in {elapsed / 60:.1f} min.")
    print(f"  artifacts:        {run_dir}")
    print(f"  log:              {logged.log_path}")
    print(f"  TensorBoard logs: tensorboard --logdir {run_dir / 'tune-student' / 'tensorboard_logs'}")
    model = task.outputs["model_resource_name"]
    print(f"  registered model: {model}   (kfp-distill predict {model} \"...\"; kfp-distill serve {model})")
    if task.outputs["endpoint_resource_name"]:
        print(f"  endpoint:         {task.outputs['endpoint_resource_name']}")
    report = run_dir / "evaluate" / "report"
    if report.exists():
        print("\n" + report.read_text())
    return 0


def validate(args: argparse.Namespace) -> int:
    """Runs validate-dataset alone and prints its report, so a file is checked before a teacher is paid."""
    import tempfile

    from kfp_distill.components.validate_dataset.validation import validate_dataset

    with tempfile.TemporaryDirectory(prefix="kfp-distill-validate-") as scratch:
        try:
            report = validate_dataset(
                dataset_uri=args.dataset_uri,
                evaluation_data_uri=args.evaluation_data_uri,
                student_model_reference=args.student_model_reference,
                train_path=Path(scratch) / "train.jsonl",
                evaluation_path=Path(scratch) / "evaluation.jsonl",
                report_path=Path(scratch) / "report.md",
                task_type=args.task_type,
                train_steps=args.train_steps,
                batch_size=args.batch_size,
                enable_checkpoint_selection=args.enable_checkpoint_selection,
                use_logged_answers=args.use_logged_answers,
            )
        except ValueError as error:  # a DatasetError, or a task type or tuning setting out of range
            print(f"kfp-distill validate: {error}", file=sys.stderr)
            return 1
    print(report.to_markdown())
    return 0


def compile_pipelines(args: argparse.Namespace) -> int:
    from kfp_distill.interfaces.compiling import compile_all

    for path in compile_all(args.output_dir):
        print(path)
    return 0


def list_models(args: argparse.Namespace) -> int:
    from kfp_distill._implementation.model_store import list_models as registered

    models = registered(args.registry_uri, project=args.project, location=args.location)
    if not models:
        print("No distilled models registered yet.")
        return 0
    # Vertex AI resource names are longer than MLflow's models:/ URIs.
    width = max(32, *(len(model.uri) for model in models))
    print(f"{'MODEL':{width}} {'NAME':24} {'CREATED':17} {'TEACHER':30} {'STUDENT':30} METRICS")
    for model in models:
        metrics = ", ".join(
            f"{name}={model.metrics[name]:.3g}" for name in LISTED_METRICS if name in model.metrics
        )
        print(
            f"{model.uri:{width}} {model.name:24} {model.created:%Y-%m-%d %H:%M} {model.teacher or '-':30} "
            f"{model.student or '-':30} {metrics}"
        )
    return 0


def _conversation_text(path: str) -> str:
    """The input text of an OpenAI chat conversation in a JSON file (`{"messages": [...]}` or the list itself),
    rendered as serve renders a chat request and validate-dataset a logged conversation."""
    import json

    from kfp_distill._implementation.conversations import read_chat_messages, render_prompt

    loaded = json.loads(sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8"))
    return render_prompt(read_chat_messages(loaded.get("messages") if isinstance(loaded, dict) else loaded))


def predict(args: argparse.Namespace) -> int:
    from kfp_distill._implementation.conversations import ConversationSkipped
    from kfp_distill._implementation.model_store import load_model

    if (args.text is None) == (args.messages is None):
        print("kfp-distill predict: give a TEXT or --messages FILE, not both", file=sys.stderr)
        return 2
    try:
        text = args.text if args.messages is None else _conversation_text(args.messages)
    except (OSError, ValueError, ConversationSkipped) as error:  # JSON and conversation errors are ValueErrors
        reason = error.reason if isinstance(error, ConversationSkipped) else error
        print(f"kfp-distill predict: {args.messages}: {reason}", file=sys.stderr)
        return 2
    (result,) = load_model(args.model, args.registry_uri).predict([text], with_rationale=args.rationale)
    if args.rationale:
        print(f"rationale: {result['rationale']}")
        result = result["label"]
    print(f"answer: {result}")
    return 0


def submit_request(args: argparse.Namespace) -> int:
    """Checks a pipelineJobs request body; sends it to Vertex AI Pipelines unless --dry-run."""
    import json

    from kfp_distill.interfaces.submitting import RequestError, submit

    try:
        request = json.loads(Path(args.request).read_text())
    except (OSError, json.JSONDecodeError) as error:
        print(f"kfp-distill submit: cannot read {args.request}: {error}", file=sys.stderr)
        return 2
    try:
        result = submit(
            request,
            project=args.project,
            location=args.location,
            dry_run=args.dry_run,
            on_note=lambda note: print(f"kfp-distill submit: note: {note}", file=sys.stderr),
        )
    except RequestError as error:
        print(f"kfp-distill submit: {args.request}: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(result.to_json())
    else:
        print(f"submitted: {result.resource_name}")
    return 0


def publish_template(args: argparse.Namespace) -> int:
    """Uploads the compiled pipeline to a KFP registry and prints its template URIs."""
    import requests

    from kfp_distill.interfaces.publishing import publish

    try:
        uris = publish(args.host, args.tag, args.template)
    except (ValueError, FileNotFoundError, requests.RequestException) as error:
        print(f"kfp-distill publish: {error}", file=sys.stderr)
        return 2
    for uri in uris:
        print(uri)
    return 0


def serve(args: argparse.Namespace) -> int:
    """Serves a distilled student on an OpenAI-compatible HTTP endpoint until interrupted."""
    import logging

    from kfp_distill.interfaces.serving import create_server, load_student_service

    if not args.model:
        print("kfp-distill serve: name a MODEL (or set AIP_STORAGE_URI, as Vertex AI does)", file=sys.stderr)
        return 2
    service = load_student_service(args.model, args.registry_uri, max_tokens=args.max_tokens)
    # The server's log (uvicorn's: each request, and what was refused) goes to stderr, stdout keeps the banner.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    server_log = logging.getLogger("uvicorn")
    server_log.addHandler(handler)
    server_log.setLevel(logging.INFO)
    server_log.propagate = False
    server = create_server(
        service, args.host, args.port, api_key_env=args.api_key_env, timeout=args.timeout,
        max_connections=args.max_connections, predict_route=args.predict_route, health_route=args.health_route,
    )
    host, port = server.server_address[:2]
    print(f"Serving {service.model_id} at http://{host}:{port}/v1 (OpenAI-compatible) and "
          f"POST {args.predict_route} (Vertex AI predictions); Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def export_gguf(args: argparse.Namespace) -> int:
    """Writes a tuned student as one GGUF file for llama.cpp."""
    from kfp_distill.interfaces.gguf_export import GGUFExportError, describe, export_gguf as export

    try:
        path = export(args.model_dir, args.output, args.type)
    except GGUFExportError as error:
        print(f"kfp-distill export-gguf: {error}", file=sys.stderr)
        return 2
    facts = describe(path)
    print(f"{path} ({facts['size_mb']} MB, {args.type}, {facts['architecture']}, "
          f"pre-tokenizer {facts['pre_tokenizer']}, {facts['tensors']} tensors)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kfp-distill", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run_parser = commands.add_parser("run", help="run the distillation pipeline locally (kfp.local)")
    run_parser.add_argument("--demo", action="store_true", help="distil the built-in arithmetic demo")
    run_parser.add_argument("--output-dir", default="local_outputs", help="pipeline root for the run")
    run_parser.add_argument(
        "--verbose", action="store_true", help="also show the steps' whole output, which goes to run.log"
    )
    _add_pipeline_arguments(run_parser)
    run_parser.set_defaults(handler=run)

    validate_parser = commands.add_parser(
        "validate",
        help="check a dataset (contract rows or logged conversations) as validate-dataset does and print the report",
    )
    validate_parser.add_argument(
        "dataset_uri",
        help="the training JSON Lines (contract rows, or OpenAI chat, Gemini or Amazon Bedrock logs): a local path, "
        "gs:// or https:// URI",
    )
    validate_parser.add_argument("--evaluation-data-uri", default="", help="the evaluation JSON Lines, if any")
    validate_parser.add_argument(
        "--student-model-reference",
        default=_pipeline_parameters()["student_model_reference"].default,
        help="the student whose tokenizer counts tokens (default: the pipeline's)",
    )
    # The task type; the tuning settings: the report states the passes over the data they make, and warns of bad
    # ones. And whether logged conversations' answers become labels.
    for name, kind in (("task_type", str), ("train_steps", int), ("batch_size", int),
                       ("enable_checkpoint_selection", _boolean), ("use_logged_answers", _boolean)):
        validate_parser.add_argument(
            "--" + name.replace("_", "-"), type=kind, default=_pipeline_parameters()[name].default,
            metavar="true|false" if kind is _boolean else None, help=_parameter_help(name),
        )
    validate_parser.set_defaults(handler=validate)

    compile_parser = commands.add_parser("compile", help="compile the pipelines to YAML")
    compile_parser.add_argument("--output-dir", default="compiled")
    compile_parser.set_defaults(handler=compile_pipelines)

    models_parser = commands.add_parser("models", help="list the distilled models in the registry (as models list)")
    models_commands = models_parser.add_subparsers(dest="models_command")
    list_parser = models_commands.add_parser("list", help="list distilled models")
    for parser_listing in (models_parser, list_parser):
        parser_listing.add_argument(
            "--registry-uri", default="", help="an MLflow tracking URI (default: the embedded one)"
        )
        parser_listing.add_argument(
            "--project", default="", help="list this project's Vertex AI Model Registry instead"
        )
        parser_listing.add_argument("--location", default="", help="the Vertex AI region (default: us-central1)")
        parser_listing.set_defaults(handler=list_models)

    predict_parser = commands.add_parser("predict", help="answer a prompt with a registered model")
    predict_parser.add_argument(
        "model",
        help="a registered name, models:/NAME/VERSION, or a Vertex AI model resource name "
        "(projects/PROJECT/locations/LOCATION/models/ID)",
    )
    predict_parser.add_argument("text", nargs="?", help="the input, formatted like the training inputs")
    predict_parser.add_argument(
        "--messages", metavar="FILE",
        help="a chat conversation instead of TEXT: a JSON file ('-': standard input) of OpenAI chat messages "
             '({"messages": [...]}), rendered as serve renders a chat request',
    )
    predict_parser.add_argument("--rationale", action="store_true", help="also print the rationale")
    predict_parser.add_argument("--registry-uri", default="")
    predict_parser.set_defaults(handler=predict)

    submit_parser = commands.add_parser(
        "submit", help="check a pipelineJobs request body (request.json) and run it on Vertex AI Pipelines"
    )
    submit_parser.add_argument("request", help="the pipelineJobs request body, as JSON")
    submit_parser.add_argument("--dry-run", action="store_true", help="check and print the request; send nothing")
    submit_parser.add_argument("--project", default=None, help="Google Cloud project (default: gcloud's)")
    submit_parser.add_argument("--location", default=None, help="pipeline job region (default: us-central1)")
    submit_parser.set_defaults(handler=submit_request)

    publish_parser = commands.add_parser("publish", help="upload the compiled pipeline to Artifact Registry")
    publish_parser.add_argument("--host", required=True, help="https://REGION-kfp.pkg.dev/PROJECT/REPO")
    publish_parser.add_argument("--tag", action="append", required=True, help="e.g. v0.1.0; repeat for more tags")
    publish_parser.add_argument("--template", default="compiled/distillation.yaml", help="the compiled pipeline")
    publish_parser.set_defaults(handler=publish_template)

    serve_parser = commands.add_parser("serve", help="serve a distilled model on an OpenAI-compatible endpoint")
    # Vertex AI runs a serving container with its model, port and routes in AIP_* variables.
    serve_parser.add_argument(
        "model", nargs="?", default=os.environ.get("AIP_STORAGE_URI"),
        help="a tuned model directory or its URI (gs://...), or a registered model (as for predict); "
             "default: $AIP_STORAGE_URI",
    )
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=os.environ.get("AIP_HTTP_PORT", 8000),
                              help="default: $AIP_HTTP_PORT, else 8000")
    serve_parser.add_argument("--predict-route", default=os.environ.get("AIP_PREDICT_ROUTE", PREDICT_ROUTE),
                              help=f"the path of Vertex AI prediction requests (default: $AIP_PREDICT_ROUTE, else "
                                   f"{PREDICT_ROUTE})")
    serve_parser.add_argument("--health-route", default=os.environ.get("AIP_HEALTH_ROUTE", HEALTH_ROUTE),
                              help="a health-check path answered besides /health (default: $AIP_HEALTH_ROUTE)")
    serve_parser.add_argument("--max-tokens", type=int, default=256, help="tokens per answer when a request does not say")
    serve_parser.add_argument("--registry-uri", default="", help="an MLflow tracking URI (default: the embedded one)")
    serve_parser.add_argument(
        "--api-key-env", default=API_KEY_ENV, metavar="VARIABLE",
        help=f"the environment variable holding the key requests must carry as 'Authorization: Bearer KEY' "
             f"(default: {API_KEY_ENV}; unset or empty: no key)",
    )
    serve_parser.add_argument(
        "--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS,
        help="connections served at once; more are answered 503 (default: %(default)s)",
    )
    serve_parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
        help="how long a request's line, headers and body may take to arrive (else 408), and an answer may wait "
             "unread (default: %(default)s)",
    )
    serve_parser.set_defaults(handler=serve)

    gguf_parser = commands.add_parser("export-gguf", help="export a tuned model directory to GGUF for llama.cpp")
    gguf_parser.add_argument("model_dir", help="a tuned model directory (tune-student's output)")
    gguf_parser.add_argument("output", help="the .gguf file to write")
    gguf_parser.add_argument("--type", default="f16", choices=["f16", "f32", "q8_0"], help="weight type (default f16)")
    gguf_parser.set_defaults(handler=export_gguf)

    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
