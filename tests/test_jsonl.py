"""The JSON Lines reader: it streams, refuses what it cannot read with the file, line and field, and says
what a user should do with files that are not UTF-8 JSON Lines."""

import gzip
import json
import logging
import socket

import pytest

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
