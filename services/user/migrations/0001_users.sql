-- Accounts, sessions (refresh-token families), single-use tokens, log-in throttling,
-- the address book, and the outbox of events for other services.

CREATE TABLE users (
    id uuid PRIMARY KEY,
    -- Trimmed and lower-cased by the service; one account per address.
    email text NOT NULL UNIQUE CHECK (email = lower(email) AND char_length(email) BETWEEN 3 AND 254),
    -- An argon2id PHC string: $argon2id$v=19$m=…,t=…,p=…$salt$hash
    password_hash text NOT NULL CHECK (password_hash LIKE '$argon2%'),
    role text NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'admin')),
    email_verified_at timestamptz,
    password_changed_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- One log-in on one device: its refresh tokens form a chain, each replaced on use.
-- Presenting a replaced token again revokes the whole family.
CREATE TABLE refresh_families (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz,
    revoked_reason text CHECK (revoked_reason IN ('logout', 'reuse', 'password_changed', 'logout_all'))
);
CREATE INDEX refresh_families_live ON refresh_families (user_id) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
    -- SHA-256 of the token; the token itself is never stored.
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    family_id uuid NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    issued_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    -- Set when the token was exchanged for its successor.
    rotated_at timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

-- Email verification and password reset tokens: single use, expiring.
CREATE TABLE one_time_tokens (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose text NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX one_time_tokens_user ON one_time_tokens (user_id, purpose) WHERE used_at IS NULL;
CREATE INDEX one_time_tokens_expiry ON one_time_tokens (expires_at);

-- Failed log-ins per account (the email as typed, hashed) and per client address.
CREATE TABLE login_throttle (
    scope text NOT NULL CHECK (scope IN ('account', 'address')),
    key_hash bytea NOT NULL,
    -- Attempts counted within the window, oldest first.
    failures timestamptz[] NOT NULL DEFAULT '{}',
    lockouts integer NOT NULL DEFAULT 0 CHECK (lockouts >= 0),
    locked_until timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key_hash)
);
CREATE INDEX login_throttle_updated ON login_throttle (updated_at);

CREATE TABLE addresses (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('shipping', 'billing')),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    company text CHECK (char_length(company) <= 200),
    line1 text NOT NULL CHECK (char_length(line1) BETWEEN 1 AND 200),
    line2 text CHECK (char_length(line2) <= 200),
    city text NOT NULL CHECK (char_length(city) BETWEEN 1 AND 100),
    region text CHECK (char_length(region) <= 100),
    postal_code text CHECK (char_length(postal_code) <= 20),
    country text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    phone text CHECK (char_length(phone) <= 32),
    is_default boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
-- Listing is keyset-paginated by id (UUIDv7, so creation order).
CREATE INDEX addresses_user ON addresses (user_id, id);
-- At most one default address of each kind per user.
CREATE UNIQUE INDEX addresses_one_default ON addresses (user_id, kind) WHERE is_default;

CREATE TABLE outbox (
    id uuid PRIMARY KEY,
    event_type text NOT NULL,
    occurred_at timestamptz NOT NULL,
    -- The message as it will be published: {id, type, occurred_at, source, data, trace?}.
    envelope jsonb NOT NULL,
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
