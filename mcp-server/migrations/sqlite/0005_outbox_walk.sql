-- Numbered as PostgreSQL's 0005, which gives the relay's walk an index of its own (for its
-- planner) and leaves room on the outbox's pages for updates in place. SQLite's planner uses
-- `outbox_unpublished` for the walk and the (subject, seq) index for the head check as it is.
SELECT 1;
