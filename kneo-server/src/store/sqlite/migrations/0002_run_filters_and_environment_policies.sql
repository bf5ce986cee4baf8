-- kneo embedded store, schema version 2.
-- The list filters of GET /v1/runs read session_id and workflow_kind from columns (filled from the
-- run document, which stays the source of truth), and environment policies are stored per
-- environment name.

ALTER TABLE runs ADD COLUMN session_id TEXT;
ALTER TABLE runs ADD COLUMN workflow_kind TEXT;
UPDATE runs SET
    session_id = json_extract(document, '$.session_id'),
    workflow_kind = json_extract(document, '$.workflow_kind');
CREATE INDEX runs_session_id ON runs (session_id, updated_at) WHERE session_id IS NOT NULL;

CREATE TABLE environment_policies (
    environment TEXT PRIMARY KEY,
    policy      TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
