-- The tables every service's migrations carry (docs/checkout.md), plus a ledger of what
-- the test handler applied.
CREATE TABLE outbox (
    id uuid PRIMARY KEY,
    event_type text NOT NULL,
    occurred_at timestamptz NOT NULL,
    envelope jsonb NOT NULL,
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE TABLE inbox (
    message_id uuid NOT NULL,
    consumer text NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, consumer)
);
CREATE TABLE applied (
    event_id uuid NOT NULL,
    event_type text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE idempotency_keys (
    scope text NOT NULL, key text NOT NULL, fingerprint bytea NOT NULL,
    status smallint NOT NULL, content_type text NOT NULL, body bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
