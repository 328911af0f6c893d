-- The SQLite twin of migrations/postgres/0009_resource_subscriptions.sql.

-- Resources a user subscribed to over stateless streamable HTTP, where no connection holds the
-- subscription: every replica's event streams of that user send the resource's updates.
CREATE TABLE resource_subscriptions (
    owner          TEXT NOT NULL,
    uri            TEXT NOT NULL,
    subscribed_at  TEXT NOT NULL,
    PRIMARY KEY (owner, uri)
);
