-- The foreign key from a merged idea to the idea it was merged into had no index, so
-- removing ideas (the bench's clean-up, a future DeleteIdea) checked each row with a scan
-- of the whole table. Partial: only merged ideas carry the reference.
CREATE INDEX idea_merged_idea ON projects.idea (merged_idea_uid) WHERE merged_idea_uid IS NOT NULL;
