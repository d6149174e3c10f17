-- The two QSIR courses every trust running QSIR has (domain.md): one day, and one day a
-- week for five weeks, completed by attending every session.
INSERT INTO training.course (id, code, display_name, session_count, required_sessions)
VALUES ('qsir-fund', 'QSIR-FUND', 'QSIR Fundamentals', 1, 0),
       ('qsir-prac', 'QSIR-PRAC', 'QSIR Practitioner', 5, 0)
ON CONFLICT DO NOTHING;
