"""Vertex AI TensorBoard: copies the scalars of TensorBoard event files (tune-student's `tensorboard_logs`) to a
Vertex AI TensorBoard instance, as one run of one experiment.

The calls go through the Vertex AI SDK's GAPIC `TensorboardServiceClient`, built by the SDK's configuration as
vertex.py's calls are: application-default credentials and the regional endpoint, unless
`aiplatform.init(credentials=..., api_endpoint=..., api_transport=...)` set others before (the tests' loopback
server). Re-running is safe: the experiment, run and time series found are reused, and a data point written
again to the same step replaces the earlier one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any, Callable

from kfp_distill._implementation.tensorboard_events import ScalarEvents, read_scalar_events

TENSORBOARD_NAME = re.compile(r"^projects/[^/]+/locations/([^/]+)/tensorboards/[^/]+$")
# Experiment and run IDs: 1 to 128 characters of [a-z0-9-].
MAX_ID_LENGTH = 128
# WriteTensorboardRunData takes at most 5000 data points per request.
MAX_POINTS_PER_WRITE = 5000
# The TensorBoard plugin that shows scalars, so the Vertex AI TensorBoard web app plots them as curves.
SCALARS_PLUGIN = "scalars"
DEFAULT_RUN_NAME = "tune-student"
_ID_UNSAFE = re.compile(r"[^a-z0-9-]+")


def resource_id(name: str) -> str:
    """`name` as a Vertex AI TensorBoard experiment or run ID: lowercase, each run of other characters as `-`,
    at most 128 characters (`Distillation 2026/11` -> `distillation-2026-11`)."""
    return _ID_UNSAFE.sub("-", name.lower()).strip("-")[:MAX_ID_LENGTH].rstrip("-") or "kfp-distill"


def tensorboard_name(tensorboard_resource_id: str, project: str = "", location: str = "") -> str:
    """The full resource name of a Vertex AI TensorBoard instance.

    Args:
        tensorboard_resource_id: `projects/P/locations/L/tensorboards/ID`, or the bare ID.
        project: The project of a bare ID.
        location: The region of a bare ID; empty: the SDK's default (`GOOGLE_CLOUD_REGION` or `CLOUD_ML_REGION`
            when set, as on Vertex AI, where that is the job's region; else us-central1).

    Returns:
        `projects/PROJECT/locations/LOCATION/tensorboards/ID`.

    Raises:
        ValueError: A bare ID without a project, or a name that is neither form.
    """
    name = tensorboard_resource_id.strip()
    if TENSORBOARD_NAME.match(name):
        return name
    if not name or "/" in name:
        raise ValueError(
            f"tensorboard_resource_id '{tensorboard_resource_id}' is neither a TensorBoard resource name "
            "(projects/PROJECT/locations/LOCATION/tensorboards/ID) nor a bare TensorBoard ID"
        )
    if not project:
        raise ValueError(
            f"tensorboard_resource_id '{name}' is a bare ID: give the project (and the location, else the SDK's "
            "default region is used), or the full name projects/PROJECT/locations/LOCATION/tensorboards/ID"
        )
    from google.cloud.aiplatform import initializer

    return f"projects/{project}/locations/{location or initializer.global_config.location}/tensorboards/{name}"


def _get_or_create(create: Callable[[], Any], get: Callable[[], Any]) -> Any:
    """The resource `create` makes, or, when it exists already (an earlier try of the task), the one `get` finds."""
    from google.api_core import exceptions

    try:
        return create()
    # AlreadyExists over gRPC; over REST an HTTP 409 becomes its parent class, Conflict.
    except exceptions.Conflict:
        return get()


def write_batches(scalars: ScalarEvents, time_series_ids: Mapping[str, str]) -> Iterator[list[Any]]:
    """The `time_series_data` of WriteTensorboardRunData requests carrying every point of `scalars` once, each
    request at most MAX_POINTS_PER_WRITE points (a long time series is split across requests).

    Args:
        scalars: What `read_scalar_events` returns.
        time_series_ids: tag -> the ID of its time series (the last part of its resource name).
    """
    from google.cloud.aiplatform_v1.types import Scalar, TensorboardTimeSeries, TimeSeriesData, TimeSeriesDataPoint

    batch: list[TimeSeriesData] = []
    room = MAX_POINTS_PER_WRITE
    for tag, points in sorted(scalars.items()):
        steps = sorted(points)
        while steps:
            chunk, steps = steps[:room], steps[room:]
            values = [
                TimeSeriesDataPoint(
                    step=step,
                    wall_time=datetime.fromtimestamp(points[step][0], tz=timezone.utc),
                    scalar=Scalar(value=points[step][1]),
                )
                for step in chunk
            ]
            batch.append(
                TimeSeriesData(
                    tensorboard_time_series_id=time_series_ids[tag],
                    value_type=TensorboardTimeSeries.ValueType.SCALAR,
                    values=values,
                )
            )
            room -= len(chunk)
            if not room:
                yield batch
                batch, room = [], MAX_POINTS_PER_WRITE
    if batch:
        yield batch


def upload_tensorboard_scalars(
    log_dir: str,
    tensorboard_resource_id: str,
    experiment_name: str,
    *,
    project: str = "",
    location: str = "",
    run_name: str = DEFAULT_RUN_NAME,
) -> str:
    """Copies every scalar of the TensorBoard event files under `log_dir` to a Vertex AI TensorBoard instance.

    The experiment and the run are created unless they exist (a retried task reuses them), one SCALAR time
    series per tag (its display name the tag, `/train_total_loss`), then the points are written, at most 5000 a
    request.

    Args:
        log_dir: A folder of TensorBoard event files (tune-student's `tensorboard_logs`).
        tensorboard_resource_id: The Vertex AI TensorBoard instance, `projects/P/locations/L/tensorboards/ID`
            or its bare ID.
        experiment_name: The experiment, its ID made of it by `resource_id` (the pipeline job name).
        project: The project of a bare ID.
        location: The region of a bare ID; empty: the SDK's default (the job's region on Vertex AI).
        run_name: The run within the experiment, its ID made of it by `resource_id`.

    Returns:
        The experiment's resource name,
        `projects/PROJECT/locations/LOCATION/tensorboards/ID/experiments/EXPERIMENT`.

    Raises:
        ValueError: tensorboard_resource_id is a bare ID without a project, or malformed.
        google.api_core.exceptions.GoogleAPICallError: Vertex AI refused a request (no such TensorBoard, no
            permission).
    """
    from google.cloud.aiplatform import initializer, utils
    from google.cloud.aiplatform_v1.types import TensorboardExperiment, TensorboardRun, TensorboardTimeSeries

    tensorboard = tensorboard_name(tensorboard_resource_id, project=project, location=location)
    scalars = read_scalar_events(log_dir)
    client = initializer.global_config.create_client(
        client_class=utils.TensorboardClientWithOverride,
        location_override=TENSORBOARD_NAME.match(tensorboard).group(1),
    ).select_version("v1")

    experiment_id = resource_id(experiment_name)
    experiment = _get_or_create(
        lambda: client.create_tensorboard_experiment(
            parent=tensorboard,
            tensorboard_experiment=TensorboardExperiment(
                display_name=experiment_name, description="kfp-distill: the student's tuning metrics"
            ),
            tensorboard_experiment_id=experiment_id,
        ),
        lambda: client.get_tensorboard_experiment(name=f"{tensorboard}/experiments/{experiment_id}"),
    )
    run_id = resource_id(run_name)
    run = _get_or_create(
        lambda: client.create_tensorboard_run(
            parent=experiment.name, tensorboard_run=TensorboardRun(display_name=run_name), tensorboard_run_id=run_id
        ),
        lambda: client.get_tensorboard_run(name=f"{experiment.name}/runs/{run_id}"),
    )

    # Vertex AI refuses a second time series of the same display name in a run: reuse those there.
    time_series = {series.display_name: series.name for series in client.list_tensorboard_time_series(parent=run.name)}
    for tag in sorted(scalars.keys() - time_series.keys()):
        time_series[tag] = client.create_tensorboard_time_series(
            parent=run.name,
            tensorboard_time_series=TensorboardTimeSeries(
                display_name=tag, value_type=TensorboardTimeSeries.ValueType.SCALAR, plugin_name=SCALARS_PLUGIN
            ),
        ).name
    time_series_ids = {tag: name.rsplit("/", 1)[1] for tag, name in time_series.items()}
    for batch in write_batches(scalars, time_series_ids):
        client.write_tensorboard_run_data(tensorboard_run=run.name, time_series_data=batch)
    return experiment.name
