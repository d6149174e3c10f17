-- Driver diagrams (issue 32): a project's aim, primary and secondary drivers and change
-- ideas. Every edit makes a new version and every version is kept whole, so history reads
-- any version back exactly as it was; the latest version is the diagram. The nodes are a
-- JSON array of {id, kind, text, owner, parents, cycles, measures} (at most 200, each text
-- at most 500 characters: the service checks both), with PDSA cycles by number and
-- measures by id, both of the same project: a change idea's PDSA status is derived from
-- its cycles when read, never stored. A project with no row has an empty diagram,
-- version 0.
CREATE TABLE projects.driver_diagram_version (
    project_uid uuid        NOT NULL REFERENCES projects.project (uid),
    version     bigint      NOT NULL CHECK (version >= 1),
    nodes       jsonb       NOT NULL CHECK (jsonb_typeof(nodes) = 'array'),
    node_count  integer     NOT NULL CHECK (node_count BETWEEN 0 AND 200),
    summary     text        NOT NULL DEFAULT '',
    editor      text        NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_uid, version)
);
