-- The relay's walk over unpublished events, in commit order, gets an index of its own that only
-- a query saying `seq > 0` (always true) can use. Right after a burst the planner's statistics
-- still say no event is unpublished, so every partial index on `published_at IS NULL` looks
-- empty and free to scan; had the head check (the oldest unpublished event of one task) the
-- walk's index to choose from, it could scan the backlog from its start for every row it
-- checks. It has only the (subject, seq) index.
CREATE INDEX outbox_free_walk ON outbox (seq) WHERE published_at IS NULL AND seq > 0;
DROP INDEX outbox_unpublished;

-- Room on each page for a row's next version: claiming an event sets its lease columns, which
-- no index covers, and then updates it in place (a HOT update) instead of adding an entry to
-- every index. Pages written from now on keep the room.
ALTER TABLE outbox SET (fillfactor = 50);
