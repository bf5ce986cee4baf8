-- kneo Postgres store, schema version 1.
-- Same tables and columns as the SQLite store: documents are jsonb, timestamps timestamptz,
-- integers bigint. Text columns that lists sort by use the "C" collation, so the order is the
-- byte order SQLite uses, whatever the database's default collation is.
-- The migrator applies this in one transaction under an advisory lock and records it in
-- schema_migrations; it is never edited once released (add 0002_*.sql instead).

CREATE TABLE runs (
    id            text COLLATE "C" PRIMARY KEY,
    status        text COLLATE "C" NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    deadline_at   timestamptz,
    workflow_name text,
    document      jsonb NOT NULL
);
CREATE INDEX runs_updated_at ON runs (updated_at);
CREATE INDEX runs_created_at ON runs (created_at);
CREATE INDEX runs_status_updated_at ON runs (status, updated_at);
CREATE INDEX runs_deadline_at ON runs (deadline_at) WHERE deadline_at IS NOT NULL;

CREATE TABLE run_queue (
    run_id           text COLLATE "C" PRIMARY KEY,
    status           text NOT NULL,
    attempts         bigint NOT NULL DEFAULT 0,
    lease_owner      text,
    lease_expires_at timestamptz,
    enqueued_at      timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    last_error       text
);
CREATE INDEX run_queue_claim ON run_queue (status, enqueued_at);

-- "timestamp" may be missing from an event document; such events sort first, as "" does on SQLite.
CREATE TABLE trace_events (
    run_id      text NOT NULL,
    position    bigint NOT NULL,
    event_id    text NOT NULL,
    event_type  text NOT NULL,
    "timestamp" timestamptz,
    document    jsonb NOT NULL,
    PRIMARY KEY (run_id, position)
);
CREATE UNIQUE INDEX trace_events_event_id ON trace_events (run_id, event_id);

CREATE TABLE checkpoints (
    run_id          text NOT NULL,
    sequence        bigint NOT NULL,
    id              text NOT NULL,
    checkpoint_type text NOT NULL,
    created_at      timestamptz,
    document        jsonb NOT NULL,
    PRIMARY KEY (run_id, sequence)
);

CREATE TABLE audit_events (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              text NOT NULL UNIQUE,
    event_type      text NOT NULL,
    run_id          text,
    continuation_id text,
    actor           text NOT NULL,
    metadata        jsonb NOT NULL,
    created_at      timestamptz NOT NULL
);
CREATE INDEX audit_events_run_id ON audit_events (run_id, position);
CREATE INDEX audit_events_event_type ON audit_events (event_type, position);

CREATE TABLE idempotency_records (
    scope           text NOT NULL,
    key             text NOT NULL,
    request_hash    text NOT NULL,
    state           text NOT NULL,
    response_status bigint,
    response_body   jsonb,
    locked_until    timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE locks (
    name        text PRIMARY KEY,
    owner       text NOT NULL,
    expires_at  timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL
);

CREATE TABLE service_events (
    position   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         text NOT NULL UNIQUE,
    event_type text NOT NULL,
    created_at timestamptz NOT NULL,
    version    text NOT NULL,
    host       text NOT NULL,
    details    jsonb NOT NULL
);

CREATE TABLE project_metadata (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Paused human tasks; the embedded store keeps them as files instead.
CREATE TABLE continuations (
    id         text COLLATE "C" PRIMARY KEY,
    run_id     text NOT NULL,
    created_at timestamptz,
    document   jsonb NOT NULL
);
CREATE INDEX continuations_run_id ON continuations (run_id);
