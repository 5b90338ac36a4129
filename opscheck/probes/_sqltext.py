"""Other sessions' SQL, fit for a report: literals masked, utility statements by their tag only.

``pg_stat_activity`` holds the text of every session's query as it was sent (an e-mail address
in a WHERE clause); ``pg_stat_statements`` replaces the constants of SELECT, INSERT, UPDATE,
DELETE and MERGE with ``$1`` but keeps utility statements as they were sent (``ALTER ROLE app
PASSWORD '...'``). Whatever a check shows of either goes through ``shown``:

- a query (SELECT, INSERT, UPDATE, DELETE, MERGE, WITH, VALUES, TABLE) shows its text with every
  string (``'...'``, ``E'...'``, ``$tag$...$tag$``, ``B'...'``, ``X'...'``, ``U&'...'``) and every
  number as ``?``, and without its comments (sqlcommenter puts ``key='value'`` pairs there);
- any other statement shows its command tag only (``ALTER ROLE``, ``COPY``, ``SET``): its text
  may hold a password or a file's rows, and it has no plan worth a look;
- with ``text=False`` (a target's ``query_text = false``) every statement shows its tag only.

A tokenizer, not a parser: it knows where literals, quoted names and comments begin and end,
which is all that masking needs. A literal cut off by the end of the text (PostgreSQL keeps
``track_activity_query_size`` bytes) is masked to the end.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<comment>--[^\n]*)
    | (?P<block>/\*)
    | (?P<string>
          [Ee]'(?:[^'\\]|\\.|'')*(?:'|\Z)                   # E'...': backslash escapes
        | (?:[BbXxNn]|[Uu]&)?'(?:[^']|'')*(?:'|\Z)          # '...', B'...', X'...', U&'...'
        | \$\$.*?(?:\$\$|\Z)                                # $$...$$
        | \$(?P<tag>[^\W\d]\w*)\$.*?(?:\$(?P=tag)\$|\Z)     # $tag$...$tag$
      )
    | (?P<number>0[xXoObB][\dA-Fa-f_]+|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[Ee][+-]?\d+)?)
    | (?P<param>\$\d+)                                      # $1: pg_stat_statements' own mask
    | (?P<name>(?:[Uu]&)?"(?:[^"]|"")*(?:"|\Z))             # a quoted name: shown
    | (?P<word>[^\W\d][\w$]*)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_BLOCK = re.compile(r"/\*|\*/")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Statements whose text is a query, shown masked; every other one is a utility statement.
_QUERIES = _words("SELECT INSERT UPDATE DELETE MERGE WITH VALUES TABLE")
# The words a statement can begin with (PostgreSQL's "SQL Commands"): a first word not among
# them may be anything a client sent (pg_stat_activity keeps failed statements too).
_COMMANDS = _QUERIES | _words(
    "ABORT ALTER ANALYZE BEGIN CALL CHECKPOINT CLOSE CLUSTER COMMENT COMMIT COPY CREATE "
    "DEALLOCATE DECLARE DISCARD DO DROP END EXECUTE EXPLAIN FETCH GRANT IMPORT LISTEN LOAD LOCK "
    "MOVE NOTIFY PREPARE REASSIGN REFRESH REINDEX RELEASE RESET REVOKE ROLLBACK SAVEPOINT "
    "SECURITY SET SHOW START TRUNCATE UNLISTEN VACUUM"
)
# CREATE, ALTER and DROP name the kind of object after them (CREATE OR REPLACE FUNCTION).
_DEFINE = frozenset(("CREATE", "ALTER", "DROP"))
_MODIFIERS = _words("OR REPLACE TEMP TEMPORARY UNLOGGED UNIQUE MATERIALIZED FOREIGN")
_OBJECTS = _words(
    "DATABASE DOMAIN EXTENSION FUNCTION GROUP INDEX POLICY PROCEDURE PUBLICATION ROLE SCHEMA "
    "SEQUENCE SERVER SUBSCRIPTION SYSTEM TABLE TABLESPACE TRIGGER TYPE USER VIEW"
)
HIDDEN = "(statement not shown)"  # a first word that begins no statement


def _tokens(sql: str) -> Iterator[tuple[str, str]]:
    """(kind, text) of each token; a block comment is one token, nested ones included."""
    pos = 0
    while pos < len(sql):
        match = _TOKEN.match(sql, pos)
        assert match is not None and match.lastgroup is not None  # "other" takes any character
        kind, end = match.lastgroup, match.end()
        if kind == "block":  # PostgreSQL's block comments nest
            depth = 1
            while depth and (inner := _BLOCK.search(sql, end)) is not None:
                depth += 1 if inner.group() == "/*" else -1
                end = inner.end()
            end = len(sql) if depth else end
            kind = "comment"
        yield kind, sql[pos:end]
        pos = end


def _tag(words: list[str]) -> str:
    """The command tag of a statement from the words it begins with: ALTER ROLE, COPY, SET."""
    if not words or words[0] not in _COMMANDS:
        return HIDDEN
    if words[0] not in _DEFINE:
        return words[0]
    kind = next((w for w in words[1:] if w not in _MODIFIERS), "")
    return f"{words[0]} {kind}" if kind in _OBJECTS else words[0]


def _statement(tokens: list[tuple[str, str]], text: bool) -> str:
    significant = [(k, t) for k, t in tokens if k not in ("space", "comment") and t != "("]
    if not significant:
        return ""
    words = [
        t.upper() for _, t in itertools.takewhile(lambda token: token[0] == "word", significant)
    ]
    if not text or not words or words[0] not in _QUERIES:
        return _tag(words)
    masked = ("?" if k in ("string", "number") else " " if k == "comment" else t for k, t in tokens)
    return " ".join("".join(masked).split())


def shown(sql: str, text: bool = True) -> str:
    """``sql`` as a report may show it: each statement masked or by its tag, on one line."""
    statements: list[list[tuple[str, str]]] = [[]]
    for kind, token in _tokens(sql):
        if token == ";":
            statements.append([])
        else:
            statements[-1].append((kind, token))
    return "; ".join(s for s in (_statement(tokens, text) for tokens in statements) if s)
