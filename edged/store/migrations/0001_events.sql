-- Every event as published (body), keyed by its id: a replay is a no-op.
CREATE TABLE events (
    id        uuid        PRIMARY KEY,
    device    text        NOT NULL,
    seq       bigint      NOT NULL,
    camera    text,
    kind      text        NOT NULL,
    ts        timestamptz NOT NULL,
    frame_ts  timestamptz,
    body      jsonb       NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_device_seq ON events (device, seq);
CREATE INDEX events_kind_ts ON events (kind, ts);
CREATE INDEX events_camera_ts ON events (device, camera, ts);

-- Line crossings per interval (the config's bucket_s), by label; summed from line_crossing
-- events in the transaction that stores them, so each crossing counts exactly once.
CREATE TABLE line_counts (
    device      text        NOT NULL,
    camera      text        NOT NULL,
    line        text        NOT NULL,
    bucket      timestamptz NOT NULL,
    label       text        NOT NULL,
    crossed_in  integer     NOT NULL DEFAULT 0,
    crossed_out integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (device, camera, line, bucket, label)
);

-- Zone occupancy per interval, from zone_occupancy events (sent when the count changes):
-- the highest and the last count of the interval, and the mean of the counts reported.
CREATE TABLE zone_occupancy (
    device     text        NOT NULL,
    camera     text        NOT NULL,
    zone       text        NOT NULL,
    bucket     timestamptz NOT NULL,
    reports    integer     NOT NULL,
    total_sum  bigint      NOT NULL,
    total_max  integer     NOT NULL,
    last_total integer     NOT NULL,
    last_ts    timestamptz NOT NULL,
    PRIMARY KEY (device, camera, zone, bucket)
);

-- Each camera's latest status (online, reconnecting, offline) and why.
CREATE TABLE camera_status (
    device text        NOT NULL,
    camera text        NOT NULL,
    status text        NOT NULL,
    state  text        NOT NULL,
    reason text,
    ts     timestamptz NOT NULL,
    PRIMARY KEY (device, camera)
);
