"""The tenants file: the documented format parses; each kind of mistake names its line, field and fix."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from analytics.tenants import load_tenants, parse_tenants
from ingest.errors import ConfigError

GOOD = """\
[settings]
kms_price_per_10k_requests = 0.05   # USD

[[tenant]]
id = "acme"
name = "Acme Analytics"
accounts = ["444455556666"]
principals = ["arn:aws:iam::444455556666:role/acme-*"]
keys = ["arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", "alias/acme-data"]
encryption_context = { tenant_id = "acme" }
hsm_users = ["acme_cu"]
custom_key_stores = []
active_from = 2026-10-01T00:00:00Z
revoked_at = 2026-11-20T00:00:00Z

[[tenant]]
id = "globex"
name = "Globex"
accounts = ["777788889999"]
"""


def test_documented_example_parses() -> None:
    parsed = parse_tenants(GOOD)
    acme, globex = parsed.tenants
    assert parsed.price_per_10k_requests == 0.05
    assert acme.encryption_context == (("tenant_id", "acme"),)
    assert acme.revoked_at == dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    assert (globex.id, globex.keys, globex.active_from) == ("globex", (), None)


def test_principal_ids_declare_role_and_user_unique_ids() -> None:
    text = GOOD + 'principal_ids = ["AROAIDPPEZS35WEXAMPLE", "AIDAJ45Q7YFFAREXAMPLE"]\n'
    assert parse_tenants(text).tenants[1].principal_ids == ("AROAIDPPEZS35WEXAMPLE", "AIDAJ45Q7YFFAREXAMPLE")


def test_docs_example_is_valid() -> None:
    """The example in docs/tenants.md parses (the docs cannot drift from the validator)."""
    text = (Path(__file__).parent.parent / "docs" / "tenants.md").read_text()
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    assert parse_tenants(example).tenants


@pytest.mark.parametrize(
    ("replace", "by", "message"),
    [
        ('accounts = ["777788889999"]', 'accounts = ["7777-8888"]', "tenants.toml:19: tenant #2: accounts: '7777-8888' is not a 12-digit"),  # noqa: E501
        ('accounts = ["777788889999"]', 'accounts = "777788889999"', "tenants.toml:19: tenant #2: accounts: must be a list"),  # noqa: E501
        ('accounts = ["777788889999"]', 'acounts = ["777788889999"]', "tenants.toml:19: tenant #2: acounts: unknown field; known fields: id, name"),  # noqa: E501
        ('accounts = ["777788889999"]', 'accounts = []\nprincipal_ids = ["AROA1234"]', "tenants.toml:20: tenant #2: principal_ids: 'AROA1234' is not an IAM role or user unique id (AROA… or AIDA…"),  # noqa: E501
        ('accounts = ["777788889999"]', 'accounts = []\nprincipal_ids = ["arn:aws:iam::777788889999:role/x"]', "tenants.toml:20: tenant #2: principal_ids: 'arn:aws:iam::777788889999:role/x' is not an IAM role or user unique id"),  # noqa: E501
        ('accounts = ["777788889999"]', 'accounts = []\nprincipal_ids = ["AROAidppezs35wexample:s1"]', "tenants.toml:20: tenant #2: principal_ids: 'AROAidppezs35wexample:s1' is not"),  # noqa: E501
        ('id = "globex"', 'id = "acme"', 'tenants.toml:17: tenant #2: id: duplicate id "acme"'),
        ('id = "globex"\n', "", "tenants.toml:16: tenant #2: id: required"),
        ('hsm_users = ["acme_cu"]', "hsm_users = [42]", 'tenants.toml:11: tenant #1: hsm_users: 42 is a TOML int, not a string: quote it, "42"'),  # noqa: E501
        ("2026-11-20T00:00:00Z", "2026-11-20T00:00:00", "tenants.toml:14: tenant #1: revoked_at: must be a TOML date-time with a time zone"),  # noqa: E501
        ("2026-11-20T00:00:00Z", '"2026-11-20"', "tenants.toml:14: tenant #1: revoked_at: must be a TOML date-time"),
        ("2026-11-20T00:00:00Z", "2026-09-01T00:00:00Z", "tenants.toml:14: tenant #1: revoked_at: 2026-09-01T00:00:00+00:00 is not after active_from"),  # noqa: E501
        ('{ tenant_id = "acme" }', '{ tenant_id = 7 }', "tenants.toml:10: tenant #1: encryption_context: must be a table of strings"),  # noqa: E501
        ('"alias/acme-data"', '"acme-data"', "tenants.toml:9: tenant #1: keys: 'acme-data' is not a key ARN, key id, alias"),  # noqa: E501
        ("0.05", '"cheap"', "tenants.toml:2: [settings]: kms_price_per_10k_requests: must be a number"),
        ("kms_price_per_10k", "price_per_10k", "tenants.toml:2: [settings]: price_per_10k_requests: unknown setting"),
        ("[[tenant]]\nid = \"acme\"", "[[tenant]]\n[tenant.x]\nid = \"acme\"", "tenants.toml:5: tenant #1: x: unknown field"),  # noqa: E501
        ('name = "Globex"', 'name = "Globex', "tenants.toml: not valid TOML: Illegal character '\\n' (at line 18"),
    ],
)  # fmt: skip
def test_bad_tenants_file_names_line_field_and_fix(replace: str, by: str, message: str) -> None:
    assert replace in GOOD
    with pytest.raises(ConfigError) as err:
        parse_tenants(GOOD.replace(replace, by, 1))
    assert str(err.value).startswith(message), str(err.value)
    assert err.value.exit_code == 2


def test_single_bracket_tenant_block_is_explained() -> None:
    with pytest.raises(
        ConfigError, match=r"tenants.toml:1: write each tenant as a \[\[tenant\]\] block \(two brackets\)"
    ):
        parse_tenants('[tenant]\nid = "acme"\n')


def test_default_file_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEYTRAIL_TENANTS", raising=False)
    assert load_tenants().tenants == ()  # no file anywhere: no tenants
    (tmp_path / "tenants.toml").write_text('[[tenant]]\nid = "here"\n')
    assert [t.id for t in load_tenants().tenants] == ["here"]
    (tmp_path / "env.toml").write_text('[[tenant]]\nid = "env"\n')
    monkeypatch.setenv("KEYTRAIL_TENANTS", str(tmp_path / "env.toml"))
    assert [t.id for t in load_tenants().tenants] == ["env"]
    assert [t.id for t in load_tenants(tmp_path / "tenants.toml").tenants] == ["here"]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"cannot read tenants file .*nope.toml \(--tenants\): No such file or directory\. Pass --tenants",
    ):
        load_tenants(tmp_path / "nope.toml")


NEVER_MATCHES = [
    (
        'principals = ["arn:aws:iam::444455556666:role/acme-*"]',
        'principals = ["arn:aws:iam:777788889999:role/app"]',
        "tenants.toml:8: tenant #1: principals: 'arn:aws:iam:777788889999:role/app' is not an IAM ARN or glob that "
        "CloudTrail can write: arn:aws:iam::<12-digit account>:role/<name> (two colons before the account; also "
        "user/<name>, root, or sts::<account>:assumed-role/<role>/<session>), "
        'e.g. "arn:aws:iam::444455556666:role/acme-*"',
    ),
    (
        'principals = ["arn:aws:iam::444455556666:role/acme-*"]',
        'principals = ["arn:aws:iam::4444-5555:role/app"]',
        "tenants.toml:8: tenant #1: principals: 'arn:aws:iam::4444-5555:role/app' is not an IAM ARN",
    ),
    (
        '"alias/acme-data"',
        '"arn:aws:kms:us-east-1:1111:key/1234abcd-12ab-34cd-56ef-1234567890ab"',
        "tenants.toml:9: tenant #1: keys: 'arn:aws:kms:us-east-1:1111:key/1234abcd-12ab-34cd-56ef-1234567890ab' is not "
        'a key ARN, key id, alias ("alias/acme-data") or alias ARN (arn:aws:kms:<region>:<12-digit account>:key/<id>), '
        'or a CloudHSM key handle "hsm:<cluster id>:<handle>", e.g. "hsm:cluster-2kf8vwnq3xa:262207"',
    ),
    ('"alias/acme-data"', '"hsm:262207"', "tenants.toml:9: tenant #1: keys: 'hsm:262207' is not a key ARN"),
    (
        'hsm_users = ["acme_cu"]',
        'hsm_users = ["2kf8vwnq3xa/acme_cu"]',
        "tenants.toml:11: tenant #1: hsm_users: '2kf8vwnq3xa/acme_cu' is not a CloudHSM crypto-user name, e.g. "
        '"acme_cu", or "<cluster id>/<name>" for the user of one cluster, e.g. "cluster-2kf8vwnq3xa/acme_cu"',
    ),
    (
        '{ tenant_id = "acme" }',
        "{ tenant_id = [] }",
        "tenants.toml:10: tenant #1: encryption_context: must be a table of strings or lists of strings (globs "
        'allowed), e.g. { tenant_id = "acme" } or { customer = ["nimbus", "nimbus-*"] }',
    ),
]


@pytest.mark.parametrize(("replace", "by", "message"), NEVER_MATCHES)
def test_a_rule_that_could_never_match_is_refused_with_its_line_and_fix(replace: str, by: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_tenants(GOOD.replace(replace, by, 1))
    assert str(err.value).startswith(message), str(err.value)


def test_new_rule_shapes_parse() -> None:
    """HSM key handles, cluster-scoped crypto users, several and glob context values, roles with a path and
    account globs are all accepted."""
    extra = """
[[tenant]]
id = "nimbus"
accounts = ["123456789012", "210987654321"]
principals = ["arn:aws:iam::*:role/nimbus-*", "arn:aws:iam::123456789012:role/service-role/nimbus-etl"]
keys = ["hsm:cluster-2kf8vwnq3xa:262207", "arn:aws:kms:*:123456789012:key/*"]
hsm_users = ["cluster-2kf8vwnq3xa/nimbus_cu"]
encryption_context = { customer = ["nimbus", "nimbus-eu-*"], tenant_id = "nimbus" }
"""
    nimbus = parse_tenants(GOOD + extra).tenants[2]
    assert nimbus.keys == ("hsm:cluster-2kf8vwnq3xa:262207", "arn:aws:kms:*:123456789012:key/*")
    assert nimbus.hsm_users == ("cluster-2kf8vwnq3xa/nimbus_cu",)
    assert nimbus.encryption_context == (
        ("customer", "nimbus"),
        ("customer", "nimbus-eu-*"),
        ("tenant_id", "nimbus"),
    )
