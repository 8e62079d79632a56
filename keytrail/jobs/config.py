"""`keytrail.toml`: what the nightly job reads — the lake, the tenants file, the sources, anomalies, alerts.

Every problem is a `ConfigError` that names the file, the table and key, what is wrong and how to fix it;
the CLI exits 2 on it. Relative paths are resolved against the config file's folder. The reference with a
full example is docs/nightly.md.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analytics.anomalies import resolve_settings
from analytics.tenants import parse_tenants
from ingest.errors import ConfigError
from ingest.times import parse_duration

DEFAULT_CONFIG = "keytrail.toml"
SEVERITIES = ("info", "low", "medium", "high", "critical")
SINK_TYPES = ("jsonl", "webhook", "sns")
LOG_FORMATS = ("text", "json")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]+(\.fifo)?$")
ACCOUNT = re.compile(r"^\d{12}$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


@dataclass(frozen=True)
class AwsAccess:
    """How to reach AWS for one source or sink: region, profile, endpoint and an optional role to assume."""

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    role_arn: str | None = None


@dataclass(frozen=True)
class TrailSource:
    """A CloudTrail bucket (or prefix, or local folder) read incrementally."""

    name: str
    location: str  # s3://bucket/prefix or a local folder
    aws: AwsAccess
    accounts: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    verify: bool = False  # verify the digest chain of what was ingested (keytrail verify cloudtrail)
    keep_raw: bool = False  # keep each record's text in the lake (sources deleted after ingest)
    kind: str = "cloudtrail"


@dataclass(frozen=True)
class LookupSource:
    """CloudTrail LookupEvents for one region of one account (no trail bucket)."""

    name: str
    region: str
    aws: AwsAccess
    kind: str = "lookup_events"


@dataclass(frozen=True)
class HsmSource:
    """CloudHSM audit logs: CloudWatch log groups, or a folder of exports (local or s3://)."""

    name: str
    aws: AwsAccess
    log_groups: tuple[str, ...] = ()
    exports: str | None = None
    cluster_id: str | None = None
    kind: str = "cloudhsm"


Source = TrailSource | LookupSource | HsmSource


@dataclass(frozen=True)
class SinkConfig:
    """One alert destination."""

    name: str
    type: str
    min_severity: str
    path: Path | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    topic_arn: str | None = None
    aws: AwsAccess = AwsAccess()


@dataclass(frozen=True)
class Config:
    """A validated keytrail.toml."""

    path: Path
    lake: str
    state_dir: Path | None
    lake_endpoint_url: str | None
    tenants: Path | None
    sources: tuple[Source, ...]
    overlap: dt.timedelta = dt.timedelta(days=2)
    first_run: dt.timedelta | None = dt.timedelta(days=30)
    compact_min_files: int = 2
    log_format: str = "text"
    anomalies_enabled: bool = True
    anomalies_lookback: dt.timedelta = dt.timedelta(days=2)
    anomalies_full: bool = False  # score every hour from the events, not the new window from stored baselines
    anomaly_settings: dict[str, Any] = field(default_factory=dict)
    alert_min_severity: str = "high"
    sinks: tuple[SinkConfig, ...] = ()

    @property
    def lake_is_s3(self) -> bool:
        return self.lake.startswith("s3://")


class _Table:
    """One TOML table being validated: typed getters that name the key in their errors, and a final check
    for keys nobody asked about (typos)."""

    def __init__(self, file: Path, where: str, data: Any) -> None:
        self.file = file
        self.where = where
        if not isinstance(data, dict):
            raise self.error(None, f"must be a table, got {type(data).__name__}", f"write it as [{where}]")
        self.data = dict(data)
        self.asked: set[str] = set()

    def error(self, key: str | None, problem: str, fix: str) -> ConfigError:
        place = f"[{self.where}]" if self.where else "top level"
        name = f" key '{key}'" if key else ""
        return ConfigError(f"{self.file}: {place}{name} {problem}; {fix}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        self.asked.add(key)
        if key not in self.data:
            if required:
                raise self.error(key, "is missing", f"add {key} = … (see docs/nightly.md)")
            return default
        value = self.data[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float, (int, float))):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise self.error(key, f"must be a {names}, got {value!r}", f"write e.g. {key} = {_example(kind)}")
        return value

    def text(self, key: str, default: str | None = None, required: bool = False) -> str | None:
        value = self.get(key, str, default, required)
        if value is not None and not value.strip():
            raise self.error(key, "is empty", f"give a value or remove {key}")
        return value  # type: ignore[no-any-return]

    def texts(self, key: str, pattern: re.Pattern[str] | None = None, what: str = "") -> tuple[str, ...]:
        values = self.get(key, list, [])
        for v in values:
            if not isinstance(v, str):
                raise self.error(key, f"must be a list of strings, got {v!r} in it", f'write {key} = ["…", "…"]')
            if pattern and not pattern.fullmatch(v):
                raise self.error(key, f"has {v!r}, which is not {what}", f"fix or remove {v!r}")
        return tuple(values)

    def choice(self, key: str, choices: Iterable[str], default: str) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            raise self.error(key, f"is {value!r}", f"choose one of: {', '.join(choices)}")
        return value  # type: ignore[no-any-return]

    def duration(self, key: str, default: dt.timedelta | None, allow_all: bool = False) -> dt.timedelta | None:
        value = self.get(key, str, None)
        if value is None:
            return default
        if allow_all and value == "all":
            return None
        try:
            return parse_duration(value)
        except ConfigError:
            extra = ' or "all"' if allow_all else ""
            raise self.error(key, f"is {value!r}, not a duration", f'write e.g. {key} = "2d", "36h"{extra}') from None

    def pattern(self, key: str, pattern: re.Pattern[str], what: str, fix: str) -> str | None:
        value = self.text(key)
        if value is not None and not pattern.fullmatch(value):
            raise self.error(key, f"is {value!r}, not {what}", fix)
        return value

    def path(self, key: str, required: bool = False) -> Path | None:
        value = self.text(key, required=required)
        if value is None:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.file.parent / path)

    def sub(self, key: str) -> _Table:
        self.asked.add(key)
        return _Table(self.file, f"{self.where}.{key}" if self.where else key, self.data.get(key, {}))

    def items(self, key: str) -> list[_Table]:
        """An array of tables ([[key]]), each to validate."""
        self.asked.add(key)
        values = self.data.get(key, [])
        where = f"{self.where}.{key}" if self.where else key
        if not isinstance(values, list):
            raise self.error(key, "must be an array of tables", f"write each entry as [[{where}]]")
        return [_Table(self.file, f"{where} #{n}", v) for n, v in enumerate(values, start=1)]

    def done(self) -> None:
        """Refuse keys nobody reads: a typo must not silently disable a setting."""
        for key in self.data:
            if key not in self.asked:
                close = difflib.get_close_matches(key, sorted(self.asked), n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(sorted(self.asked))}"
                raise self.error(key, "is not a known setting", hint)


def _example(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    examples = {str: '"…"', int: "2", float: "10.0", bool: "true", list: '["…"]', dict: "{ … }"}
    return examples.get(kinds[0], "…")


def load_config(path: str | Path = DEFAULT_CONFIG) -> Config:
    """Read and validate a keytrail.toml."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(
            f"{file}: no such config file; create one (docs/nightly.md has an example) or pass --config FILE"
        )
    try:
        data = tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{file}: not valid TOML ({err}); fix the syntax at that line") from None
    top = _Table(file, "", data)
    config = _read(file, top)
    top.done()
    return config


def _read(file: Path, top: _Table) -> Config:
    lake = top.sub("lake")
    location = lake.text("path", required=True)
    assert location is not None
    if location.startswith("s3://"):
        if len(location) <= 5 or location[5] == "/":
            raise lake.error("path", f"is {location!r}, which names no bucket", "write it as s3://bucket/prefix")
    else:
        location = str(lake.path("path"))
    state_dir = lake.path("state_dir")
    lake_endpoint = lake.text("endpoint_url")
    lake.done()

    defaults = _aws(top.sub("aws"), AwsAccess())
    ingest = top.sub("ingest")
    overlap = ingest.duration("overlap", dt.timedelta(days=2))
    first_run = ingest.duration("first_run", dt.timedelta(days=30), allow_all=True)
    compact_min_files = ingest.get("compact_min_files", int, 2)
    if compact_min_files < 2:
        raise ingest.error("compact_min_files", f"is {compact_min_files}", "use 2 or more (files per day to compact)")
    log_format = ingest.choice("log_format", LOG_FORMATS, "text")
    ingest.done()

    sources = _sources(top, defaults)
    anomalies = top.sub("anomalies")
    enabled = anomalies.get("enabled", bool, True)
    lookback = anomalies.duration("lookback", dt.timedelta(days=2))
    full = anomalies.get("full_rescore", bool, False)
    settings = anomalies.get("settings", dict, {})
    _check_anomaly_settings(anomalies, settings)
    anomalies.done()

    alerts = top.sub("alerts")
    min_severity = alerts.choice("min_severity", SEVERITIES, "high")
    sinks = tuple(_sink(t, defaults, min_severity) for t in alerts.items("sinks"))
    _unique(alerts, "sinks", [s.name for s in sinks])
    alerts.done()

    assert overlap is not None and lookback is not None
    return Config(
        path=file,
        lake=location,
        state_dir=state_dir,
        lake_endpoint_url=lake_endpoint,
        tenants=top.path("tenants"),
        sources=sources,
        overlap=overlap,
        first_run=first_run,
        compact_min_files=compact_min_files,
        log_format=log_format,
        anomalies_enabled=enabled,
        anomalies_lookback=lookback,
        anomalies_full=full,
        anomaly_settings=dict(settings),
        alert_min_severity=min_severity,
        sinks=sinks,
    )


def _aws(table: _Table, defaults: AwsAccess) -> AwsAccess:
    """region/profile/endpoint_url/role_arn of a table, falling back to the [aws] defaults."""
    region = table.pattern("region", REGION, "an AWS region", 'write e.g. region = "eu-west-1"')
    role = table.pattern(
        "role_arn",
        ROLE_ARN,
        "an IAM role ARN",
        'write e.g. role_arn = "arn:aws:iam::111122223333:role/keytrail-reader"',
    )
    return AwsAccess(
        region=region or defaults.region,
        profile=table.text("profile") or defaults.profile,
        endpoint_url=table.text("endpoint_url") or defaults.endpoint_url,
        role_arn=role or defaults.role_arn,
    )


def _sources(top: _Table, defaults: AwsAccess) -> tuple[Source, ...]:
    sources: list[Source] = []
    for t in top.items("cloudtrail"):
        name = t.text("name", required=True)
        bucket, path = t.text("bucket"), t.path("path")
        if bool(bucket) == bool(path):
            raise t.error(None, "needs exactly one of bucket or path", 'write bucket = "s3://trail-bucket/prefix"')
        if bucket and (not bucket.startswith("s3://") or len(bucket) <= 5):
            raise t.error("bucket", f"is {bucket!r}, not an S3 URI", "write it as s3://bucket/prefix")
        accounts = t.texts("accounts", ACCOUNT, "a 12-digit AWS account id")
        regions = t.texts("regions", REGION, "an AWS region")
        verify, keep_raw = t.get("verify", bool, False), t.get("keep_raw", bool, False)
        location = bucket or str(path)
        sources.append(TrailSource(str(name), location, _aws(t, defaults), accounts, regions, verify, keep_raw))
        t.done()
    for t in top.items("lookup_events"):
        name = t.text("name", required=True)
        aws = _aws(t, defaults)
        if not aws.region:
            raise t.error("region", "is missing", 'LookupEvents reads one region: add region = "us-east-1"')
        sources.append(LookupSource(str(name), aws.region, aws))
        t.done()
    for t in top.items("cloudhsm"):
        name = t.text("name", required=True)
        groups = t.texts("log_groups")
        exports = t.text("exports")
        if exports and groups:
            raise t.error("exports", "is given with log_groups", "use one [[cloudhsm]] entry for each")
        if exports and not exports.startswith("s3://"):
            exports = str(t.path("exports"))
        cluster = t.text("cluster_id")
        if not groups and not exports and cluster:
            groups = (f"/aws/cloudhsm/{cluster}",)
        if not groups and not exports:
            raise t.error(
                "log_groups", "is missing", 'add log_groups = ["/aws/cloudhsm/<cluster-id>"] or exports = "s3://…"'
            )
        sources.append(HsmSource(str(name), _aws(t, defaults), groups, exports, cluster))
        t.done()
    _unique(top, "sources", [s.name for s in sources])
    if not sources:
        raise top.error(None, "has no sources", "add at least one [[cloudtrail]], [[lookup_events]] or [[cloudhsm]]")
    return tuple(sources)


def _sink(t: _Table, defaults: AwsAccess, min_severity: str) -> SinkConfig:
    kind = t.choice("type", SINK_TYPES, "")
    name = t.text("name") or kind
    severity = t.choice("min_severity", SEVERITIES, min_severity)
    timeout = float(t.get("timeout", (int, float), 10.0))
    if kind == "jsonl":
        sink = SinkConfig(name, kind, severity, path=t.path("path", required=True))
    elif kind == "webhook":
        url = t.text("url", required=True)
        assert url is not None
        if not url.startswith(("http://", "https://")):
            raise t.error("url", f"is {url!r}, not an http(s) URL", 'write e.g. url = "https://hooks.example.com/x"')
        headers = t.get("headers", dict, {})
        if not all(isinstance(v, str) for v in headers.values()):
            raise t.error("headers", "must map names to strings", 'write headers = { Authorization = "Bearer …" }')
        sink = SinkConfig(name, kind, severity, url=url, headers=dict(headers), timeout=timeout)
    else:
        topic = t.pattern(
            "topic_arn", TOPIC_ARN, "an SNS topic ARN", 'write e.g. topic_arn = "arn:aws:sns:us-east-1:111122223333:x"'
        )
        if not topic:
            raise t.error("topic_arn", "is missing", "add the ARN of the SNS topic to publish to")
        explicit = t.data.get("region")
        aws = _aws(t, defaults)
        region = explicit or topic.split(":")[3]  # the topic's region, unless the sink names one
        sink = SinkConfig(
            name, kind, severity, topic_arn=topic, aws=AwsAccess(region, aws.profile, aws.endpoint_url, aws.role_arn)
        )
    t.done()
    return sink


def _check_anomaly_settings(table: _Table, settings: dict[str, Any]) -> None:
    try:
        resolve_settings(settings)
    except ConfigError as err:
        raise table.error("settings", str(err), "see docs/anomalies.md for the settings and their types") from None


def _unique(table: _Table, key: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise table.error(key, f"has two entries named {name!r}", "give each entry its own name")
        seen.add(name)


def check_files(cfg: Config) -> None:
    """Before anything is ingested: the tenants file exists and is valid, and every local folder a source reads
    exists, so a wrong path stops the run with exit 2 instead of after a night's ingest."""
    if cfg.tenants is not None:
        try:
            text = cfg.tenants.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(
                f"{cfg.path}: tenants = {cfg.tenants} cannot be read ({err.strerror}); fix the path (relative to "
                f"{cfg.path.name}), or remove the line to attribute nothing to tenants"
            ) from None
        parse_tenants(text, cfg.tenants)  # names the tenants file, line and field
    for source in cfg.sources:
        local = _local_location(source)
        if local is not None and not local.exists():
            raise ConfigError(f"{cfg.path}: source {source.name!r} reads {local}, which does not exist; fix its path")


def _local_location(source: Source) -> Path | None:
    location = source.location if isinstance(source, TrailSource) else getattr(source, "exports", None)
    return Path(location) if location and not location.startswith("s3://") else None
