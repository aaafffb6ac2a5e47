"""Fixtures of the upload-model tests (deploy-model's too): a student with a training record, an isolated MLflow
home, and a loopback server standing in for Vertex AI's model, endpoint and TensorBoard services and Cloud
Storage."""

import http.server
import json
import re
import shutil
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

TRAINING_RECORD = {
    "teacher_model_reference": "qwen2.5-coder-1.5b-instruct",
    "student_model_reference": "smollm2-135m-instruct",
    "dataset_uri": "gs://bucket/train.jsonl",
    "task_type": "classification",
    "tuning": {"train_steps": 20, "learning_rate": 0.001},
    "metrics": {"final_train_loss": 1.25, "/eval_fraction_of_correct_next_step_preds": 0.5, "stopped_early": False},
}


@pytest.fixture
def registry_home(tmp_path, monkeypatch):
    home = tmp_path / "kfp-distill-home"
    monkeypatch.setenv("KFP_DISTILL_HOME", str(home))
    return home


@pytest.fixture
def recorded_student_dir(tiny_student_dir, tmp_path):
    """The tiny student with the training record tune-student writes."""
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_student_dir, model_dir)
    (model_dir / "kfp_distill.json").write_text(json.dumps(TRAINING_RECORD))
    return model_dir


@dataclass
class FakeGoogleCloud:
    """What the fake remembers: Cloud Storage objects, Vertex AI models, endpoints and TensorBoard resources
    (experiments, runs, time series by resource name), every model, endpoint and TensorBoard request received,
    and the TensorBoard data points in the order written."""

    objects: dict[tuple[str, str], bytes] = field(default_factory=dict)
    models: dict[str, dict] = field(default_factory=dict)
    operations: dict[str, dict] = field(default_factory=dict)
    upload_requests: list[dict] = field(default_factory=list)
    list_filters: list[str] = field(default_factory=list)
    endpoints: dict[str, dict] = field(default_factory=dict)
    endpoint_requests: list[dict] = field(default_factory=list)
    tensorboard_resources: dict[str, dict] = field(default_factory=dict)
    tensorboard_requests: list[dict] = field(default_factory=list)
    tensorboard_points: list[dict] = field(default_factory=list)

    def object_resource(self, bucket: str, name: str) -> dict:
        return {
            "kind": "storage#object",
            "bucket": bucket,
            "name": name,
            "size": str(len(self.objects[bucket, name])),
            "generation": "1",
            "contentType": "application/octet-stream",
            "timeCreated": "2026-11-28T00:00:00.000Z",
            "updated": "2026-11-28T00:00:00.000Z",
        }

    def upload_model(self, path: str, body: dict) -> dict:
        """models:upload: a new model, or a new default version of the parent model; answers a pending operation."""
        self.upload_requests.append({"path": path, "body": body})
        parent = path.removeprefix("/v1/").removesuffix("/models:upload")
        if body.get("parentModel"):
            name = body["parentModel"]
            version = str(int(self.models[name]["versionId"]) + 1)
        else:
            name = f"{parent}/models/{1000 + len(self.models)}"
            version = "1"
        created = f"2026-11-28T01:{len(self.upload_requests):02d}:00Z"
        # Vertex AI marks a model with a serving container deployable to dedicated machines (output only).
        self.models[name] = {
            **body["model"], "name": name, "versionId": version, "createTime": created,
            "supportedDeploymentResourcesTypes": ["DEDICATED_RESOURCES"],
        }
        operation = f"{name}/operations/{len(self.operations) + 1}"
        self.operations[operation] = {
            "name": operation,
            "done": True,
            "response": {
                "@type": "type.googleapis.com/google.cloud.aiplatform.v1.UploadModelResponse",
                "model": name,
                "modelVersionId": version,
            },
        }
        return {"name": operation, "done": False}

    def _done(self, name: str, response: dict) -> dict:
        """A pending operation on `name` that is done when polled, answering `response`."""
        operation = f"{name}/operations/{len(self.operations) + 1}"
        self.operations[operation] = {"name": operation, "done": True, "response": response}
        return {"name": operation, "done": False}

    def endpoint(self, method: str, path: str, query: dict, body: dict) -> tuple[dict, int]:
        """Vertex AI's endpoint service: create, list (by display name), get, deployModel."""
        self.endpoint_requests.append({"method": method, "path": path, "query": query, "body": body})
        name = path.removeprefix("/v1/")
        if method == "POST" and name.endswith("/endpoints"):
            created = f"{name}/{2000 + len(self.endpoints)}"
            self.endpoints[created] = {**body, "name": created, "createTime": "2026-12-02T01:00:00Z"}
            response = {"@type": "type.googleapis.com/google.cloud.aiplatform.v1.Endpoint", **self.endpoints[created]}
            return self._done(created, response), 200
        if method == "POST" and (deploy := re.fullmatch(r"(.+/endpoints/[^/]+):deployModel", name)):
            endpoint = self.endpoints[deploy.group(1)]
            deployed = {**body["deployedModel"], "id": str(3000 + len(endpoint.get("deployedModels", [])))}
            endpoint.setdefault("deployedModels", []).append(deployed)
            endpoint["trafficSplit"] = {
                (deployed["id"] if key == "0" else key): value for key, value in body.get("trafficSplit", {}).items()
            }
            response = {"@type": "type.googleapis.com/google.cloud.aiplatform.v1.DeployModelResponse",
                        "deployedModel": deployed}
            return self._done(deploy.group(1), response), 200
        if method == "GET" and name.endswith("/endpoints"):
            found = [e for key, e in self.endpoints.items() if key.startswith(name + "/")]
            if display_name := re.search(r'display_name="((?:[^"\\]|\\.)*)"', query.get("filter", "")):
                found = [e for e in found if e["displayName"] == display_name.group(1)]
            return {"endpoints": found}, 200
        if method == "GET" and name in self.endpoints:
            return self.endpoints[name], 200
        return _error(404, "NOT_FOUND", f"{path} not found")

    def list_models(self, parent: str, filter_text: str) -> dict:
        """models.list, honouring the two filters kfp-distill sends: a label's existence and a display name."""
        self.list_filters.append(filter_text)
        found = [model for name, model in self.models.items() if name.startswith(parent + "/")]
        if label := re.search(r"labels\.(\w+):\*", filter_text):
            found = [model for model in found if label.group(1) in model.get("labels", {})]
        if display_name := re.search(r'display_name="((?:[^"\\]|\\.)*)"', filter_text):
            found = [model for model in found if model["displayName"] == display_name.group(1)]
        return {"models": found}

    def tensorboard(self, method: str, path: str, query: dict, body: dict) -> tuple[dict, int]:
        """Vertex AI's TensorBoard service: creating, getting and listing experiments, runs and time series, and
        writing a run's data. Answers the document and the HTTP status."""
        self.tensorboard_requests.append({"method": method, "path": path, "query": query, "body": body})
        name = path.removeprefix("/v1/")
        resources = self.tensorboard_resources
        created = None
        if method == "POST" and (write := re.fullmatch(r"(.+/runs/[^/]+):write", name)):
            for series in body["timeSeriesData"]:
                series_name = f"{write.group(1)}/timeSeries/{series['tensorboardTimeSeriesId']}"
                if series_name not in resources:
                    return _error(404, "NOT_FOUND", f"{series_name} not found")
                self.tensorboard_points += [{"time_series": series_name, **point} for point in series["values"]]
            return {}, 200
        if method == "POST" and name.endswith("/timeSeries"):
            # Vertex AI refuses a second time series of the same display name in a run.
            siblings = [r for key, r in resources.items() if key.startswith(name + "/")]
            if any(series["displayName"] == body["displayName"] for series in siblings):
                return _error(400, "INVALID_ARGUMENT", f"a time series named {body['displayName']} already exists")
            created = f"{name}/{len(resources) + 1}"
        elif method == "POST" and name.endswith(("/experiments", "/runs")):
            resource_id = query["tensorboardExperimentId" if name.endswith("/experiments") else "tensorboardRunId"]
            created = f"{name}/{resource_id}"
            if created in resources:
                return _error(409, "ALREADY_EXISTS", f"{created} already exists")
        if created:
            resources[created] = {**body, "name": created}
            return resources[created], 200
        if method == "GET" and name.endswith("/timeSeries"):
            found = [r for key, r in resources.items() if key.rsplit("/", 1)[0] == name]
            return {"tensorboardTimeSeries": found}, 200
        if method == "GET" and name in resources:
            return resources[name], 200
        return _error(404, "NOT_FOUND", f"{path} not found")


def _error(code: int, status: str, message: str) -> tuple[dict, int]:
    """A Google API error document, and its HTTP status."""
    return {"error": {"code": code, "message": message, "status": status}}, code


def _query(query: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(query).items()}


class FakeGoogleCloudHandler(http.server.BaseHTTPRequestHandler):
    """Vertex AI's REST model and TensorBoard services and Cloud Storage's JSON API, as far as the Google SDKs
    use them here."""

    state: FakeGoogleCloud

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, document: dict, status: int = 200) -> None:
        self._send(status, json.dumps(document).encode())

    def _not_found(self) -> None:
        self._json({"error": {"code": 404, "message": f"{self.path} not found", "status": "NOT_FOUND"}}, 404)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        path = unquote(url.path)
        if path.endswith("/models:upload"):
            self._json(self.state.upload_model(path, json.loads(body)))
        elif "/tensorboards/" in path:
            self._json(*self.state.tensorboard("POST", path, _query(url.query), json.loads(body or b"{}")))
        elif "/endpoints" in path:
            self._json(*self.state.endpoint("POST", path, _query(url.query), json.loads(body or b"{}")))
        elif upload := re.fullmatch(r"/upload/storage/v1/b/([^/]+)/o", path):
            # A multipart upload: the object's metadata as JSON, then its bytes.
            boundary = re.search(r'boundary="?([^";]+)"?', self.headers["Content-Type"]).group(1).encode()
            metadata, content = (part.split(b"\r\n\r\n", 1)[1][:-2] for part in body.split(b"--" + boundary)[1:3])
            name = json.loads(metadata)["name"]
            self.state.objects[upload.group(1), name] = content
            self._json(self.state.object_resource(upload.group(1), name))
        else:
            self._not_found()

    def do_GET(self):
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = _query(url.query)
        objects = self.state.objects
        # The REST operations client polls under the first of its URL patterns that fits, `/ui/...` here.
        if (operation := re.fullmatch(r"/\w+/(projects/.+/operations/\d+)", path)) and (
            operation.group(1) in self.state.operations
        ):
            self._json(self.state.operations[operation.group(1)])
        elif "/tensorboards/" in path:
            self._json(*self.state.tensorboard("GET", path, query, {}))
        elif "/endpoints" in path:
            self._json(*self.state.endpoint("GET", path, query, {}))
        elif listing := re.fullmatch(r"/v1/(projects/[^/]+/locations/[^/]+)/models", path):
            self._json(self.state.list_models(listing.group(1), query.get("filter", "")))
        elif model := re.fullmatch(r"/v1/(projects/[^/]+/locations/[^/]+/models/[^/@]+)(@\w+)?", path):
            found = self.state.models.get(model.group(1))
            self._json(found) if found else self._not_found()
        elif bucket := re.fullmatch(r"/storage/v1/b/([^/]+)", path):
            self._json({"kind": "storage#bucket", "name": bucket.group(1), "location": "EUROPE-WEST4"})
        elif listing := re.fullmatch(r"/storage/v1/b/([^/]+)/o", path):
            prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
            names = sorted(name for bucket, name in objects if bucket == listing.group(1) and name.startswith(prefix))
            items = [name for name in names if not delimiter or delimiter not in name[len(prefix):]]
            prefixes = sorted(
                {prefix + name[len(prefix):].split(delimiter)[0] + delimiter for name in names if name not in items}
            )
            self._json(
                {"kind": "storage#objects", "items": [self.state.object_resource(listing.group(1), n) for n in items],
                 "prefixes": prefixes}
            )
        elif blob := re.fullmatch(r"(/download)?/storage/v1/b/([^/]+)/o/(.+)", path):
            key = (blob.group(2), blob.group(3))
            if key not in objects:
                self._not_found()
            elif blob.group(1) or query.get("alt") == "media":
                self._send(200, objects[key], "application/octet-stream")
            else:
                self._json(self.state.object_resource(*key))
        else:
            self._not_found()

    def log_message(self, *args):
        """Keeps the test output quiet."""


@pytest.fixture
def google_cloud(tiny_student_dir, tmp_path, monkeypatch):
    """A loopback Vertex AI and Cloud Storage; the Vertex AI SDK, google-cloud-storage and gcsfs all talk to it,
    anonymously, and nothing leaves the machine. Yields the fake's state."""
    import fsspec
    import gcsfs.core
    from fsspec.registry import _registry as fsspec_registry
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.aiplatform import initializer

    state = FakeGoogleCloud()
    handler = type("Handler", (FakeGoogleCloudHandler,), {"state": state})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"http://127.0.0.1:{server.server_port}"

    # A fresh SDK configuration, pointed at the fake; restored afterwards (`aiplatform.init` is bound to the
    # configuration the SDK started with, so the fresh one is initialised directly).
    monkeypatch.setattr(initializer, "global_config", initializer._Config())
    initializer.global_config.init(api_endpoint=address, api_transport="rest", credentials=AnonymousCredentials())
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", address)
    # gcsfs, anonymous (it would look for credentials, the GCE metadata server among them), and its plain JSON
    # API file system rather than the one that first asks a gRPC control plane for each bucket's layout.
    monkeypatch.setitem(fsspec.config.conf, "gs", {"token": "anon"})
    monkeypatch.setitem(fsspec_registry, "gs", gcsfs.core.GCSFileSystem)
    monkeypatch.setenv("KFP_DISTILL_CACHE", str(tmp_path / "model-cache"))
    gcsfs.core.GCSFileSystem.clear_instance_cache()
    yield state
    gcsfs.core.GCSFileSystem.clear_instance_cache()
    server.shutdown()
    server.server_close()
