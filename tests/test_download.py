"""data_utils.download and ``mser data download`` against a local HTTP server (127.0.0.1 only)."""
from __future__ import annotations

import argparse
import hashlib
import http.server
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

import mser.commands.download as cli
from data_utils.download import (
    DEFAULT_PATH,
    DEFAULT_URLS,
    IEMOCAP_BLOB_SHA1,
    DownloadError,
    download,
    git_blob_sha1,
)
from data_utils.fileio import OutputExistsError

GOOD = os.urandom(200_000)  # several read chunks
WRONG = os.urandom(1_000)
GOOD_SHA1 = hashlib.sha1(b"blob %d\0" % len(GOOD) + GOOD).hexdigest()
TIMEOUT = 2.0


class _Handler(http.server.BaseHTTPRequestHandler):
    release = threading.Event()  # lets /slow finish when the server shuts down

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _send(self, body: bytes, length: int | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/good.pkl":
            self._send(GOOD, len(GOOD))
        elif self.path == "/wrong.pkl":
            self._send(WRONG, len(WRONG))
        elif self.path == "/truncated.pkl":  # promises more than it sends, then closes
            self._send(GOOD[:50_000], len(GOOD))
            self.close_connection = True
        elif self.path == "/no-length.pkl":  # HTTP/1.0 body delimited by closing the connection
            self._send(GOOD, None)
            self.close_connection = True
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/good.pkl")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/slow.pkl":
            self.release.wait(TIMEOUT)
        else:
            self.send_error(404)


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        _Handler.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(TIMEOUT)


@pytest.fixture
def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/IEMOCAP_features_raw.pkl"


@pytest.fixture
def dest(tmp_path) -> Path:
    return tmp_path / "raw" / "IEMOCAP_features_raw.pkl"


def _get(dest: Path, *urls: str, **kwargs) -> Path:
    kwargs.setdefault("expected_sha1", GOOD_SHA1)
    kwargs.setdefault("progress", False)
    return download(dest, urls=urls, timeout=TIMEOUT, **kwargs)


def _assert_nothing_left(dest: Path) -> None:
    leftovers = sorted(p.name for p in dest.parent.iterdir()) if dest.parent.exists() else []
    assert leftovers == []


def test_constants():
    assert DEFAULT_PATH == Path("dataset/iemocap/raw/IEMOCAP_features_raw.pkl")
    assert len(DEFAULT_URLS) == 2 and all(u.startswith("https://github.com/") for u in DEFAULT_URLS)
    assert all(u.endswith("/IEMOCAP_features_raw.pkl") for u in DEFAULT_URLS)
    assert len(IEMOCAP_BLOB_SHA1) == 40 and int(IEMOCAP_BLOB_SHA1, 16) >= 0


@pytest.mark.parametrize("content", [b"", b"hello\n", os.urandom(70_000)])
def test_git_blob_sha1_matches_git(tmp_path, content):
    path = tmp_path / "blob.bin"
    path.write_bytes(content)
    git = subprocess.run(["git", "hash-object", "--no-filters", str(path)],
                         capture_output=True, text=True, check=True, timeout=10)
    assert git_blob_sha1(path) == git.stdout.strip()


def test_good_file_downloads_and_verifies(server, dest):
    calls = []
    assert _get(dest, f"{server}/good.pkl", progress=lambda done, total: calls.append((done, total))) == dest
    assert dest.read_bytes() == GOOD
    assert git_blob_sha1(dest) == GOOD_SHA1
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]  # no .part left over
    assert calls[-1] == (len(GOOD), len(GOOD))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_without_content_length_hashes_from_file(server, dest):
    calls = []
    _get(dest, f"{server}/no-length.pkl", progress=lambda done, total: calls.append((done, total)))
    assert dest.read_bytes() == GOOD
    assert calls[-1] == (len(GOOD), None)


def test_follows_redirects(server, dest):
    _get(dest, f"{server}/redirect")
    assert dest.read_bytes() == GOOD


def test_progress_line_on_stderr(server, dest, capsys):
    _get(dest, f"{server}/good.pkl", progress=True)
    err = capsys.readouterr().err
    assert "100%" in err and err.endswith("\n")


@pytest.mark.parametrize("path, reason", [
    ("/wrong.pkl", "git blob SHA-1 mismatch"),
    ("/truncated.pkl", f"truncated body: received 50000 of {len(GOOD)} bytes"),
    ("/missing.pkl", "HTTP 404"),
])
def test_bad_url_raises_and_leaves_nothing(server, dest, path, reason):
    url = f"{server}{path}"
    with pytest.raises(DownloadError, match="every URL failed") as info:
        _get(dest, url)
    message = str(info.value)
    assert url in message and reason in message
    assert str(dest) in message and "place it at" in message
    [(failed_url, failed_reason)] = info.value.failures
    assert failed_url == url and reason in failed_reason
    _assert_nothing_left(dest)


def test_unreachable_url(closed_port_url, dest):
    with pytest.raises(DownloadError, match="(?i)refused") as info:
        _get(dest, closed_port_url)
    assert closed_port_url in str(info.value)
    assert "refused" in str(info.value).lower()
    _assert_nothing_left(dest)


def test_timeout(server, dest):
    with pytest.raises(DownloadError, match="timed out"):
        download(dest, urls=[f"{server}/slow.pkl"], expected_sha1=GOOD_SHA1, timeout=0.2, progress=False)
    _assert_nothing_left(dest)


def test_falls_back_to_next_url(server, dest):
    assert _get(dest, f"{server}/missing.pkl", f"{server}/wrong.pkl", f"{server}/good.pkl") == dest
    assert dest.read_bytes() == GOOD


def test_all_failures_listed(server, closed_port_url, dest):
    urls = [f"{server}/missing.pkl", closed_port_url, f"{server}/truncated.pkl"]
    with pytest.raises(DownloadError, match="every URL failed") as info:
        _get(dest, *urls)
    assert [u for u, _ in info.value.failures] == urls
    assert all(u in str(info.value) for u in urls)
    _assert_nothing_left(dest)


def test_existing_wrong_file_not_overwritten(server, dest):
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"something else")
    with pytest.raises(OutputExistsError, match="wrong git blob SHA-1"):
        _get(dest, f"{server}/good.pkl")
    assert dest.read_bytes() == b"something else"
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]


def test_existing_wrong_file_replaced_with_overwrite(server, dest):
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"something else")
    _get(dest, f"{server}/good.pkl", overwrite=True)
    assert dest.read_bytes() == GOOD


def test_existing_good_file_returned_without_download(closed_port_url, dest):
    dest.parent.mkdir(parents=True)
    dest.write_bytes(GOOD)
    assert _get(dest, closed_port_url) == dest  # the URL would fail if it were tried


def test_failed_overwrite_keeps_old_file(server, dest):
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"old")
    with pytest.raises(DownloadError, match="git blob SHA-1 mismatch"):
        _get(dest, f"{server}/wrong.pkl", overwrite=True)
    assert dest.read_bytes() == b"old"
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]


# --- CLI ---------------------------------------------------------------------------------------------------------

def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mser data")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["download", *argv])
    return args.func(args)


def test_cli_defaults():
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["download"])
    assert args.dest == DEFAULT_PATH and args.urls is None and not args.force and not args.quiet
    assert args.func is cli.handler


def test_cli_failure_exit_1(server, dest, capsys):
    url = f"{server}/missing.pkl"
    assert _run_cli(["--dest", str(dest), "--url", url, "--quiet"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and url in captured.err and "HTTP 404" in captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    _assert_nothing_left(dest)


def test_cli_success_then_already_present(server, dest, capsys, monkeypatch):
    monkeypatch.setattr(cli, "IEMOCAP_BLOB_SHA1", GOOD_SHA1)
    urls = ["--url", f"{server}/missing.pkl", "--url", f"{server}/good.pkl"]
    assert _run_cli(["--dest", str(dest), *urls]) == 0
    assert dest.read_bytes() == GOOD
    assert "downloaded and verified" in capsys.readouterr().out

    assert _run_cli(["--dest", str(dest), "--url", f"{server}/missing.pkl"]) == 0
    assert "already present and verified" in capsys.readouterr().out


def test_cli_wrong_existing_file_exit_1(server, dest, capsys, monkeypatch):
    monkeypatch.setattr(cli, "IEMOCAP_BLOB_SHA1", GOOD_SHA1)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"something else")
    assert _run_cli(["--dest", str(dest), "--url", f"{server}/good.pkl", "--quiet"]) == 1
    assert "wrong git blob SHA-1" in capsys.readouterr().err
    assert _run_cli(["--dest", str(dest), "--url", f"{server}/good.pkl", "--quiet", "--force"]) == 0
    assert dest.read_bytes() == GOOD


def test_reproduce_falls_back_to_synthetic_and_says_why_each_url_failed(tmp_path, monkeypatch, capsys):
    import mser.reproduce as reproduce

    def refuse(dest, timeout):
        raise DownloadError("could not download it; every URL failed:\n  - …",
                            [("https://a.example/x.pkl", "HTTP 404"), ("https://b.example/x.pkl", "timed out")])

    monkeypatch.setattr(reproduce, "REPO", tmp_path)
    monkeypatch.setattr(reproduce, "download", refuse)
    assert reproduce.resolve_data(None) == "synthetic"
    said = capsys.readouterr().err
    assert "https://a.example/x.pkl: HTTP 404; https://b.example/x.pkl: timed out" in said
    assert "SYNTHETIC" in said
    assert reproduce.resolve_data(None, try_download=False) == "synthetic"
