-- Orders with their price snapshot, every status change, refund requests, and the
-- shared event (outbox, inbox) and idempotency tables.

CREATE TABLE orders (
    id uuid PRIMARY KEY,                       -- UUIDv7: ordering by id is newest-last
    user_id uuid NOT NULL,
    cart_id uuid NOT NULL,
    status text NOT NULL CHECK (status IN
        ('pending', 'awaiting_payment', 'paid', 'fulfilled', 'cancelled', 'refunded')),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    total_minor bigint NOT NULL CHECK (total_minor >= 0),
    -- The cause of the transition into `cancelled`.
    cancellation_reason text CHECK ((cancellation_reason IS NULL) = (status <> 'cancelled')),
    -- The payment the order was paid with (from `payment.succeeded`).
    payment_id text,
    paid_amount_minor bigint,
    paid_currency text,
    paid_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CHECK ((payment_id IS NULL) = (paid_amount_minor IS NULL)
       AND (payment_id IS NULL) = (paid_currency IS NULL)
       AND (payment_id IS NULL) = (paid_at IS NULL)),
    CHECK (payment_id IS NOT NULL OR status NOT IN ('paid', 'fulfilled', 'refunded'))
);
-- A customer's orders, newest first (keyset on id).
CREATE INDEX orders_by_user ON orders (user_id, id DESC);
-- The back office's listing by status.
CREATE INDEX orders_by_status ON orders (status, id DESC);

CREATE TABLE order_lines (
    order_id uuid NOT NULL REFERENCES orders (id),
    position integer NOT NULL CHECK (position >= 0),
    sku text NOT NULL,
    product_id uuid NOT NULL,
    product_name text NOT NULL,
    quantity integer NOT NULL CHECK (quantity > 0),
    -- The catalog's price when the order was placed; never changes afterwards.
    unit_price_minor bigint NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (order_id, position),
    UNIQUE (order_id, sku)
);

-- Every status change, the creation included (from_status NULL).
CREATE TABLE order_transitions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id uuid NOT NULL REFERENCES orders (id),
    from_status text,
    to_status text NOT NULL,
    cause text NOT NULL,
    -- The event that caused it; NULL for the creation and for admin actions.
    event_id uuid,
    at timestamptz NOT NULL DEFAULT now(),
    CHECK (from_status IS DISTINCT FROM to_status)
);
CREATE INDEX order_transitions_by_order ON order_transitions (order_id, id);
-- One event moves one order at most once, whatever the inbox says.
CREATE UNIQUE INDEX order_transitions_once_per_event
    ON order_transitions (order_id, event_id) WHERE event_id IS NOT NULL;

-- Refunds this service asked the payment service for (`order.refund_requested`): a payment
-- that arrived for a cancelled order, for the wrong amount, twice, or an admin's request.
CREATE TABLE refund_requests (
    id uuid PRIMARY KEY,
    order_id uuid NOT NULL REFERENCES orders (id),
    -- At most one refund request per payment, so asking twice publishes once.
    payment_id text NOT NULL UNIQUE,
    amount_minor bigint NOT NULL,
    currency text NOT NULL,
    reason text NOT NULL CHECK (reason IN
        ('cancelled_before_payment', 'amount_mismatch', 'duplicate_payment', 'requested_by_admin')),
    -- The `payment.succeeded` that caused it, or NULL for an admin's request.
    event_id uuid,
    -- The admin who asked, for `requested_by_admin`.
    requested_by uuid,
    requested_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refund_requests_by_order ON refund_requests (order_id, id);

-- shopkit::idempotency: the stored answer of each `Idempotency-Key`, per caller.
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

-- shopkit::events: events written with the state change, published by the relay.
CREATE TABLE outbox (
    id uuid PRIMARY KEY,
    event_type text NOT NULL,
    occurred_at timestamptz NOT NULL,
    envelope jsonb NOT NULL,
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- shopkit::events: messages already handled, per consumer.
CREATE TABLE inbox (
    message_id uuid NOT NULL,
    consumer text NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, consumer)
);
