-- The cart schema: carts (anonymous ones hold the SHA-256 of their token, user carts
-- their owner), their lines with the catalog facts last seen for each SKU, and the
-- event tables every service carries (outbox, inbox).

CREATE TABLE carts (
    id          uuid PRIMARY KEY,
    -- NULL for an anonymous cart, which is reached with its token instead.
    user_id     uuid,
    -- SHA-256 of the anonymous cart's token; the token itself is never stored.
    token_hash  bytea,
    -- `open` carts change; a `merged` anonymous cart was folded into `merged_into` at
    -- log-in and is closed for good.
    status      text NOT NULL DEFAULT 'open',
    merged_into uuid REFERENCES carts (id),
    -- The optimistic counter: every change to the cart or its lines adds one.
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT carts_owner CHECK ((user_id IS NULL) <> (token_hash IS NULL)),
    CONSTRAINT carts_token_hash_length CHECK (token_hash IS NULL OR octet_length(token_hash) = 32),
    CONSTRAINT carts_status CHECK (status IN ('open', 'merged')),
    CONSTRAINT carts_merged_into CHECK ((status = 'merged') = (merged_into IS NOT NULL))
);
-- A user has at most one open cart (GET /carts/mine creates it under this index).
CREATE UNIQUE INDEX carts_one_open_per_user ON carts (user_id) WHERE status = 'open' AND user_id IS NOT NULL;

CREATE TABLE cart_lines (
    cart_id          uuid NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    sku              text NOT NULL,
    quantity         integer NOT NULL,
    -- The catalog's price when the line last changed, or as a price event updated it.
    unit_price_minor bigint NOT NULL,
    currency         char(3) NOT NULL,
    product_name     text NOT NULL,
    product_slug     text NOT NULL,
    attributes       jsonb NOT NULL DEFAULT '{}',
    -- The stock the catalog last reported for the SKU (the line is flagged when its
    -- quantity exceeds it).
    available        bigint NOT NULL,
    added_at         timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cart_id, sku),
    CONSTRAINT cart_lines_quantity CHECK (quantity BETWEEN 1 AND 99),
    CONSTRAINT cart_lines_price CHECK (unit_price_minor >= 0),
    CONSTRAINT cart_lines_currency CHECK (currency ~ '^[A-Z]{3}$')
);
-- Catalog events name a SKU: find the lines that hold it.
CREATE INDEX cart_lines_sku_idx ON cart_lines (sku);

-- Orders whose payment emptied a cart: a second `order.paid` for the same order (a
-- re-emitted event with a new id) changes nothing.
CREATE TABLE cleared_orders (
    order_id   uuid PRIMARY KEY,
    cart_id    uuid NOT NULL,
    cleared_at timestamptz NOT NULL DEFAULT now()
);

-- The newest catalog event applied per SKU and kind (`price`, `stock`): an older event
-- delivered late is ignored instead of undoing a newer one.
CREATE TABLE sku_watermarks (
    sku         text NOT NULL,
    kind        text NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (sku, kind)
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
