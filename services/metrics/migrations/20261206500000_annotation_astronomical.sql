-- Issue 33: the astronomical-point rule of run charts is a person's judgement ("a point
-- everyone studying the chart would agree is unusual"), not a computation, so a person
-- records it once, on the annotation of the point's period, and every run chart reads it.
ALTER TABLE metrics.annotation ADD COLUMN astronomical boolean NOT NULL DEFAULT false;
