"""Which PromQL features an expression uses, read without a full parser: function names
(a name before "("), aggregation operators (with or without `by`/`without`), binary keywords,
subqueries and the `@` modifier. Strings, label matchers and ranges are blanked first, so a
"(" inside a matcher or a label list after `by` is not taken for a call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# The aggregation operators of PromQL; the last two are experimental in Prometheus 2.x/3.x.
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
                "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
# Grouping and vector-matching keywords: followed by a label list, never a call.
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
BINARY_KEYWORDS = {"and", "or", "unless", "bool", "offset", *_LABEL_LISTS}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[([^\[\]]*)\]")
_NAME = r"[A-Za-z_][A-Za-z0-9_:]*"


@dataclass
class Features:
    """What one expression (or several, merged) uses."""

    functions: set[str] = field(default_factory=set)
    aggregations: set[str] = field(default_factory=set)
    keywords: set[str] = field(default_factory=set)
    subquery: bool = False
    at_modifier: bool = False

    def merge(self, other: Features) -> None:
        """Add `other`'s features to these."""
        self.functions |= other.functions
        self.aggregations |= other.aggregations
        self.keywords |= other.keywords
        self.subquery |= other.subquery
        self.at_modifier |= other.at_modifier


def features(expr: str) -> Features:
    """The features `expr` uses."""
    found = Features()
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("{}", text)
    for inside in _RANGE.findall(text):
        found.subquery |= ":" in inside
    text = _RANGE.sub("[]", text)
    found.at_modifier = "@" in text
    # A label list after by/without/on/ignoring/group_*: blank it, it names labels.
    text = re.sub(rf"\b({'|'.join(sorted(_LABEL_LISTS))})\s*\([^()]*\)", r"\1 ", text)
    for match in re.finditer(rf"(?<![A-Za-z0-9_:])({_NAME})\s*(\(|(?=(by|without)\b))", text):
        name = match.group(1)
        if name in BINARY_KEYWORDS:
            continue
        (found.aggregations if name in AGGREGATIONS else found.functions).add(name)
    found.keywords = {w for w in re.findall(rf"\b({'|'.join(sorted(BINARY_KEYWORDS))})\b", text)}
    return found
