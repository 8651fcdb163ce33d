"""The error store's tables, and the one statement that counts an occurrence."""

from __future__ import annotations

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS error_groups (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    message TEXT NOT NULL,
    culprit TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'unresolved',
    regression INTEGER NOT NULL DEFAULT 0,
    count INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    status_changed REAL
);
CREATE INDEX IF NOT EXISTS error_groups_last_seen ON error_groups(last_seen);
CREATE TABLE IF NOT EXISTS error_samples (
    id INTEGER PRIMARY KEY,
    group_id INTEGER NOT NULL REFERENCES error_groups(id) ON DELETE CASCADE,
    seen REAL NOT NULL,
    message TEXT NOT NULL,
    route TEXT, method TEXT, trace_id TEXT, release TEXT, environment TEXT,
    stack TEXT NOT NULL,
    context TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS error_samples_group ON error_samples(group_id, id);
CREATE TABLE IF NOT EXISTS error_hourly (
    group_id INTEGER NOT NULL REFERENCES error_groups(id) ON DELETE CASCADE,
    hour INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (group_id, hour)
);
CREATE INDEX IF NOT EXISTS error_hourly_hour ON error_hourly(hour);
CREATE TABLE IF NOT EXISTS error_routes (
    group_id INTEGER NOT NULL REFERENCES error_groups(id) ON DELETE CASCADE,
    route TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (group_id, route)
);
"""

# What each version after the first added, applied in order to a store an earlier one made (and
# to a new one, after SCHEMA). 2: a sample names its stack by digest, each stack stored once
# (`stack` is then '[]', which a version 1 reader shows as no frames rather than failing on;
# a sample written by version 1 keeps its own and no digest).
UPGRADES = {
    2: (
        "CREATE TABLE IF NOT EXISTS error_stacks ("
        "id INTEGER PRIMARY KEY, digest TEXT NOT NULL UNIQUE, stack TEXT NOT NULL)",
        "ALTER TABLE error_samples ADD COLUMN stack_digest TEXT",
    ),
}


def statements_from(version: int) -> list[str]:
    """The statements that bring a store of `version` (0: a new file) to SCHEMA_VERSION."""
    out = [s for s in SCHEMA.split(";") if s.strip()] if version < 1 else []
    for number in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
        out.extend(UPGRADES[number])
    return out


# The regression flag and the status are computed from the row's old values (SQL semantics).
UPSERT_GROUP = """
INSERT INTO error_groups (fingerprint, type, message, culprit, count, first_seen, last_seen)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(fingerprint) DO UPDATE SET
    count = count + excluded.count,
    first_seen = min(first_seen, excluded.first_seen),
    last_seen = max(last_seen, excluded.last_seen),
    message = excluded.message,
    regression = CASE WHEN status = 'resolved' THEN 1 ELSE regression END,
    status_changed = CASE WHEN status = 'resolved' THEN excluded.last_seen ELSE status_changed END,
    status = CASE WHEN status = 'resolved' THEN 'unresolved' ELSE status END
"""
# The group's id and count after the upsert, in the same statement where SQLite has RETURNING
# (3.35, 2021); older ones read them with a SELECT.
GROUP_AFTER_UPSERT = " RETURNING id, count"
SELECT_GROUP = "SELECT id, count FROM error_groups WHERE fingerprint = ?"
# What an occurrence adds besides its group (by the group's id), each written for a whole
# batch in one executemany: a statement costs a few microseconds before SQLite does anything.
ADD_HOURLY = (
    "INSERT INTO error_hourly (group_id, hour, count) VALUES (?, ?, ?) "
    "ON CONFLICT(group_id, hour) DO UPDATE SET count = count + excluded.count"
)
ADD_ROUTE = (
    "INSERT INTO error_routes (group_id, route, count) VALUES (?, ?, ?) "
    "ON CONFLICT(group_id, route) DO UPDATE SET count = count + excluded.count"
)
# A stack is stored once, named by its digest; the samples name it (a few KiB each otherwise,
# which made writing a sample cost twice the rest of the occurrence).
ADD_STACK = "INSERT INTO error_stacks (digest, stack) VALUES (?, ?) ON CONFLICT(digest) DO NOTHING"
ADD_SAMPLE = (
    "INSERT INTO error_samples (group_id, seen, message, route, method, trace_id, release, "
    "environment, stack, stack_digest, context) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '[]', ?, ?)"
)
# A group keeps its newest samples only: those above the id of the one past them (group id,
# group id, samples kept), read from the (group_id, id) index.
TRIM_SAMPLES = (
    "DELETE FROM error_samples WHERE group_id = ? AND id <= (SELECT id FROM error_samples "
    "WHERE group_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)"
)
