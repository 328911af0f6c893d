-- Each user's preferences. A user has a row only once they set something.
CREATE TABLE user_settings (
    owner       TEXT PRIMARY KEY,
    -- The IANA zone used wherever a call gives none; NULL: the zone of the user's machine
    -- (stdio) or token (HTTP), else UTC.
    time_zone   TEXT,
    updated_at  TIMESTAMPTZ NOT NULL
);
