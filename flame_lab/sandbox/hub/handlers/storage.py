"""Storage routes with bodies that are not JSON: multipart upload and the two byte streams.

Uploads are refused with 413 from the Content-Length header before any body is read, and
counted while streaming (spooled to disk, not held in memory) for bodies sent without one.
A full disk answers 507 and another I/O failure 503, each naming the cause and logged; the
blob store removes its partial file, so nothing half-written stays behind.
"""

from __future__ import annotations

import errno
import json
import logging
import posixpath
import sqlite3
import tarfile
import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

from tornado import httputil
from tornado.web import stream_request_body

from flame_lab.sandbox.hub import faults
from flame_lab.sandbox.hub.handlers.base import HubHandler
from flame_lab.sandbox.hub.limits import check_text
from flame_lab.sandbox.hub.wire import ApiError

_CHUNK = 1 << 16
_SPOOL = 1 << 20
MAX_PATH = 1024
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
T = TypeVar("T")
log = logging.getLogger("flame_lab.sandbox.hub")


def storage_failure(exc: BaseException, doing: str) -> ApiError:
    """The hub's answer to a failed write: 507 when the disk (or database) is full, else 503."""
    full = (isinstance(exc, OSError) and exc.errno in _FULL) or (
        isinstance(exc, sqlite3.OperationalError) and "full" in str(exc).lower()
    )
    cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    log.error("could not %s: %s (%s)", doing, cause, type(exc).__name__)
    if full:
        return ApiError(
            507,
            f"the hub's disk is full: could not {doing} ({cause}); nothing was stored",
            code="insufficient_storage",
        )
    return ApiError(
        503, f"the hub could not {doing}: {cause}; try again", code="storage_unavailable"
    )


def storing(doing: str, write: Callable[[], T]) -> T:
    """Run a write of the hub's storage; a full disk or an I/O error becomes 507/503."""
    try:
        return write()
    except (OSError, sqlite3.OperationalError) as exc:
        raise storage_failure(exc, doing) from None


def clean_path(name: str) -> str:
    """A relative POSIX path inside the bucket without control or bidi characters, or a 400."""
    check_text("file name", name, max_len=MAX_PATH, name=True)
    path = posixpath.normpath(name.strip())
    if (
        not name.strip()
        or "\\" in name
        or "\x00" in name
        or path.startswith("/")
        or path == ".."
        or path.startswith("../")
        or path == "."
    ):
        raise ApiError(400, f"file name {name!r} is not a safe relative path", code="invalid_path")
    return path


def found(record: dict[str, Any] | None, what: str) -> dict[str, Any]:
    """The record, or the storage service's own 404 text ("The bucket was not found.")."""
    if record is None:
        raise ApiError(404, f"The {what} was not found.")
    return record


@stream_request_body
class UploadHandler(HubHandler):
    """POST /buckets/:id/upload (multipart/form-data; file names may carry relative paths)."""

    def max_body(self) -> int:
        return self.hub.upload_limit

    def prepare(self) -> None:
        self.received = 0
        self.bucket_type = "OTHER"  # known once the request is checked
        self.spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL)
        super().prepare()
        self.request.connection.set_max_body_size(self.hub.upload_limit + _SPOOL)

    def check_request(self) -> None:
        super().check_request()
        bucket_id = self.record_id(self.path_args[0], "bucket")
        bucket = found(self.hub.store.get("buckets", bucket_id), "bucket")
        self.hub.core.check_bucket_write(self.principal, bucket)
        self.bucket_type = self.hub.bucket_type(bucket_id)

    def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        self.received += len(chunk)
        if self.received > self.hub.upload_limit:
            # answer now; tornado closes the connection without reading the rest
            error = ApiError(
                413, f"the upload exceeds the sandbox's limit of {self.hub.upload_limit} bytes"
            )
            self.send_error(413, exc_info=(ApiError, error, None))
            return
        if self.received == len(chunk):  # the first part of the body
            faults.reach(f"upload:{self.bucket_type}:receiving", self.hub.store.home)
        try:
            self.spool.write(chunk)  # on disk past _SPOOL bytes
        except OSError as exc:
            error = storage_failure(exc, "receive the upload")
            self.send_error(error.status, exc_info=(ApiError, error, None))

    def on_finish(self) -> None:
        spool = getattr(self, "spool", None)
        if spool is not None:
            spool.close()

    def post(self, raw_id: str) -> None:
        if self._finished:
            return
        self.spool.seek(0)
        body = self.spool.read()
        args: dict[str, list[bytes]] = {}
        files: dict[str, list[httputil.HTTPFile]] = {}
        content_type = self.request.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            raise ApiError(400, "an upload must be multipart/form-data", code="invalid_body")
        httputil.parse_body_arguments(content_type, body, args, files, self.request.headers)
        uploads = [(clean_path(f.filename), f.body) for parts in files.values() for f in parts]
        if not uploads:
            raise ApiError(400, "the upload holds no files", code="invalid_body")
        records = storing(
            "store the uploaded files",
            lambda: self.hub.store_files(self.principal, raw_id, uploads),
        )
        self.set_status(201)
        rendered = [self.render("bucket-files", r) for r in records]
        self.finish(json.dumps({"data": rendered, "meta": {"total": len(rendered)}}))


class BucketStreamHandler(HubHandler):
    """GET /buckets/:id/stream: a tar of every file. For a CODE bucket whose analysis is built,
    the tar comes from the immutable build snapshot (header ``X-Build-Hash``)."""

    async def get(self, raw_id: str) -> None:
        bucket = found(self.hub.store.get("buckets", self.record_id(raw_id, "bucket")), "bucket")
        self.hub.core.check_bucket_read(self.principal, bucket)
        entries: list[tuple[str, Any, int]] = []
        build = self.hub.core.build_of_bucket(bucket["id"])
        if build is not None:
            digest, manifest = build
            self.set_header("X-Build-Hash", digest)
            blob = self.hub.store.blob_path
            entries = [(path, blob(sha), size) for path, sha, size in manifest]
        else:
            for f in self.hub.store.select("bucket-files", bucketId=bucket["id"]):
                entries.append((f["path"], self.hub.store.blob_path(f["hash"]), f["size"]))
        self.set_header("Content-Type", "application/x-tar")
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL) as spool:
            with tarfile.open(fileobj=spool, mode="w|") as tar:
                for path, source, size in sorted(entries, key=lambda e: e[0]):
                    info = tarfile.TarInfo(path)
                    info.size = size
                    info.mode = 0o644
                    with open(source, "rb") as fh:
                        tar.addfile(info, fh)
            spool.seek(0)
            while chunk := spool.read(_CHUNK):
                self.write(chunk)
                await self.flush()
        self.finish()


class FileStreamHandler(HubHandler):
    """GET /bucket-files/:id/stream: the file's raw bytes."""

    async def get(self, raw_id: str) -> None:
        record = found(
            self.hub.store.get("bucket-files", self.record_id(raw_id, "bucket file")), "bucket-file"
        )
        bucket = self.hub.store.require("buckets", record["bucketId"], "bucket")
        self.hub.core.check_bucket_read(self.principal, bucket)
        self.set_header("Content-Type", "application/octet-stream")
        with open(self.hub.store.blob_path(record["hash"]), "rb") as fh:
            while chunk := fh.read(_CHUNK):
                self.write(chunk)
                await self.flush()
        self.finish()
