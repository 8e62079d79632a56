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

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

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


def to_spark(sql: str, macros: Mapping[str, Macro]) -> str:
    """DuckDB `sql` as Spark SQL, with `macros` inlined."""
    return spark_tree(sql, macros).sql(dialect="spark")


def spark_tree(sql: str, macros: Mapping[str, Macro]) -> exp.Expr:
    """The parsed query with macros inlined and the Spark rewrites applied (still a sqlglot tree)."""
    try:
        tree = sqlglot.parse_one(sql, read=KeytrailDuckDB)
    except sqlglot.errors.ParseError as err:
        raise TranslationError(f"sqlglot cannot parse the query as DuckDB: {err}") from None
    tree = inline_macros(tree, macros)
    tree = _rewrite(tree, _asof)
    for rewrite in (_glob, _full_match, _timestamps, _tuple_structs, _string_indexes, _any_value, _sorted_lists):
        tree = _rewrite(tree, rewrite)
    return tree


def _rewrite(tree: exp.Expr, rewrite: Callable[[exp.Expr], exp.Expr]) -> exp.Expr:
    """Apply `rewrite` to every node, the children of a rewritten node included."""
    for node in list(tree.walk()):
        new = rewrite(node)
        if new is not node:
            if node is tree:
                tree = new
            else:
                node.replace(new)
    return tree


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
    """`list(x ORDER BY x)` as a sorted Spark array (sqlglot would drop the ORDER BY)."""
    if not isinstance(node, exp.ArrayAgg) or not isinstance(node.this, exp.Order):
        return node
    order = node.this
    distinct = isinstance(order.this, exp.Distinct)
    value = order.this.expressions[0] if distinct else order.this
    (by,) = order.expressions
    if by.this != value:
        raise TranslationError(f"list() ordered by another expression: {node.sql(dialect='duckdb')}")
    collected = exp.Anonymous(this="collect_set" if distinct else "collect_list", expressions=[value])
    ordered = exp.Anonymous(this="array_sort", expressions=[collected])
    if by.args.get("desc"):
        ordered = exp.Anonymous(this="reverse", expressions=[ordered])
    # DuckDB's list() of no rows is NULL, Spark's collect_*() an empty array (a scalar subquery that matches nothing)
    return exp.Case(
        ifs=[exp.If(this=exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(0)), true=ordered)]
    )
