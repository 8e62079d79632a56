"""The analytics `.sql` files (DuckDB) as Spark SQL: the one source of truth, translated by sqlglot.

`to_spark(sql, macros)` parses a query as DuckDB, inlines the DuckDB macros it calls (their definitions are read
from analytics/sql/macros.sql and the two connect() makes from the tenants file, so the macros stay written once),
applies the few rewrites below where sqlglot's DuckDB → Spark output is not what DuckDB computes, and writes Spark
SQL. What Spark cannot say in SQL at all (`UNION ALL BY NAME`) is resolved against the live session by
analytics/spark/engine.py. No pyspark here: translating needs no JVM.

The rewrites, each for a DuckDB construct sqlglot passes through or maps wrongly:
- `a GLOB p`: Spark has no GLOB; `a RLIKE <p as an anchored regex>` (`*` any run, `?` one character,
  `[...]`/`[!...]` classes, everything else literal), for literal and column patterns alike.
- `regexp_full_match(a, r)`: `a RLIKE '^(?:r)$'`.
- `len(list)`: Spark `size(list)` (see KeytrailDuckDB).
- `make_timestamptz(us)`, `epoch_us(ts)`: `timestamp_micros(us)`, `unix_micros(ts)`.
- `l ASOF LEFT JOIN r ON … AND r.t >= l.t`: Spark has no ASOF join; a LEFT JOIN on the same condition that
  keeps, per left row (numbered first), the match with the smallest `r.t` (QUALIFY row_number() … = 1).
- `arg_min(x, (a, b))`: the tuple becomes `struct(a, b)` (Spark orders structs field by field, as DuckDB tuples).
- `any_value(x)` (DuckDB skips NULLs; sqlglot writes `any_value(x) IGNORE NULLS`, which Spark cannot parse
  before FILTER): `any_value(x, true)`.
- `list(x ORDER BY x)`, `list(DISTINCT x ORDER BY x)` (sqlglot drops the order): `array_sort(collect_list(x))`,
  `array_sort(collect_set(x))` (descending: `reverse(…)`), NULL over no rows as in DuckDB; ordering by another
  expression is refused, not dropped. (Spark's collect_list skips NULL elements; the SQL files list no NULLs.)
- `w[i]`, `w[i:]` on the words of a `string_split` inside a list lambda: DuckDB indexes the string's characters;
  Spark `substring(w, i, 1)`, `substring(w, i)`.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB

from analytics.queries import SQL_DIR
from ingest.errors import KeytrailError

MACRO = re.compile(r"CREATE OR REPLACE MACRO (\w+)\(([^)]*)\) AS\s+(TABLE\s)?(.*?);\s*(?=CREATE|$)", re.S)


class KeytrailDuckDB(DuckDB):
    """DuckDB as the analytics SQL writes it: `len()` is only ever applied to lists there (`length()` to strings),
    so it reads as a list's size (sqlglot takes it for a string length, which Spark would refuse on a list)."""

    class Parser(DuckDB.Parser):  # type: ignore[misc,valid-type]
        FUNCTIONS = {**DuckDB.Parser.FUNCTIONS, "LEN": exp.ArraySize.from_arg_list}


class TranslationError(KeytrailError):
    """A query or macro that the Spark translation cannot express."""

    exit_code = 2


@dataclass(frozen=True)
class Macro:
    """A DuckDB scalar macro: its parameters and body (a DuckDB expression)."""

    params: tuple[str, ...]
    body: exp.Expr


def parse_macros(text: str) -> dict[str, Macro]:
    """The scalar macros of a DuckDB script of `CREATE OR REPLACE MACRO name(a, b) AS expr;` (table macros are
    skipped: no stored result reads them)."""
    without_comments = re.sub(r"--[^\n]*", "", text)
    macros = {}
    for name, params, table, body in MACRO.findall(without_comments):
        if not table:
            args = tuple(p.strip() for p in params.split(",") if p.strip())
            macros[name.lower()] = Macro(args, sqlglot.parse_one(body, read=KeytrailDuckDB))
    return macros


@functools.cache
def shared_macros() -> dict[str, Macro]:
    """The macros of analytics/sql/macros.sql."""
    return parse_macros((SQL_DIR / "macros.sql").read_text(encoding="utf-8"))


def macro(name: str, params: tuple[str, ...], body_sql: str) -> dict[str, Macro]:
    """One macro from its DuckDB body (those connect() builds from the tenants file)."""
    return {name: Macro(params, sqlglot.parse_one(body_sql, read=KeytrailDuckDB))}


def to_spark(sql: str, macros: Mapping[str, Macro], params: Mapping[str, Any] | None = None) -> str:
    """DuckDB `sql` as Spark SQL, with `macros` inlined and the `$name` parameters bound to `params`."""
    return spark_tree(sql, macros, params).sql(dialect="spark")


def spark_tree(sql: str, macros: Mapping[str, Macro], params: Mapping[str, Any] | None = None) -> exp.Expr:
    """The parsed query with parameters bound, macros inlined and the Spark rewrites applied (a sqlglot tree)."""
    try:
        tree = sqlglot.parse_one(sql, read=KeytrailDuckDB)
    except sqlglot.errors.ParseError as err:
        raise TranslationError(f"sqlglot cannot parse the query as DuckDB: {err}") from None
    tree = bind_params(tree, params or {})
    tree = inline_macros(tree, macros)
    tree = _rewrite(tree, _asof)
    for rewrite in DETECTOR_REWRITES:
        tree = _rewrite(tree, rewrite)
    for rewrite in (
        _glob,
        _full_match,
        _timestamps,
        _arg_min_n,
        _tuple_structs,
        _string_indexes,
        _slices,
        _any_value,
        _sorted_lists,
    ):
        tree = _rewrite(tree, rewrite)
    return tree


def _rewrite(tree: exp.Expr, rewrite: Callable[[exp.Expr], exp.Expr]) -> exp.Expr:
    """Apply `rewrite` to every node, children before their parents (a parent's rewrite sees them rewritten)."""
    for node in reversed(list(tree.walk())):
        new = rewrite(node)
        if new is not node:
            if node is tree:
                tree = new
            else:
                node.replace(new)
    return tree


def bind_params(tree: exp.Expr, params: Mapping[str, Any]) -> exp.Expr:
    """Every `$name` placeholder replaced by the value of `params[name]` as a typed literal (DuckDB binds
    parameters as values: Spark SQL has no named parameters with list or timestamp values)."""
    for node in list(tree.find_all(exp.Placeholder)):
        if node.name not in params:
            raise TranslationError(f"the query reads ${node.name}, which no setting gives")
        value = sql_value(params[node.name])
        if node is tree:
            return value
        node.replace(value)
    return tree


def sql_value(value: Any) -> exp.Expr:
    """A Python setting as a typed DuckDB literal: floats as DOUBLE (as DuckDB binds them, not DECIMAL), lists of
    strings as VARCHAR[] (an empty one too), datetimes as TIMESTAMPTZ in UTC."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        return exp.Literal.number(value)
    if isinstance(value, float):
        return exp.cast(exp.Literal.number(repr(value)), "DOUBLE")
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, dt.datetime):
        utc = value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
        return exp.cast(exp.Literal.string(utc), exp.DataType.build("TIMESTAMPTZ", dialect="duckdb"))
    if isinstance(value, list | tuple):
        items = exp.Array(expressions=[sql_value(v) for v in value])
        return exp.cast(items, "VARCHAR[]", dialect="duckdb") if all(isinstance(v, str) for v in value) else items
    raise TranslationError(f"a parameter of type {type(value).__name__} has no SQL literal: {value!r}")


def inline_macros(tree: exp.Expr, macros: Mapping[str, Macro]) -> exp.Expr:
    """Replace every call of a macro by its body with the arguments substituted (repeatedly: macros call macros)."""
    for _ in range(20):
        calls = [c for c in tree.find_all(exp.Anonymous) if c.name.lower() in macros]
        if not calls:
            return tree
        for call in calls:
            expanded = _expand(macros[call.name.lower()], call.expressions, call.name)
            if call is tree:
                return inline_macros(expanded, macros)
            call.replace(expanded)
    raise TranslationError("macros nest more than 20 deep (a macro calling itself?)")


def _expand(definition: Macro, args: list[exp.Expr], name: str) -> exp.Expr:
    if len(args) != len(definition.params):
        raise TranslationError(f"macro {name} takes {len(definition.params)} argument(s), got {len(args)}")
    bound = dict(zip(definition.params, args, strict=True))
    body = definition.body.copy()
    for column in list(body.find_all(exp.Column)):
        if not column.table and column.name in bound:
            replacement = exp.Paren(this=bound[column.name].copy())
            if column is body:
                return replacement
            column.replace(replacement)
    return exp.Paren(this=body)


def glob_regex(pattern: exp.Expr) -> exp.Expr:
    """A Spark expression turning a GLOB pattern into an anchored Java regex."""
    if isinstance(pattern, exp.Literal) and pattern.is_string:
        return exp.Literal.string(_glob_to_regex(pattern.this))
    escaped = exp.Anonymous(
        this="regexp_replace",
        expressions=[pattern, exp.Literal.string(r"([.+^${}()|\\])"), exp.Literal.string(r"\\$1")],
    )
    steps = ((r"\*", ".*"), (r"\?", "."), (r"\[!", "[^"))
    for find, replace in steps:
        escaped = exp.Anonymous(
            this="regexp_replace", expressions=[escaped, exp.Literal.string(find), exp.Literal.string(replace)]
        )
    return exp.DPipe(
        this=exp.DPipe(this=exp.Literal.string("^"), expression=escaped), expression=exp.Literal.string("$")
    )


def _glob_to_regex(glob: str) -> str:
    out = []
    for part in re.split(r"(\[!?[^\]]*\]|\*|\?)", glob):
        if part == "*":
            out.append(".*")
        elif part == "?":
            out.append(".")
        elif part.startswith("[") and part.endswith("]"):
            out.append("[^" + part[2:] if part.startswith("[!") else part)
        else:
            out.append(re.escape(part))
    return "^" + "".join(out) + "$"


def _glob(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.Glob):
        return exp.RegexpLike(this=node.this, expression=exp.Paren(this=glob_regex(node.expression)))
    return node


def _full_match(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.Anonymous) and node.name.lower() == "regexp_full_match":
        value, pattern = node.expressions
    elif isinstance(node, exp.RegexpFullMatch):
        value, pattern = node.this, node.expression
    else:
        return node
    anchored = exp.DPipe(
        this=exp.DPipe(this=exp.Literal.string("^(?:"), expression=pattern), expression=exp.Literal.string(")$")
    )
    return exp.RegexpLike(this=value, expression=exp.Paren(this=anchored))


def _timestamps(node: exp.Expr) -> exp.Expr:
    name = node.name.lower() if isinstance(node, exp.Anonymous) else ""
    if name == "make_timestamptz" and len(node.expressions) == 1:
        return exp.Anonymous(this="timestamp_micros", expressions=node.expressions)
    if name == "epoch_us":
        return exp.Anonymous(this="unix_micros", expressions=node.expressions)
    return node


def _tuple_structs(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.ArgMin | exp.ArgMax) and isinstance(node.expression, exp.Tuple):
        node.set("expression", exp.Struct(expressions=node.expression.expressions))
    return node


def _string_indexes(node: exp.Expr) -> exp.Expr:
    """Inside `list_transform(string_split(…), lambda w: …)`, `w[i]` and `w[i:]` index a string's characters."""
    if not isinstance(node, exp.Bracket) or not isinstance(node.this, exp.Identifier | exp.Column):
        return node
    lam = node.find_ancestor(exp.Lambda)
    if lam is None or node.this.name not in {v.name for v in lam.expressions}:
        return node
    transform = lam.parent
    if not isinstance(transform, exp.Transform) or not isinstance(transform.this, exp.Split | exp.StringToArray):
        return node
    (index,) = node.expressions
    if isinstance(index, exp.Slice):  # sqlglot keeps a slice's bounds as written (1-based)
        return exp.Substring(this=node.this, start=index.this)
    if not isinstance(index, exp.Literal):
        raise TranslationError(f"a string index that is not a constant: {node.sql(dialect='duckdb')}")
    # sqlglot stores an index 0-based
    return exp.Substring(this=node.this, start=exp.Literal.number(int(index.this) + 1), length=exp.Literal.number(1))


ASOF_ROW = "__asof_row"


def _asof(node: exp.Expr) -> exp.Expr:
    """`FROM l ASOF LEFT JOIN r ON eq AND r.t >= l.t` → a LEFT JOIN keeping the first match by r.t per left row."""
    if not isinstance(node, exp.Select):
        return node
    joins = [j for j in node.args.get("joins") or [] if j.args.get("method") == "ASOF"]
    if not joins:
        return node
    (join,) = joins
    left = node.args["from_"].this
    if not isinstance(left, exp.Table) or join.args.get("side") != "LEFT":
        raise TranslationError("only `FROM table ASOF LEFT JOIN table` translates to Spark")
    alias = left.alias_or_name
    order = _asof_order(join.args["on"])
    numbered = sqlglot.parse_one(f"(SELECT *, monotonically_increasing_id() AS {ASOF_ROW} FROM {left.name})")
    left.replace(exp.Subquery(this=numbered.this, alias=exp.TableAlias(this=exp.to_identifier(alias))))
    join.set("method", None)
    window = f"row_number() OVER (PARTITION BY {alias}.{ASOF_ROW} ORDER BY {order.sql()} NULLS LAST) = 1"
    return node.qualify(window, dialect="spark", copy=False)


def _asof_order(condition: exp.Expr) -> exp.Expr:
    """The right side's column of the ASOF inequality `r.t >= l.t` (the match to keep has the smallest)."""
    for cmp in condition.find_all(exp.GTE, exp.GT):
        right: exp.Expr = cmp.this
        return right
    raise TranslationError("an ASOF join translates to Spark only with a `right.t >= left.t` condition")


def _any_value(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.IgnoreNulls) and isinstance(node.this, exp.AnyValue):
        return exp.Anonymous(this="any_value", expressions=[node.this.this, exp.true()])
    return node


def _sorted_lists(node: exp.Expr) -> exp.Expr:
    """`list(x ORDER BY x)` as a sorted Spark array (sqlglot would drop the ORDER BY); `list(x ORDER BY a, b)`
    as the x of the sorted structs (a, b, x)."""
    if not isinstance(node, exp.ArrayAgg) or not isinstance(node.this, exp.Order):
        return node
    order = node.this
    distinct = isinstance(order.this, exp.Distinct)
    value = order.this.expressions[0] if distinct else order.this
    if len(order.expressions) > 1 or order.expressions[0].this != value:
        return _none_if_empty(_sorted_by(node, value, order.expressions, distinct))
    (by,) = order.expressions
    collected = exp.Anonymous(this="collect_set" if distinct else "collect_list", expressions=[value])
    ordered = exp.Anonymous(this="array_sort", expressions=[collected])
    if by.args.get("desc"):
        ordered = exp.Anonymous(this="reverse", expressions=[ordered])
    return _none_if_empty(ordered)


def _none_if_empty(ordered: exp.Expr) -> exp.Expr:
    # DuckDB's list() of no rows is NULL, Spark's collect_*() an empty array (a scalar subquery that matches nothing)
    return exp.Case(
        ifs=[exp.If(this=exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(0)), true=ordered)]
    )


def _sorted_by(node: exp.Expr, value: exp.Expr, keys: list[exp.Expr], distinct: bool) -> exp.Expr:
    """The values of `value` in the ascending order of `keys` (ties by the value itself, nulls last as DuckDB)."""
    if distinct or any(key.args.get("desc") for key in keys):
        raise TranslationError(f"list(DISTINCT …) or a descending order by another expression: {node.sql('duckdb')}")
    return sorted_values(value, [key.this for key in keys])


def sorted_values(value: exp.Expr, keys: list[exp.Expr], count: exp.Expr | None = None) -> exp.Expr:
    """`transform(array_sort(collect_list(struct(k0, k1, …, v))), e -> e.v)`, the first `count` only if given:
    Spark compares structs field by field, NULL first, so each key is preceded by whether it is NULL."""
    fields: list[exp.Expr] = []
    for i, key in enumerate(keys):
        fields.append(exp.alias_(exp.Is(this=key.copy(), expression=exp.Null()), f"n{i}"))
        fields.append(exp.alias_(key.copy(), f"k{i}"))
    fields.append(exp.alias_(value.copy(), "v"))
    rows: exp.Expr = exp.Anonymous(
        this="array_sort",
        expressions=[exp.Anonymous(this="collect_list", expressions=[exp.Struct(expressions=fields)])],
    )
    if count is not None:
        rows = exp.Anonymous(this="slice", expressions=[rows, exp.Literal.number(1), count.copy()])
    pick = exp.Lambda(this=exp.Dot(this=exp.to_identifier("e"), expression=exp.to_identifier("v")), expressions=["e"])
    return exp.Transform(this=rows, expression=pick)


def _arg_min_n(node: exp.Expr) -> exp.Expr:
    """`arg_min(x, key, n)`: the x of the n smallest keys, in the order of their keys."""
    if not isinstance(node, exp.ArgMin) or node.args.get("count") is None:
        return node
    key = node.expression
    keys = list(key.expressions) if isinstance(key, exp.Tuple | exp.Struct) else [key]
    return sorted_values(node.this, keys, node.args["count"])


def _slices(node: exp.Expr) -> exp.Expr:
    """`l[a:b]` (1-based, both ends included; `l[a:]` to the end) as Spark `slice(l, a, b - a + 1)`."""
    if (
        not isinstance(node, exp.Bracket)
        or len(node.expressions) != 1
        or not isinstance(node.expressions[0], exp.Slice)
    ):
        return node
    bounds = node.expressions[0]
    start, end = bounds.this or exp.Literal.number(1), bounds.expression
    if end is None:
        length: exp.Expr = exp.Anonymous(this="size", expressions=[node.this.copy()])
    else:
        length = exp.Add(this=exp.Sub(this=end.copy(), expression=start.copy()), expression=exp.Literal.number(1))
    return exp.Anonymous(this="slice", expressions=[node.this.copy(), start.copy(), exp.Paren(this=length)])


INTERVAL_UNITS = {"to_days": "DAY", "to_hours": "HOUR", "to_minutes": "MINUTE"}


def _intervals(node: exp.Expr) -> exp.Expr:
    """`to_days(n)`, `to_hours(n)`, `to_minutes(n)`: `n * INTERVAL '1' DAY` (HOUR, MINUTE)."""
    name = type(node).__name__.lower().replace("to", "to_", 1) if isinstance(node, exp.Func) else ""
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
    if name not in INTERVAL_UNITS:
        return node
    (count,) = node.expressions if isinstance(node, exp.Anonymous) else [node.this]
    unit = exp.Interval(this=exp.Literal.string("1"), unit=exp.var(INTERVAL_UNITS[name]))
    return exp.Paren(this=exp.Mul(this=exp.Paren(this=count.copy()), expression=unit))


def _epoch_of_difference(node: exp.Expr) -> exp.Expr:
    """`epoch(a - b)` of two timestamps: the seconds between them, `(unix_micros(a) - unix_micros(b)) / 1e6`."""
    if not isinstance(node, exp.TimeToUnix) or not isinstance(node.this, exp.Sub):
        return node
    a, b = (exp.Anonymous(this="unix_micros", expressions=[x.copy()]) for x in (node.this.this, node.this.expression))
    return exp.Paren(
        this=exp.Div(this=exp.Paren(this=exp.Sub(this=a, expression=b)), expression=exp.Literal.number("1e6"))
    )


def _utc(node: exp.Expr) -> exp.Expr:
    """`timezone('UTC', ts)`: the session runs in UTC (ingest/spark.py), so the timestamp itself."""
    if isinstance(node, exp.Anonymous) and node.name.lower() == "timezone":
        zone, value = node.expressions
        if zone.name != "UTC":
            raise TranslationError(f"timezone() to a zone other than UTC: {node.sql('duckdb')}")
        in_utc: exp.Expr = value.copy()
        return in_utc
    return node


def _hashes(node: exp.Expr) -> exp.Expr:
    """DuckDB's 64-bit `hash(a, b, …)` (a grouping key only: never stored or shown) as Spark's 64-bit
    `xxhash64(a, b, …, a IS NULL, b IS NULL, …)`: Spark's hash skips NULL arguments, the flags keep
    (x, NULL) and (NULL, x) apart."""
    if not isinstance(node, exp.Anonymous) or node.name.lower() != "hash":
        return node
    flags = [exp.Is(this=exp.Paren(this=arg.copy()), expression=exp.Null()) for arg in node.expressions]
    return exp.Anonymous(this="xxhash64", expressions=[*node.expressions, *flags])


def _materialized(node: exp.Expr) -> exp.Expr:
    """`WITH x AS MATERIALIZED (…)`: a planner hint Spark has no syntax for."""
    if isinstance(node, exp.CTE) and node.args.get("materialized") is not None:
        node.set("materialized", None)
    return node


def _series(node: exp.Expr) -> exp.Expr:
    """`generate_series(a, b, step)` (empty when a > b) as Spark `sequence`, which fails on a > b: NULL then, and
    exploding NULL gives no rows."""
    if not isinstance(node, exp.GenerateSeries) or node.args.get("is_end_exclusive"):
        return node
    empty = exp.GT(this=node.args["start"].copy(), expression=node.args["end"].copy())
    return exp.If(this=empty, true=exp.Null(), false=node.copy()) if not isinstance(node.parent, exp.If) else node


def _table_functions(node: exp.Expr) -> exp.Expr:
    """Table functions in FROM: `range(a, b) t(k)` as Spark's `range(a, b) AS t(k)`; `unnest(l) u(x)` and
    `LATERAL (SELECT unnest(l) AS x) g` as `LATERAL explode(l) AS u(x)`."""
    if (
        isinstance(node, exp.Table)
        and isinstance(node.this, exp.GenerateSeries)
        and node.this.args.get("is_end_exclusive")
    ):
        series = node.this
        call = exp.Anonymous(this="range", expressions=[series.args["start"].copy(), series.args["end"].copy()])
        return exp.Table(this=call, alias=node.args["alias"].copy())
    if isinstance(node, exp.Unnest) and isinstance(node.parent, exp.Join | exp.From):
        (values,) = node.expressions
        return exp.Lateral(this=exp.Explode(this=values.copy()), alias=node.args["alias"].copy())
    if isinstance(node, exp.Lateral) and isinstance(node.this, exp.Subquery):
        (column,) = node.this.this.expressions
        if not isinstance(column, exp.Alias) or not isinstance(column.this, exp.Explode):
            raise TranslationError(f"a LATERAL subquery other than one unnest(): {node.sql('duckdb')}")
        alias = exp.TableAlias(this=node.args["alias"].this.copy(), columns=[column.args["alias"].copy()])
        return exp.Lateral(this=column.this.copy(), alias=alias)
    return node


def _format(node: exp.Expr) -> exp.Expr:
    """`format('… {} … {:02d}', a, b)` as Spark `format_string('… %s … %02d', a, b)`, NULL when an argument is
    NULL (as DuckDB's); `printf` is Spark's `format_string` with the same NULL rule."""
    if isinstance(node, exp.Format):
        template, args, braces = node.this, node.expressions, True
    elif isinstance(node, exp.Anonymous) and node.name.lower() == "printf":
        (template, *args), braces = node.expressions, False
    else:
        return node
    text = _constant_text(template, node)
    if braces:
        text = re.sub(r"\{(:[^}]*)?\}", lambda m: "%" + (m[1][1:] if m[1] else "s"), text.replace("%", "%%"))
    call = exp.Anonymous(this="format_string", expressions=[exp.Literal.string(text), *(a.copy() for a in args)])
    nulls: list[exp.Expr] = [exp.Is(this=exp.Paren(this=a.copy()), expression=exp.Null()) for a in args]
    if not nulls:
        return call
    any_null = functools.reduce(lambda x, y: exp.Or(this=x, expression=y), nulls)
    return exp.If(this=any_null, true=exp.Null(), false=call)


def _constant_text(template: exp.Expr, node: exp.Expr) -> str:
    """A format string written as a literal or as `'…' || '…'`."""
    if isinstance(template, exp.Literal) and template.is_string:
        return str(template.this)
    if isinstance(template, exp.DPipe):
        return _constant_text(template.this, node) + _constant_text(template.expression, node)
    raise TranslationError(f"a format string that is not a constant: {node.sql('duckdb')}")


def _regexp_groups(node: exp.Expr) -> exp.Expr:
    """`regexp_extract(s, r)` is group 0 in DuckDB, group 1 in Spark: name the group."""
    if isinstance(node, exp.RegexpExtract) and node.args.get("group") is None:
        node.set("group", exp.Literal.number(0))
    return node


def _list_median(values: str) -> str:
    """DuckDB SQL of the median of a list expression (the mean of its two middle values), NULL when empty."""
    s = f"list_sort({values})"
    return f"CASE WHEN len({values}) > 0 THEN ({s}[(len({values}) + 1) // 2] + {s}[len({values}) // 2 + 1]) / 2.0 END"


def _mad(node: exp.Expr) -> exp.Expr:
    """`mad(v) [FILTER (…)]` (median absolute deviation; Spark has none) computed from the list of the values: the
    median of `abs(v - median(v))`, both medians interpolated as DuckDB's."""
    call = node.this if isinstance(node, exp.Filter) else node
    if not isinstance(call, exp.Anonymous) or call.name.lower() != "mad" or isinstance(node.parent, exp.Filter):
        return node  # (a filtered call is rewritten with its filter)
    (value,) = call.expressions
    where = node.expression.this.sql("duckdb") if isinstance(node, exp.Filter) else "true"
    values = f"list({value.sql('duckdb')}) FILTER (WHERE {where})"
    deviations = f"list_transform({values}, lambda x: abs(x - {_list_median(values)}))"
    return sqlglot.parse_one(_list_median(deviations), read=KeytrailDuckDB)


def _nested_unnest(node: exp.Expr) -> exp.Expr:
    """`SELECT f(unnest(l)) FROM t` (Spark refuses a generator inside an expression): `… f(_unnest._value) FROM t,
    LATERAL explode(l) AS _unnest(_value)`, once per SELECT."""
    if not isinstance(node, exp.Explode) or isinstance(node.parent, exp.Alias | exp.Select | exp.Lateral):
        return node
    select = node.find_ancestor(exp.Select)
    if select is None or select.args.get("joins") or any(isinstance(e, exp.Explode) for e in select.expressions):
        raise TranslationError(f"unnest() inside an expression of this query: {node.sql('duckdb')}")
    lateral = exp.Lateral(
        this=exp.Explode(this=node.this.copy()), alias=exp.TableAlias(this="_unnest", columns=["_value"])
    )
    select.append("joins", exp.Join(this=lateral))
    return exp.column("_value", table="_unnest")


def _quantiles(node: exp.Expr) -> exp.Expr:
    """`quantile_cont(v, q)`: Spark's exact, interpolating `percentile(v, q)`."""
    if isinstance(node, exp.PercentileCont) and node.expression is not None:
        return exp.Anonymous(this="percentile", expressions=[node.this.copy(), node.expression.copy()])
    return node


DETECTOR_REWRITES: tuple[Callable[[exp.Expr], exp.Expr], ...] = (
    _quantiles,
    _mad,
    _nested_unnest,
    _intervals,
    _epoch_of_difference,
    _utc,
    _hashes,
    _materialized,
    _series,
    _table_functions,
    _format,
    _regexp_groups,
)
