-- kneo embedded store, schema version 1.
-- Documents are JSON text; the columns beside them exist for filtering, sorting and claiming.
-- Timestamps are RFC 3339 text with fixed microseconds, so text order is time order.

CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    status        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    deadline_at   TEXT,
    workflow_name TEXT,
    document      TEXT NOT NULL
);
CREATE INDEX runs_updated_at ON runs (updated_at);
CREATE INDEX runs_created_at ON runs (created_at);
CREATE INDEX runs_status_updated_at ON runs (status, updated_at);
CREATE INDEX runs_deadline_at ON runs (deadline_at) WHERE deadline_at IS NOT NULL;

CREATE TABLE run_queue (
    run_id           TEXT PRIMARY KEY,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    enqueued_at      TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    last_error       TEXT
);
CREATE INDEX run_queue_claim ON run_queue (status, enqueued_at);

CREATE TABLE trace_events (
    run_id     TEXT NOT NULL,
    position   INTEGER NOT NULL,
    event_id   TEXT NOT NULL,
    event_type TEXT NOT NULL,
    timestamp  TEXT NOT NULL,
    document   TEXT NOT NULL,
    PRIMARY KEY (run_id, position)
);
CREATE UNIQUE INDEX trace_events_event_id ON trace_events (run_id, event_id);

CREATE TABLE checkpoints (
    run_id          TEXT NOT NULL,
    sequence        INTEGER NOT NULL,
    id              TEXT NOT NULL,
    checkpoint_type TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    document        TEXT NOT NULL,
    PRIMARY KEY (run_id, sequence)
);

CREATE TABLE audit_events (
    position        INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    event_type      TEXT NOT NULL,
    run_id          TEXT,
    continuation_id TEXT,
    actor           TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX audit_events_run_id ON audit_events (run_id, position);
CREATE INDEX audit_events_event_type ON audit_events (event_type, position);

CREATE TABLE idempotency_records (
    scope           TEXT NOT NULL,
    key             TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    state           TEXT NOT NULL,
    response_status INTEGER,
    response_body   TEXT,
    locked_until    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE locks (
    name        TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    acquired_at TEXT NOT NULL
);

CREATE TABLE service_events (
    position   INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    created_at TEXT NOT NULL,
    version    TEXT NOT NULL,
    host       TEXT NOT NULL,
    details    TEXT NOT NULL
);

CREATE TABLE project_metadata (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
