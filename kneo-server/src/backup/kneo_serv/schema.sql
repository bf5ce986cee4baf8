-- The kneo-serv 1.2 store at schema version 4, as its migrations 1 to 4 leave it, on SQLite and
-- on Postgres (the float columns are REAL on SQLite and DOUBLE PRECISION on Postgres, as kneo-serv
-- maps them).
-- Written by kneo-ops restore into an empty target, so that kneo-serv then finds a complete
-- schema and a ledger at version 4, and migrates nothing.

CREATE TABLE schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
);
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    workflow_name TEXT,
    workflow_kind TEXT,
    agent_name TEXT,
    created_at TEXT,
    updated_at TEXT,
    payload TEXT NOT NULL,
    session_id TEXT
);
CREATE TABLE checkpoints (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    sequence INTEGER,
    type TEXT NOT NULL,
    created_at TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE idempotency_records (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE locks (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at @REAL@ NOT NULL,
    created_at @REAL@ NOT NULL,
    updated_at @REAL@ NOT NULL
);
CREATE INDEX idx_runs_status ON runs(status);
CREATE INDEX idx_checkpoints_run_id ON checkpoints(run_id);
CREATE TABLE run_queue (
    run_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    available_at @REAL@ NOT NULL,
    lease_owner TEXT,
    lease_expires_at @REAL@,
    error TEXT,
    created_at @REAL@ NOT NULL,
    updated_at @REAL@ NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX idx_run_queue_status_available ON run_queue(status, available_at);
CREATE TABLE continuations (
    id TEXT PRIMARY KEY,
    run_id TEXT,
    status TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX idx_continuations_run_id ON continuations(run_id);
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    run_id TEXT,
    continuation_id TEXT,
    actor TEXT,
    created_at TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX idx_audit_events_type_created ON audit_events(event_type, created_at);
CREATE INDEX idx_audit_events_run_id ON audit_events(run_id);
CREATE TABLE project_metadata (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX idx_checkpoints_run_id_sequence ON checkpoints (run_id, sequence);
CREATE INDEX idx_runs_session_id ON runs(session_id);
CREATE INDEX idx_runs_workflow_kind ON runs(workflow_kind);
CREATE INDEX idx_runs_created_at ON runs(created_at);
