-- The notification service: the messages it sends (one per event and channel), what it
-- knows of customers (their email address, from the user service's events; their
-- preferences, from themselves) and of orders (from the order service's events), and
-- the event outbox and inbox.

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

-- Every notification, rendered when its event is handled (in the inbox's transaction)
-- and then sent by the delivery worker. With the outbox provider, this table is the
-- mailbox that `GET /messages` and `shopctl notifications` read.
CREATE TABLE messages (
    id uuid PRIMARY KEY,
    -- The event that caused it: exactly one message per event and channel, however often
    -- the event is delivered.
    event_id uuid NOT NULL,
    channel text NOT NULL CHECK (channel IN ('email', 'sms')),
    -- The template: order_confirmation, password_reset, ...
    kind text NOT NULL,
    user_id uuid,
    -- An email address or an E.164 phone number.
    recipient text NOT NULL,
    subject text,
    body_text text NOT NULL,
    body_html text,
    status text NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'parked')),
    -- Sending attempts made so far.
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- When the worker may try (again); while an attempt runs, the end of its lease.
    next_attempt_at timestamptz NOT NULL,
    -- The provider's last error (failed: why it refused; parked: the last answer).
    last_error text,
    -- The provider that sent it and its id for the message.
    provider text,
    provider_ref text,
    created_at timestamptz NOT NULL,
    sent_at timestamptz CHECK ((sent_at IS NOT NULL) = (status = 'sent')),
    UNIQUE (event_id, channel)
);
CREATE INDEX messages_due ON messages (next_attempt_at) WHERE status = 'pending';
CREATE INDEX messages_by_recipient ON messages (recipient, id);
CREATE INDEX messages_by_kind ON messages (kind, id);

-- Who a user is, as far as messages go: the address the user service announced last.
CREATE TABLE recipients (
    user_id uuid PRIMARY KEY,
    email text NOT NULL,
    updated_at timestamptz NOT NULL
);

-- What a customer wants to receive. No row: the defaults (email yes, SMS no).
CREATE TABLE preferences (
    user_id uuid PRIMARY KEY,
    email_opt_in boolean NOT NULL,
    sms_opt_in boolean NOT NULL,
    phone text CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    updated_at timestamptz NOT NULL,
    CHECK (NOT sms_opt_in OR phone IS NOT NULL)
);

-- An order as placed (order.created), for the messages about it that come later.
CREATE TABLE orders (
    order_id uuid PRIMARY KEY,
    user_id uuid NOT NULL,
    currency text NOT NULL,
    total_minor bigint NOT NULL,
    -- [{sku, product_name?, quantity, unit_price_minor}]
    lines jsonb NOT NULL,
    placed_at timestamptz NOT NULL
);
