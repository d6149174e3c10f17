-- Where each person works now, and whether they have left: learnt from the training
-- service's change feed (DESIGN.md: what one service must learn from another arrives
-- through the other's feed), so ListProjects and the portfolio summary can find the
-- projects whose lead left the trust or moved away from the project's sites.

-- How far each followed feed has been applied (qi_platform::follow): the cursor after the
-- last change applied, written in the same transaction as the change.
CREATE TABLE projects.feed (
    service text PRIMARY KEY,
    cursor text NOT NULL,
    update_time timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects.staff_place (
    staff text PRIMARY KEY,                -- staff/{employee_number}
    site text NOT NULL,                    -- their site's code
    active boolean NOT NULL                -- false once the HR sync records them gone
);
