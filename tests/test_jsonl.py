"""The JSON Lines reader: it streams, refuses what it cannot read with the file, line and field, and says
what a user should do with files that are not UTF-8 JSON Lines."""

import gzip
import json
import logging
import socket
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kfp_distill._implementation import jsonl
from kfp_distill._implementation.jsonl import DatasetError, read_jsonl


def rows_of(path):
    return list(read_jsonl(str(path)))


def test_a_utf8_byte_order_mark_is_accepted_with_a_warning(tmp_path, caplog):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"input_text": "a"}\n{"input_text": "b"}\n')
    with caplog.at_level(logging.WARNING):
        assert rows_of(path) == [(1, {"input_text": "a"}), (2, {"input_text": "b"})]
    assert "byte-order mark" in caplog.text and str(path) in caplog.text


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf16_file_is_named_as_such(tmp_path, encoding):
    path = tmp_path / "wide.jsonl"
    path.write_bytes('{"input_text": "a"}\n'.encode(encoding))
    with pytest.raises(DatasetError, match=r"wide.jsonl, line 1: the file is UTF-16 text; save it as UTF-8"):
        rows_of(path)


def test_a_gzip_file_given_as_jsonl_is_named_as_such(tmp_path):
    path = tmp_path / "packed.jsonl"
    path.write_bytes(gzip.compress(b'{"input_text": "a"}\n'))
    with pytest.raises(DatasetError, match=r"packed.jsonl, line 1: the file is gzip-compressed; decompress it"):
        rows_of(path)


def test_a_key_given_twice_in_one_object_is_an_error_naming_it(tmp_path):
    path = tmp_path / "twice.jsonl"
    path.write_text('{"input_text": "a"}\n{"input_text": "b", "output_text": "x", "input_text": "c"}\n')
    with pytest.raises(DatasetError, match=r"twice.jsonl, line 2, field 'input_text': the key appears twice"):
        rows_of(path)


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"input_text": "a", "n": ' + "9" * 5000 + "}", "a number too long to read"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_values_json_cannot_hold_are_located(tmp_path, line, message):
    path = tmp_path / "odd.jsonl"
    path.write_text('{"input_text": "a"}\n' + line + "\n")
    with pytest.raises(DatasetError, match=rf"odd.jsonl, line 2: .*{message}"):
        rows_of(path)


def test_a_lone_surrogate_is_refused_where_it_is_read_not_at_tokenization(tmp_path):
    path = tmp_path / "surrogate.jsonl"
    path.write_text('{"input_text": "ok \\ud83d\\ude00"}\n{"input_text": "x", "output_text": "bad \\ud800"}\n')
    with pytest.raises(DatasetError, match=r"line 2, field 'output_text': .*lone UTF-16 surrogate"):
        rows_of(path)


def test_an_s3_uri_without_its_filesystem_says_what_to_install():
    with pytest.raises(DatasetError, match=r"^s3://bucket/data.jsonl: cannot be read: .*s3fs"):
        rows_of("s3://bucket/data.jsonl")


def test_a_refused_https_connection_is_not_reported_as_a_missing_file():
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}/data.jsonl"
    with pytest.raises(DatasetError) as raised:
        rows_of(uri)
    assert "file not found" not in str(raised.value)
    assert str(raised.value).startswith(f"{uri}: cannot be reached")


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "big.jsonl"
    path.write_text('{"input_text": "a"}\n' * 10)
    monkeypatch.setattr(jsonl, "MAX_DATASET_BYTES", 100)
    read = []
    monkeypatch.setattr(jsonl, "_raw_lines", lambda *args: read.append(args) or iter(()))
    with pytest.raises(DatasetError, match=r"big.jsonl: the file is 200 bytes; the most a dataset may be is 100"):
        rows_of(path)
    assert not read


def test_the_size_limit_admits_every_contract_valid_file():
    # 10,000 rows whose inputs are far longer than 7,168 tokens before truncation: 100,000 characters each
    # (about 25,000 tokens), each character taking the most bytes UTF-8 gives it.
    assert jsonl.MAX_DATASET_BYTES >= 10_000 * 100_000 * 4
    assert jsonl.MAX_LINE_BYTES >= 100_000 * 4 * 10


def test_the_reader_streams_and_refuses_an_endless_line(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonl, "CHUNK_BYTES", 16)
    path = tmp_path / "lines.jsonl"
    rows = [{"input_text": "x" * n} for n in range(1, 40)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows) + '{"input_text": "no newline at the end"}')
    assert [row for _, row in rows_of(path)] == rows + [{"input_text": "no newline at the end"}]
    monkeypatch.setattr(jsonl, "MAX_LINE_BYTES", 64)
    path.write_text('{"input_text": "a"}\n' + '{"input_text": "' + "y" * 100 + '"}\n')
    with pytest.raises(DatasetError, match=r"lines.jsonl, line 2: the line is longer than 64 bytes"):
        rows_of(path)


class _EndlessServer:
    """A loopback HTTP server that gives no size and sends `{"input_text": "a"}` lines, `pause_s` apart, for as
    long as the client reads (a chunked body that never ends); after `stall_after` lines it sends nothing more."""

    def __init__(self, pause_s: float = 0.0, stall_after: int | None = None):
        import http.server
        import threading

        line = b'{"input_text": "a"}\n' * (1 if pause_s else 1000)
        stopped = threading.Event()
        self.stopped = stopped

        class Endless(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_HEAD(self):  # noqa: N802 - http.server's name
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

            def do_GET(self):  # noqa: N802
                self.do_HEAD()
                sent = 0
                try:
                    while not stopped.is_set():
                        if stall_after is not None and sent >= stall_after:
                            stopped.wait()
                            break
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                        sent += 1
                        if pause_s:
                            stopped.wait(pause_s)
                except OSError:  # the client hung up
                    pass

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}/endless.jsonl"

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()


def _read_within(uri: str, seconds: float):
    """What reading the file raised; fails the test when the read has not ended after `seconds`."""
    import threading

    outcome = []

    def read():
        try:
            for _ in read_jsonl(uri):
                pass
            outcome.append(None)
        except Exception as error:  # noqa: BLE001 - the test looks at what it was
            outcome.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(seconds)
    assert outcome, f"reading {uri} had not ended after {seconds} s"
    return outcome[0]


def test_an_endless_http_body_is_refused_at_the_size_limit(monkeypatch):
    monkeypatch.setattr(jsonl, "MAX_DATASET_BYTES", 4 * 1024**2)
    with _EndlessServer() as server:
        error = _read_within(server.uri, 20)
    assert isinstance(error, DatasetError)
    assert str(error) == f"{server.uri}: the file is longer than 4,194,304 bytes; the most a dataset may be is 4,194,304"


def test_an_endless_slow_http_body_is_refused_at_the_time_limit(monkeypatch):
    monkeypatch.setattr(jsonl, "MAX_READ_SECONDS", 1.0)
    with _EndlessServer(pause_s=0.02) as server:
        error = _read_within(server.uri, 20)
    assert isinstance(error, DatasetError)
    assert str(error).startswith(f"{server.uri}: reading took longer than 1 s")


def test_an_http_server_that_stops_sending_is_refused_after_the_stall_limit(monkeypatch):
    monkeypatch.setattr(jsonl, "READ_STALL_SECONDS", 1.0)
    with _EndlessServer(stall_after=3) as server:
        error = _read_within(server.uri, 20)
    assert isinstance(error, DatasetError)
    assert str(error) == f"{server.uri}: cannot be read: the server sent nothing for 1 s"


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
_lines = st.one_of(
    st.dictionaries(st.text(max_size=8), _json_values, max_size=4).map(lambda row: json.dumps(row).encode()),
    _json_values.map(lambda value: json.dumps(value).encode()),
    st.text(max_size=40).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.binary(max_size=40),
    st.sampled_from([b"", b"  ", b'{"a": 1, "a": 2}', b'{"a": "\\ud800"}', b"\xef\xbb\xbf{}", b"\x1f\x8b", b"{\x00",
                     b'{"n": ' + b"9" * 5000 + b"}", b"[" * 5000 + b"]" * 5000, b'{"x": NaN}', b"{}\r"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_lines.map(lambda line: line.replace(b"\n", b" ")), max_size=6))
def test_any_file_reads_as_objects_or_raises_a_dataset_error_naming_its_line(lines):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "any.jsonl"
        path.write_bytes(b"\n".join(lines))
        try:
            rows = rows_of(path)
        except DatasetError as error:
            assert error.line is not None and 1 <= error.line <= len(lines), str(error)
            assert str(error).startswith(f"{path}, line {error.line}")
            # Every line before it reads.
            path.write_bytes(b"\n".join(lines[: error.line - 1]))
            rows_of(path)
        else:
            assert all(isinstance(row, dict) for _, row in rows)
            numbers = [number for number, _ in rows]
            assert numbers == sorted(set(numbers)) and all(1 <= number <= len(lines) for number in numbers)
