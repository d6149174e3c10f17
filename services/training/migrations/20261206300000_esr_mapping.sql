-- The ESR mapping (issue 27): ESR extracts carry no site, only an organisation (cost
-- centre) code and a location code, which the trust maps to its sites and wards here.
-- `sites/{site}/esrMappings/{kind}.{code}`: a code maps to one site, so (kind, code) is the
-- key and the site a column. The ward is the projects service's ward name, checked for
-- shape only (services never call each other), and always a ward of the mapping's site.
CREATE TABLE training.esr_mapping (
    kind         text        NOT NULL CHECK (kind IN ('organisation', 'location')),
    code         text        NOT NULL CHECK (code <> ''),
    site         text        NOT NULL,
    ward         text        NOT NULL DEFAULT ''
        CHECK (ward = '' OR ward LIKE 'sites/' || site || '/wards/_%'),
    display_name text        NOT NULL DEFAULT '',
    create_time  timestamptz NOT NULL DEFAULT now(),
    update_time  timestamptz NOT NULL DEFAULT now(),
    revision     bigint      NOT NULL DEFAULT 1,
    PRIMARY KEY (kind, code)
);
CREATE INDEX esr_mapping_list ON training.esr_mapping (site, kind, code);
CREATE TRIGGER esr_mapping_touch BEFORE UPDATE ON training.esr_mapping
    FOR EACH ROW EXECUTE FUNCTION training.touch_update_time();

-- What the sync now keeps of a person's placing: the location code as sent (the
-- organisation is stored already), and the ward the mapping gave, `sites/{site}/wards/{ward}`
-- or empty. The defaults cost nothing on existing rows (no table rewrite).
ALTER TABLE training.staff
    ADD COLUMN location text NOT NULL DEFAULT '',
    ADD COLUMN ward     text NOT NULL DEFAULT '';
