"""keytrail.toml: the documented example loads; each mistake is an error naming the key and the fix."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.errors import ConfigError
from ingest.times import parse_duration
from keytrail.cli import cli
from keytrail.jobs.config import HsmSource, LookupSource, TrailSource, load_config

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = '[lake]\npath = "lake"\n[[cloudtrail]]\nname = "t"\nbucket = "s3://b/p"\n'


def doc_example() -> str:
    """The full example of docs/nightly.md (the first ```toml block)."""
    text = (ROOT / "docs" / "nightly.md").read_text()
    match = re.search(r"```toml\n(.*?)```", text, re.S)
    assert match
    return match.group(1)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keytrail.toml"
    path.write_text(text)
    return path


def test_the_documented_example_loads(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, doc_example()))
    assert cfg.lake == "s3://example-audit-lake/keytrail" and cfg.state_dir == Path("/var/lib/keytrail")
    kinds = [type(s) for s in cfg.sources]
    assert kinds == [TrailSource, LookupSource, HsmSource, HsmSource]
    trail = cfg.sources[0]
    assert isinstance(trail, TrailSource) and trail.aws.role_arn and trail.aws.role_arn.endswith("keytrail-reader")
    assert trail.accounts == ("111122223333", "444455556666") and trail.aws.region == "us-east-1"
    assert cfg.overlap == dt.timedelta(days=2) and cfg.anomaly_settings == {"spike_min_volume": 50}
    assert [s.type for s in cfg.sinks] == ["jsonl", "webhook", "sns"]
    assert cfg.sinks[2].aws.region == "eu-west-1" and cfg.sinks[1].min_severity == "critical"


def test_minimal_config_and_relative_paths(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, 'tenants = "t/tenants.toml"\n' + MINIMAL))
    assert cfg.lake == str(tmp_path / "lake") and cfg.tenants == tmp_path / "t" / "tenants.toml"
    assert cfg.first_run == dt.timedelta(days=30) and cfg.state_dir is None
    assert cfg.sinks == () and cfg.alert_min_severity == "high"
    assert isinstance(cfg.sources[0], TrailSource) and not cfg.sources[0].keep_raw


def test_keep_raw_is_set_per_trail_source(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL + 'keep_raw = true\n[[cloudtrail]]\nname = "u"\npath = "trails"\n'))
    assert [(s.name, getattr(s, "keep_raw", None)) for s in cfg.sources] == [("t", True), ("u", False)]
    with pytest.raises(ConfigError, match="keep_raw"):
        load_config(write(tmp_path, MINIMAL + 'keep_raw = "yes"\n'))


BAD = [
    ('[lake]\npath = "x"\n', "top level has no sources; add at least one [[cloudtrail]]"),
    ('[[cloudtrail]]\nname = "t"\nbucket = "s3://b"\n', "[lake] key 'path' is missing; add path = …"),
    (MINIMAL.replace('"s3://b/p"', '"b/p"'), "[cloudtrail #1] key 'bucket' is 'b/p', not an S3 URI; write it as s3://"),
    (MINIMAL + 'accounts = ["12345"]\n', "key 'accounts' has '12345', which is not a 12-digit AWS account id"),
    (MINIMAL + 'role_arn = "admin"\n', "key 'role_arn' is 'admin', not an IAM role ARN; write e.g. role_arn = "),
    (MINIMAL + 'regoins = ["us-east-1"]\n', "key 'regoins' is not a known setting; did you mean 'regions'?"),
    (MINIMAL + "[ingest]\noverlap = 2\n", "[ingest] key 'overlap' must be a str, got 2"),
    (MINIMAL + '[ingest]\noverlap = "2 weeks"\n', "[ingest] key 'overlap' is '2 weeks', not a duration"),
    (MINIMAL + '[alerts]\nmin_severity = "urgent"\n', "key 'min_severity' is 'urgent'; choose one of: info, low"),
    (MINIMAL + '[[alerts.sinks]]\ntype = "email"\n', "[alerts.sinks #1] key 'type' is 'email'; choose one of: jsonl"),
    (MINIMAL + '[[alerts.sinks]]\ntype = "webhook"\nurl = "ftp://x"\n', "key 'url' is 'ftp://x', not an http(s) URL"),
    (MINIMAL + '[[alerts.sinks]]\ntype = "sns"\n', "key 'topic_arn' is missing"),
    (MINIMAL + "[anomalies.settings]\nspike_min_volum = 3\n", "unknown anomalies setting 'spike_min_volum'"),
    (MINIMAL + '[[lookup_events]]\nname = "l"\n', "[lookup_events #1] key 'region' is missing; LookupEvents reads"),
    (MINIMAL + '[[cloudhsm]]\nname = "h"\n', "[cloudhsm #1] key 'log_groups' is missing"),
    (MINIMAL + '[[cloudhsm]]\nname = "t"\ncluster_id = "cluster-x"\n', "has two entries named 't'"),
    ("[lake\n", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_mistakes_name_the_key_and_the_fix(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert message in str(err.value)
    assert str(tmp_path / "keytrail.toml") in str(err.value)


def test_missing_file_and_cli_exit_code_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["nightly", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "nope.toml: no such config file; create one (docs/nightly.md has an example)" in result.stderr


def test_parse_duration() -> None:
    assert parse_duration("400d") == dt.timedelta(days=400)
    assert parse_duration("36h") == dt.timedelta(hours=36)
    with pytest.raises(ConfigError, match="e.g. 400d"):
        parse_duration("1y")
