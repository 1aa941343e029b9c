-- Payment intents (one per order), the append-only money ledger, the event outbox and
-- inbox, idempotency keys of confirm requests, and the orders cancelled before their
-- intent existed.

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

-- shopkit::idempotency: the first answer to a key, replayed byte for byte.
CREATE TABLE idempotency_keys (
    scope text NOT NULL,
    key text NOT NULL,
    fingerprint bytea NOT NULL,
    status smallint NOT NULL,
    content_type text NOT NULL,
    body bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE payments (
    id uuid PRIMARY KEY,
    -- One intent per order: a redelivered order.awaiting_payment finds this one.
    order_id uuid NOT NULL UNIQUE,
    -- The buyer (from the event); the only customer who may see or confirm it.
    user_id uuid NOT NULL,
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status text NOT NULL CHECK (status IN (
        'requires_payment_method', 'processing', 'requires_action',
        'succeeded', 'failed', 'cancelled', 'refunded'
    )),
    -- The provider that holds (or will hold) the intent: `test`, later `stripe`, `paypal`.
    provider text NOT NULL,
    -- The provider's intent id; created on the first confirmation.
    provider_ref text,
    -- The provider's id of the capture (what a refund refers to).
    charge_ref text,
    -- What is kept of the card: never its number, never its CVC.
    card_brand text,
    card_last4 text CHECK (card_last4 ~ '^[0-9]{4}$'),
    -- requires_action: what the client has to do next (3-D Secure).
    next_action jsonb CHECK ((next_action IS NOT NULL) = (status = 'requires_action')),
    -- failed: the provider's reason (card_declined, insufficient_funds, authentication_failed).
    failure_reason text CHECK ((failure_reason IS NOT NULL) = (status = 'failed')),
    -- cancelled: the order's reason.
    cancellation_reason text,
    -- processing: when the provider call began; a stale one is resolved by re-querying
    -- the provider (the next confirmation or the sweeper).
    processing_since timestamptz CHECK ((processing_since IS NOT NULL) = (status = 'processing')),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX payments_by_user ON payments (user_id, id);
CREATE INDEX payments_by_status ON payments (status, id);
CREATE INDEX payments_processing ON payments (processing_since) WHERE status = 'processing';

-- Money that moved, written in the transaction of the status change it belongs to.
-- Append-only. For every payment: sum(charge) - sum(refund) = amount_minor when it has
-- succeeded, else 0 (ledger::violations checks it).
CREATE TABLE ledger_entries (
    id uuid PRIMARY KEY,
    payment_id uuid NOT NULL REFERENCES payments (id),
    order_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('charge', 'refund')),
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- The provider's id of the capture or refund.
    provider_ref text NOT NULL,
    at timestamptz NOT NULL
);
-- Never two charges for one payment, whatever races.
CREATE UNIQUE INDEX ledger_one_charge_per_payment ON ledger_entries (payment_id) WHERE kind = 'charge';
-- Refunds are full refunds: at most one per payment.
CREATE UNIQUE INDEX ledger_one_refund_per_payment ON ledger_entries (payment_id) WHERE kind = 'refund';
CREATE INDEX ledger_by_order ON ledger_entries (order_id, at);

CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entries is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();

-- An order.cancelled that arrived before its order.awaiting_payment (a retried delivery
-- overtaken by the next event): the intent, when it comes, is created cancelled.
CREATE TABLE cancelled_orders (
    order_id uuid PRIMARY KEY,
    reason text NOT NULL,
    at timestamptz NOT NULL
);
