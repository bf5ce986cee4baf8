-- kneo Postgres store, schema version 2 (the same change as the SQLite store's 0002).
-- The list filters of GET /v1/runs read session_id and workflow_kind from columns (filled from the
-- run document, which stays the source of truth), and environment policies are stored per
-- environment name.

ALTER TABLE runs ADD COLUMN session_id text, ADD COLUMN workflow_kind text;
UPDATE runs SET
    session_id = document->>'session_id',
    workflow_kind = document->>'workflow_kind';
CREATE INDEX runs_session_id ON runs (session_id, updated_at) WHERE session_id IS NOT NULL;

CREATE TABLE environment_policies (
    environment text COLLATE "C" PRIMARY KEY,
    policy      jsonb NOT NULL,
    updated_at  timestamptz NOT NULL
);
