"""Redshift's bulk load: each batch staged as Parquet in S3, then one COPY per table per batch.

Redshift's own guidance for bulk loads is COPY from S3; row INSERTs go through the leader
node and a six-month backfill that way takes days (docs/redshift.md#how-batches-are-loaded).
A landing writes each table's chunks as Parquet parts under
``<s3_uri><run>/<schema>.<table>/`` (``run`` names this landing), a manifest listing exactly
those parts, and runs ``COPY <raw> FROM <manifest> IAM_ROLE <role> FORMAT AS PARQUET
MANIFEST`` in the landing transaction, so the rows, the batch record and the watermark
commit together. Once the transaction has ended the run's objects are deleted; a landing
killed before that leaves them, and the next landing deletes every object under ``s3_uri``
that is not its own (cycles never overlap: they hold the cycle lock).

Credentials: the S3 client takes the standard AWS chain (environment, profile, web
identity, container or instance role); COPY reads the objects with the IAM role named in
the config. Neither appears in a message or log line.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.engines.strategies import BatchLoad, LoadSite
from ot_core.errors import ConfigError, ExtraMissing, TransientError
from ot_core.failpoints import failpoint

if TYPE_CHECKING:
    import pyarrow as pa

    from ot_core.engines.base import Backend

log = logging.getLogger("ot.cycle")

MANIFEST = "manifest.json"
NO_S3 = ("no S3 staging location is configured (set redshift.s3_uri in the config or "
         "OT_REDSHIFT_S3_URI): batches land by multi-row INSERT, which Redshift advises "
         "against for bulk loads (a backfill that way takes days; docs/redshift.md)")


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix/`` → (bucket, 'prefix/'); the prefix is '' at the bucket's root."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, (prefix.rstrip("/") + "/") if prefix.strip("/") else ""


def new_run() -> str:
    """A landing's name among the staged objects: when it started, and unique."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}"


@contextmanager
def s3_errors(what: str) -> Iterator[None]:
    """Turn the S3 client's failures into this project's errors, naming the location and
    the fix (never the credentials)."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    try:
        yield
    except (NoCredentialsError, PartialCredentialsError):
        raise ConfigError(f"{what}: no AWS credentials found by the standard chain (set "
                          "AWS_PROFILE, or run with an instance, container or web-identity "
                          "role)") from None
    except EndpointConnectionError as e:
        raise TransientError(f"{what}: S3 cannot be reached ({e.__class__.__name__}); "
                             "run again") from None
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        if code in ("AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId",
                    "SignatureDoesNotMatch", "NoSuchBucket", "404"):
            raise ConfigError(f"{what}: S3 refused it ({code}); check the bucket exists and "
                              "the uploading identity has s3:PutObject, s3:GetObject, "
                              "s3:ListBucket and s3:DeleteObject on it "
                              "(docs/redshift.md#s3-bucket-and-iam-role)") from None
        if code in ("SlowDown", "ServiceUnavailable", "InternalError", "503", "500"):
            raise TransientError(f"{what}: S3 is busy ({code}); run again") from None
        raise
    except BotoCoreError as e:
        raise TransientError(f"{what}: {e.__class__.__name__}; run again") from None


class S3Stage:
    """The objects of one landing under ``<s3_uri><run>/``: write, list, delete, sweep."""

    def __init__(self, s3_uri: str, region: str | None = None, run: str | None = None):
        self.uri = s3_uri
        self.bucket, self.base = split_s3_uri(s3_uri)
        self.region = region
        self.run = run or new_run()
        self.prefix = f"{self.base}{self.run}/"
        self.written: list[str] = []
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The S3 client, made on first use from the standard credential chain (an endpoint
        other than AWS's comes from ``AWS_ENDPOINT_URL_S3``, as for every AWS SDK)."""
        if self._client is None:
            try:
                import boto3
            except ImportError:
                raise ExtraMissing("staging batches in S3 needs boto3: pip install "
                                   "'ot-workbench[redshift]'") from None
            self._client = boto3.session.Session(region_name=self.region).client("s3")
        return self._client

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def folder(self, schema: str | None, table: str) -> str:
        return f"{self.prefix}{schema + '.' if schema else ''}{table}/"

    def put(self, key: str, body: bytes) -> int:
        with s3_errors(f"writing {self.url(key)}"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        self.written.append(key)
        return len(body)

    def put_parquet(self, schema: str | None, table: str, data: pa.Table) -> tuple[str, int]:
        """One Parquet part of ``table``'s batch; its key and size in bytes."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(data, sink, compression="snappy")
        folder = self.folder(schema, table)
        key = f"{folder}part-{sum(k.startswith(folder) for k in self.written):05d}.parquet"
        return key, self.put(key, sink.getvalue().to_pybytes())

    def put_manifest(self, schema: str | None, table: str,
                     parts: list[tuple[str, int]]) -> str:
        """The manifest naming exactly ``parts`` (each mandatory: a missing part fails the
        COPY instead of loading less); its s3:// URL."""
        body = {"entries": [{"url": self.url(k), "mandatory": True,
                             "meta": {"content_length": size}} for k, size in parts]}
        key = f"{self.folder(schema, table)}{MANIFEST}"
        self.put(key, json.dumps(body, indent=1).encode())
        return self.url(key)

    def keys(self, prefix: str | None = None) -> list[str]:
        """Every key under ``prefix`` (default: the whole staging location)."""
        prefix = self.base if prefix is None else prefix
        out: list[str] = []
        with s3_errors(f"listing s3://{self.bucket}/{prefix}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                out.extend(o["Key"] for o in page.get("Contents", []))
        return out

    def delete(self, keys: list[str]) -> int:
        for i in range(0, len(keys), 1000):  # the most one request deletes
            batch = keys[i:i + 1000]
            with s3_errors(f"deleting {len(batch)} staged object(s) under {self.uri}"):
                self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": k} for k in batch], "Quiet": True})
        return len(keys)

    def release(self) -> int:
        """Delete what this landing wrote."""
        done = self.delete(self.written)
        self.written = []
        return done

    def sweep(self) -> int:
        """Delete what other (interrupted) landings left under the staging location."""
        left = [k for k in self.keys() if not k.startswith(self.prefix)]
        if left:
            runs = sorted({k[len(self.base):].split("/", 1)[0] for k in left})
            log.warning("deleting %d object(s) an interrupted landing left under %s (runs %s)",
                        len(left), self.uri, ", ".join(runs[:5]))
        return self.delete(left)


class S3CopyLoad(BatchLoad):
    """A landing on Redshift: a table's batch of ``copy_min_rows`` rows or more is staged in
    S3 and loaded by one COPY; a smaller one, or any where no S3 location is configured, by
    multi-row INSERT (the rows of a small batch are held until it is known to be small)."""

    def __init__(self, backend: Backend, site: LoadSite):
        super().__init__(backend, site)
        cfg = site.redshift
        self.min_rows = cfg.copy_min_rows
        self.iam_role = cfg.iam_role
        self.stage = S3Stage(cfg.s3_uri, cfg.region) if cfg.s3_uri else None
        if self.stage is None:
            log.warning(NO_S3)
        elif self.iam_role is None:
            raise ConfigError("redshift.iam_role (or OT_REDSHIFT_IAM_ROLE) is not set: COPY "
                              f"reads {cfg.s3_uri} with that IAM role; name its ARN, or "
                              "default for the cluster's default role")
        self.held: dict[str, list[pa.Table]] = {}
        self.parts: dict[str, list[tuple[str, int]]] = {}

    def add(self, conn: Connection, schema: str | None, table: str, data: pa.Table) -> None:
        if self.stage is None:
            self.backend.load_arrow(conn, schema, table, data)
            return
        if table in self.parts:
            self.parts[table].append(self.stage.put_parquet(schema, table, data))
            return
        held = self.held.setdefault(table, [])
        held.append(data)
        if sum(t.num_rows for t in held) >= self.min_rows:
            self.parts[table] = [self.stage.put_parquet(schema, table, t) for t in held]
            del self.held[table]

    def finish(self, conn: Connection, schema: str | None, table: str) -> None:
        statement = self.prepare(schema, table)
        if statement is not None:
            conn.execute(sa.text(statement[0]), statement[1])
            return
        for data in self.held.pop(table, []):
            self.backend.load_arrow(conn, schema, table, data)

    def prepare(self, schema: str | None, table: str) -> tuple[str, dict[str, str]] | None:
        """Write the manifest of ``table``'s staged parts; the COPY and its parameters (None:
        nothing staged, the batch is small and goes in by INSERT)."""
        parts = self.parts.pop(table, None)
        if not parts or self.stage is None:
            return None
        manifest = self.stage.put_manifest(schema, table, parts)
        failpoint("before_copy", table)
        return self.copy_sql(schema, table), {"manifest": manifest,
                                               "iam_role": str(self.iam_role)}

    def copy_sql(self, schema: str | None, table: str) -> str:
        return self.site.render("land/copy_parquet.sql",
                                target=self.backend.qualified(schema, table))

    def release(self) -> None:
        self.held.clear()
        self.parts.clear()
        if self.stage is not None:
            self.stage.release()

    def sweep(self) -> int:
        return 0 if self.stage is None else self.stage.sweep()
