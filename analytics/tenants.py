"""The tenants file (`tenants.toml`): who the SaaS tenants are and the evidence that names them.

Parsed with tomllib and validated field by field; every error names the file, line, tenant and field, and
says how to fix it. tomllib keeps no line numbers, so `_Lines` finds them by scanning the text.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from ingest.errors import ConfigError

DEFAULT_PRICE_PER_10K = 0.03  # USD, the published KMS price per 10,000 requests
ENV_VAR = "KEYTRAIL_TENANTS"
# In the lake's state folder: the tenants file the lake was last attributed with.
REMEMBERED = "tenants.json"
# The list fields of a tenant: what each item must look like, and the hint an error gives. An item that does not
# fit could never match what AWS writes (e.g. "arn:aws:iam:7777…", one colon short), so it is refused, not ignored.
_ACCOUNT = r"(\d{12}|[\d*?]*[*?][\d*?]*)"  # 12 digits, or a glob of digits
_OCTET = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
LIST_FIELDS: dict[str, tuple[re.Pattern[str], str]] = {
    "accounts": (re.compile(r"\d{12}"), 'a 12-digit AWS account id, e.g. "444455556666"'),
    "principals": (
        re.compile(
            rf"arn:aws[a-z-]*:(iam::{_ACCOUNT}:(root|(user|role)/\S+)|sts::{_ACCOUNT}:(assumed-role|federated-user)/\S+)"
        ),
        "an IAM ARN or glob that CloudTrail can write: arn:aws:iam::<12-digit account>:role/<name> (two colons "
        "before the account; also user/<name>, root, or sts::<account>:assumed-role/<role>/<session>), "
        'e.g. "arn:aws:iam::444455556666:role/acme-*"',
    ),
    "principal_ids": (
        re.compile(r"A(RO|ID)A[A-Z0-9]{16,}"),
        'an IAM role or user unique id (AROA… or AIDA… and 16+ capitals or digits), e.g. "AROAJ45Q7YFFAREXAMPLE"',
    ),
    "keys": (
        re.compile(
            rf"arn:aws[a-z-]*:kms:[a-z0-9*?-]+:{_ACCOUNT}:(key|alias)/\S+|alias/\S+|(mrk-)?[0-9a-f-]{{32,36}}"
            r"|hsm:cluster-[a-z0-9]+:\d+"
        ),
        'a key ARN, key id, alias ("alias/acme-data") or alias ARN (arn:aws:kms:<region>:<12-digit account>:key/<id>), '
        'or a CloudHSM key handle "hsm:<cluster id>:<handle>", e.g. "hsm:cluster-2kf8vwnq3xa:262207"',
    ),
    "hsm_users": (
        re.compile(r"(cluster-[a-z0-9]+/)?[^/\s]+"),
        'a CloudHSM crypto-user name, e.g. "acme_cu", or "<cluster id>/<name>" for the user of one cluster, '
        'e.g. "cluster-2kf8vwnq3xa/acme_cu"',
    ),
    "custom_key_stores": (re.compile(r"cks-\w+"), 'a custom key store id, e.g. "cks-1234567890abcdef0"'),
    # Network paths (docs/access.md): the provider's VPC ranges, and the peering or attachment ids it uses.
    "vpc_cidrs": (
        re.compile(rf"({_OCTET}\.){{3}}{_OCTET}/(3[0-2]|[12]?\d)|[0-9a-fA-F:]*:[0-9a-fA-F:]*/(12[0-8]|1[01]\d|\d?\d)"),
        'an IPv4 or IPv6 CIDR block of the provider\'s VPC, e.g. "10.8.0.0/16"',
    ),
    "peering_ids": (
        re.compile(r"pcx-[0-9a-f]{8,17}|tgw-attach-[0-9a-f]{8,17}"),
        'a VPC peering connection id (pcx-…) or Transit Gateway attachment id (tgw-attach-…), e.g. "pcx-1a2b3c4d"',
    ),
}
TENANT_FIELDS = ("id", "name", *LIST_FIELDS, "encryption_context", "active_from", "revoked_at")
SETTINGS_FIELDS = ("kms_price_per_10k_requests", "hsm_security_groups")
SECURITY_GROUP = re.compile(r"sg-[0-9a-f]{8,17}")
TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Tenant:
    """One SaaS tenant and the rules that attribute operations to it."""

    id: str
    name: str
    accounts: tuple[str, ...] = ()
    principals: tuple[str, ...] = ()
    principal_ids: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    encryption_context: tuple[tuple[str, str], ...] = ()
    hsm_users: tuple[str, ...] = ()
    custom_key_stores: tuple[str, ...] = ()
    vpc_cidrs: tuple[str, ...] = ()
    peering_ids: tuple[str, ...] = ()
    active_from: dt.datetime | None = None
    revoked_at: dt.datetime | None = None


@dataclass(frozen=True)
class Tenants:
    """The parsed tenants file: tenants in file order and the settings."""

    tenants: tuple[Tenant, ...] = ()
    price_per_10k_requests: float = DEFAULT_PRICE_PER_10K
    path: Path | None = None
    ids: frozenset[str] = field(default_factory=frozenset)
    origin: str = "none"  # how the file was chosen (resolve_path)
    # The CloudHSM clusters' security groups, besides those CreateCluster records in the lake name (docs/access.md).
    hsm_security_groups: tuple[str, ...] = ()


class _Lines:
    """Line numbers of `[[tenant]]` blocks and their fields, found by scanning the TOML text."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.blocks = [i for i, line in enumerate(self.lines) if re.match(r"\s*\[\[\s*tenant\s*\]\]", line)]
        self.settings = next((i for i, line in enumerate(self.lines) if re.match(r"\s*\[\s*settings\s*\]", line)), 0)

    def of(self, block: int | None, key: str | None = None) -> int:
        """1-based line of `key` in tenant block `block` (None: [settings]), else of the block header."""
        start = self.settings if block is None else self.blocks[block] if block < len(self.blocks) else 0
        if key is not None:
            for i in range(start + 1, len(self.lines)):
                line = self.lines[i]
                if re.match(rf"\s*\"?{re.escape(key)}\"?\s*[=.]|\s*\[\s*tenant\.{re.escape(key)}\s*\]", line):
                    return i + 1
                if re.match(r"\s*\[(?!\s*tenant\.)", line):
                    break
        return start + 1


def resolve_path(tenants: str | os.PathLike[str] | None, state_dir: Path | None = None) -> tuple[Path | None, str]:
    """The tenants file to use and why: the argument, else $KEYTRAIL_TENANTS, else the file the lake remembers
    (the last one `keytrail attribute` or the nightly job used), else ./tenants.toml if present, else none."""
    if tenants is not None:
        return Path(tenants), "--tenants"
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    remembered = remembered_tenants(state_dir) if state_dir else None
    if remembered:
        return remembered, "the file this lake was last attributed with"
    local = Path("tenants.toml")
    return (local, "./tenants.toml") if local.is_file() else (None, "none")


def remembered_tenants(state_dir: Path) -> Path | None:
    """The tenants file the lake was last attributed with (see `remember_tenants`), if any."""
    try:
        return Path(json.loads((state_dir / REMEMBERED).read_text(encoding="utf-8"))["path"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remember_tenants(state_dir: Path, path: str | None) -> None:
    """Note in the lake's state which tenants file attributed it, so later commands use the same one."""
    if path is None:
        return
    record = {"path": str(Path(path).resolve()), "remembered_at": dt.datetime.now(dt.UTC).isoformat()}
    state_dir.mkdir(parents=True, exist_ok=True)
    scratch = state_dir / f"{REMEMBERED}.tmp"
    scratch.write_text(json.dumps(record) + "\n", encoding="utf-8")
    scratch.replace(state_dir / REMEMBERED)


def load_tenants(tenants: str | os.PathLike[str] | None = None, state_dir: Path | None = None) -> Tenants:
    """Read and validate a tenants file (see `resolve_path`); no file means no tenants."""
    path, origin = resolve_path(tenants, state_dir)
    if path is None:
        return Tenants()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        msg = f"cannot read tenants file {path} ({origin}): {err.strerror}. Pass --tenants FILE or set ${ENV_VAR}."
        raise ConfigError(msg) from None
    return replace(parse_tenants(text, path), origin=origin)


def parse_tenants(text: str, path: Path | None = None) -> Tenants:
    """Validate the text of a tenants file; raises ConfigError naming file, line, tenant and field."""
    name = str(path or "tenants.toml")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{name}: not valid TOML: {err}") from None
    lines = _Lines(text)
    check = _Checker(name, lines)
    unknown = sorted(set(doc) - {"settings", "tenant"})
    if unknown:
        raise ConfigError(
            f"{name}: unknown section [{unknown[0]}]; a tenants file has [settings] and [[tenant]] blocks"
        )
    price = check.settings(doc.get("settings", {}))
    groups = check.security_groups(doc.get("settings", {}))
    blocks = doc.get("tenant", [])
    if not isinstance(blocks, list):
        raise ConfigError(f"{name}:{lines.of(None)}: write each tenant as a [[tenant]] block (two brackets)")
    tenants = tuple(check.tenant(i, block) for i, block in enumerate(blocks))
    seen: dict[str, int] = {}
    for i, tenant in enumerate(tenants):
        if tenant.id in seen:
            raise check.error(
                i, "id", f'duplicate id "{tenant.id}" (also tenant #{seen[tenant.id] + 1}); ids are unique'
            )
        seen[tenant.id] = i
    return Tenants(tenants, price, path, frozenset(seen), hsm_security_groups=groups)


class _Checker:
    """Field validators that raise ConfigError with the line of the offending field."""

    def __init__(self, name: str, lines: _Lines) -> None:
        self.name, self.lines = name, lines

    def error(self, block: int | None, key: str | None, message: str) -> ConfigError:
        where = "[settings]" if block is None else f"tenant #{block + 1}"
        return ConfigError(f"{self.name}:{self.lines.of(block, key)}: {where}: {key or 'block'}: {message}")

    def settings(self, raw: Any) -> float:
        if not isinstance(raw, dict):
            raise self.error(None, None, "[settings] must be a table")
        for key in raw:
            if key not in SETTINGS_FIELDS:
                raise self.error(None, key, f"unknown setting; known: {', '.join(SETTINGS_FIELDS)}")
        price = raw.get("kms_price_per_10k_requests", DEFAULT_PRICE_PER_10K)
        if isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
            raise self.error(None, "kms_price_per_10k_requests", "must be a number of USD >= 0, e.g. 0.03")
        return float(price)

    def security_groups(self, raw: dict[str, Any]) -> tuple[str, ...]:
        value = raw.get("hsm_security_groups", [])
        if not isinstance(value, list) or not all(isinstance(v, str) and SECURITY_GROUP.fullmatch(v) for v in value):
            raise self.error(
                None, "hsm_security_groups", 'must be a list of security group ids, e.g. ["sg-0123456789abcdef0"]'
            )
        return tuple(value)

    def tenant(self, i: int, raw: Any) -> Tenant:
        if not isinstance(raw, dict):
            raise self.error(i, None, "must be a table of fields")
        for key in raw:
            if key not in TENANT_FIELDS:
                raise self.error(i, key, f"unknown field; known fields: {', '.join(TENANT_FIELDS)}")
        tenant_id = raw.get("id")
        if not isinstance(tenant_id, str) or not TENANT_ID.fullmatch(tenant_id):
            raise self.error(i, "id", 'required: a short id of letters, digits, "_", "-" or ".", e.g. id = "acme"')
        display = raw.get("name", tenant_id)
        if not isinstance(display, str) or not display.strip():
            raise self.error(i, "name", 'must be a non-empty string, e.g. name = "Acme Analytics"')
        active_from, revoked_at = self.time(i, raw, "active_from"), self.time(i, raw, "revoked_at")
        if active_from and revoked_at and revoked_at <= active_from:
            raise self.error(i, "revoked_at", f"{revoked_at.isoformat()} is not after active_from")
        lists = {key: self.strings(i, raw, key) for key in LIST_FIELDS}
        return Tenant(
            id=tenant_id,
            name=display,
            encryption_context=self.context(i, raw),
            active_from=active_from,
            revoked_at=revoked_at,
            **lists,  # type: ignore[arg-type]
        )

    def strings(self, i: int, raw: dict[str, Any], key: str) -> tuple[str, ...]:
        pattern, hint = LIST_FIELDS[key]
        value = raw.get(key, [])
        if not isinstance(value, list):
            raise self.error(i, key, f'must be a list, e.g. {key} = ["…"]; each item {hint}')
        for item in value:
            if not isinstance(item, str):
                raise self.error(i, key, f'{item!r} is a TOML {type(item).__name__}, not a string: quote it, "{item}"')
            if not pattern.fullmatch(item):
                raise self.error(i, key, f"{item!r} is not {hint}")
        return tuple(value)

    def context(self, i: int, raw: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        """Pairs (key, value or glob); a key listing several values gives one pair each."""
        value = raw.get("encryption_context", {})
        lists = {k: v if isinstance(v, list) else [v] for k, v in value.items()} if isinstance(value, dict) else {}
        strings = all(v and all(isinstance(x, str) and x for x in v) for v in lists.values())
        if not isinstance(value, dict) or not strings:
            raise self.error(
                i,
                "encryption_context",
                'must be a table of strings or lists of strings (globs allowed), e.g. { tenant_id = "acme" } '
                'or { customer = ["nimbus", "nimbus-*"] }',
            )
        return tuple(sorted((k, x) for k, v in lists.items() for x in v))

    def time(self, i: int, raw: dict[str, Any], key: str) -> dt.datetime | None:
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.astimezone(dt.UTC)
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return dt.datetime.combine(value, dt.time(), dt.UTC)
        raise self.error(i, key, "must be a TOML date-time with a time zone, e.g. 2026-11-20T00:00:00Z (no quotes)")


def tenants_table(tenants: Tenants) -> pa.Table:
    """One row per tenant, for the `tenants` view."""
    ts = tenants.tenants
    strings = pa.list_(pa.string())
    return pa.table(
        {
            "tenant_id": pa.array([t.id for t in ts], pa.string()),
            "name": pa.array([t.name for t in ts], pa.string()),
            "accounts": pa.array([list(t.accounts) for t in ts], strings),
            "principals": pa.array([list(t.principals) for t in ts], strings),
            "principal_ids": pa.array([list(t.principal_ids) for t in ts], strings),
            "keys": pa.array([list(t.keys) for t in ts], strings),
            "encryption_context": pa.array([_context_lists(t) for t in ts], pa.map_(pa.string(), strings)),
            "hsm_users": pa.array([list(t.hsm_users) for t in ts], strings),
            "custom_key_stores": pa.array([list(t.custom_key_stores) for t in ts], strings),
            "vpc_cidrs": pa.array([list(t.vpc_cidrs) for t in ts], strings),
            "peering_ids": pa.array([list(t.peering_ids) for t in ts], strings),
            "active_from": pa.array([t.active_from for t in ts], TS),
            "revoked_at": pa.array([t.revoked_at for t in ts], TS),
            "position": pa.array(range(len(ts)), pa.int32()),
        }
    )


def _context_lists(tenant: Tenant) -> list[tuple[str, list[str]]]:
    """A tenant's context pairs as key → its values (the `tenants` view's map)."""
    keys = dict.fromkeys(k for k, _ in tenant.encryption_context)
    return [(k, [v for key, v in tenant.encryption_context if key == k]) for k in keys]


def rules_table(tenants: Tenants) -> pa.Table:
    """One row per rule (tenant, kind, value): the long form the attribution maps are built from."""
    rows: list[tuple[str, str, str, int]] = []
    for pos, t in enumerate(tenants.tenants):
        rows += [(t.id, "account", v, pos) for v in t.accounts]
        rows += [(t.id, "principal", v, pos) for v in t.principals]
        rows += [(t.id, "principal_id", v, pos) for v in t.principal_ids]
        rows += [(t.id, "key", v, pos) for v in t.keys]
        rows += [(t.id, "context", f"{k}={v}", pos) for k, v in t.encryption_context]
        rows += [(t.id, "hsm_user", v, pos) for v in t.hsm_users]
        rows += [(t.id, "custom_key_store", v, pos) for v in t.custom_key_stores]
    names = ["tenant_id", "kind", "value", "position"]
    types = [pa.string(), pa.string(), pa.string(), pa.int32()]
    return pa.table([pa.array([r[c] for r in rows], t) for c, t in enumerate(types)], names=names)


def context_keys(tenants: Tenants) -> list[str]:
    """The encryption-context keys any tenant rule uses, sorted (the order decides between two matching keys)."""
    return sorted({k for t in tenants.tenants for k, _ in t.encryption_context})
