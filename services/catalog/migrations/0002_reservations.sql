-- Stock reservations for orders, and the event tables (docs/checkout.md).
--
-- A reservation holds `reserved` on each of its SKUs' inventory rows while active; it
-- ends committed (payment succeeded: on hand goes down), released (order cancelled) or
-- expired (its TTL passed first). One per order: a second order.created for the same
-- order finds it and changes nothing.

CREATE TABLE reservations (
    order_id   uuid PRIMARY KEY,
    status     text NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    settled_at timestamptz,
    CONSTRAINT reservations_status CHECK (status IN ('active', 'committed', 'released', 'expired', 'rejected'))
);
CREATE INDEX reservations_expiring ON reservations (expires_at) WHERE status = 'active';

CREATE TABLE reservation_lines (
    order_id uuid NOT NULL REFERENCES reservations (order_id) ON DELETE CASCADE,
    sku      text NOT NULL,
    quantity integer NOT NULL,
    PRIMARY KEY (order_id, sku),
    CONSTRAINT reservation_lines_quantity CHECK (quantity > 0)
);

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
